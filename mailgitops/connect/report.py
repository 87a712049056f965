"""`check` results as text (one line per check, grouped by provider), JSON
(schemas/check.schema.json) and GitHub annotations (on the line of the provider file that
names the server)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from mailgitops.connect.results import ProviderResult, clean, summary
from mailgitops.diagnostics import Diagnostic
from mailgitops.output import github_escape, paint

CHECK_FORMAT_VERSION = 1
_COLOR = {"ok": "green", "warning": "yellow", "fail": "red", "skipped": "dim"}
_LABEL = {"ok": "ok", "warning": "warning", "fail": "FAIL", "skipped": "skipped"}


def passed(results: list[ProviderResult]) -> bool:
    return not any(r.failed for r in results)


def summary_line(results: list[ProviderResult]) -> str:
    s = summary(results)
    body = (
        f"{s['providers']} provider(s) checked: {s['ok']} ok, {s['warning']} warning(s), "
        f"{s['fail']} failed" + (f", {s['skipped']} skipped" if s["skipped"] else "")
    )
    if s["failed_providers"]:
        return f"FAILED: {s['failed_providers']} provider(s) failed a check; {body}"
    return f"OK: {body}"


def text_lines(results: list[ProviderResult], color: bool, indent: str = "  ") -> list[str]:
    lines: list[str] = []
    for result in results:
        lines.append(f"{clean(result.name)} ({clean(result.file)}:{result.line_for('')})")
        for c in result.checks:
            label = paint(f"{_LABEL[c.status]:<7}", _COLOR[c.status], color)
            who = f" {clean(c.mailbox)}" if c.mailbox else ""
            message = clean(c.message, 400)
            lines.append(f"{indent}{label} {c.server} {clean(c.target)} {c.step}{who}: {message}")
    return lines


def render_text(results: list[ProviderResult], color: bool) -> str:
    return "\n".join([*text_lines(results, color), summary_line(results)]) + "\n"


def to_json(
    results: list[ProviderResult],
    error: str | None = None,
    diagnostics: Sequence[Diagnostic] = (),
) -> dict[str, Any]:
    """The document of schemas/check.schema.json; with `error` the check did not run (an
    invalid config, a usage error) and `diagnostics` are the config's findings."""
    out: dict[str, Any] = {
        "format_version": CHECK_FORMAT_VERSION,
        "ok": error is None and passed(results),
        "summary": summary(results),
        "providers": [r.to_json() for r in results],
    }
    if error is not None:
        out["error"] = error
        out["diagnostics"] = [d.to_json() for d in diagnostics]
    return out


def render_json(
    results: list[ProviderResult],
    error: str | None = None,
    diagnostics: Sequence[Diagnostic] = (),
) -> str:
    return json.dumps(to_json(results, error, diagnostics), indent=2, ensure_ascii=False) + "\n"


def render_github(results: list[ProviderResult], root: str) -> str:
    """Failures as errors and warnings as warnings, on the line of `imap:`, `smtp:` or
    `exchange:` in the provider file; the summary as a notice. Files are named relative to
    the checkout (the working directory in CI), so the config root is put in front."""
    prefix = os.path.relpath(root)
    lines: list[str] = []
    for result in results:
        file = os.path.normpath(os.path.join(prefix, result.file))
        for c in result.checks:
            if c.status not in ("fail", "warning"):
                continue
            level = "error" if c.status == "fail" else "warning"
            who = f" {c.mailbox}" if c.mailbox else ""
            title = f"check {result.name} {c.server} {c.step}"
            lines.append(
                f"::{level} file={github_escape(file, True)},line={result.line_for(c.server)},"
                f"title={github_escape(title, True)}::"
                f"{github_escape(clean(f'{c.target}{who}: {c.message}', 600))}"
            )
    lines.append(f"::notice title=mailgitops check::{github_escape(summary_line(results))}")
    return "\n".join(lines) + "\n"
