"""Output formats of a config's findings, chosen by name (`validate --format`), beside the plan
renderers: one line per finding as text (Diagnostic.line), one JSON document, or GitHub
annotations. Each reporter returns the whole output ending in one newline (or nothing); the
caller prints it as it is (`output.out(..., end="")`). Commands other than validate report a
config's errors on stderr through `to_stderr`, in the same text lines."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mailgitops import output
from mailgitops.diagnostics import Diagnostic


@dataclass(frozen=True)
class ValidationResult:
    """What validate found in a config root: its findings and how much config it read."""

    diagnostics: Sequence[Diagnostic]
    providers: int
    mailboxes: int
    strict: bool = False  # warnings fail too

    @property
    def errors(self) -> int:
        return sum(1 for d in self.diagnostics if d.severity == "error")

    @property
    def warnings(self) -> int:
        return len(self.diagnostics) - self.errors

    @property
    def failed(self) -> bool:
        return self.errors > 0 or (self.strict and self.warnings > 0)


def lines(diags: Sequence[Diagnostic], color: bool) -> str:
    """One text line per finding, each ending in a newline."""
    return "".join(f"{d.line_text(color)}\n" for d in diags)


def to_stderr(diags: Sequence[Diagnostic]) -> None:
    """Config errors of a command other than validate: on stderr, as validate prints them."""
    output.err(lines(diags, output.use_color(sys.stderr)), end="")


def text(found: ValidationResult, root: str, color: bool) -> str:
    summary = (
        f"{found.providers} provider(s), {found.mailboxes} "
        f"mailbox(es): {found.errors} error(s), {found.warnings} warning(s)"
    )
    return (
        lines(found.diagnostics, color) + ("FAILED: " if found.failed else "OK: ") + summary + "\n"
    )


def to_json(diags: Sequence[Diagnostic]) -> list[dict[str, object]]:
    return [d.to_json() for d in diags]


def json_document(found: ValidationResult, root: str, color: bool) -> str:
    document = {
        "format_version": 1,
        "valid": not found.failed,
        "summary": {
            "errors": found.errors,
            "warnings": found.warnings,
            "providers": found.providers,
            "mailboxes": found.mailboxes,
        },
        "diagnostics": to_json(found.diagnostics),
    }
    return json.dumps(document, indent=2) + "\n"


def github(found: ValidationResult, root: str, color: bool) -> str:
    """Annotations name files relative to the checkout (the working directory in CI), so with
    -C DIR the config root's own path is put in front."""
    prefix = os.path.relpath(root)
    out = []
    for d in found.diagnostics:
        file = os.path.normpath(os.path.join(prefix, d.file))
        out.append(
            f"::{d.severity} file={output.github_escape(file, True)},line={d.line},"
            f"col={d.col},title={output.github_escape(d.rule, True)}::"
            f"{output.github_escape(d.message)}\n"
        )
    return "".join(out)


Reporter = Callable[[ValidationResult, str, bool], str]

# json and github are read by programs, never by a terminal: no colour.
REPORTERS: dict[str, Reporter] = {"text": text, "json": json_document, "github": github}


def report(found: ValidationResult, fmt: str, root: str, color: bool) -> str:
    """`fmt` is one of REPORTERS (the CLI restricts --format to them)."""
    return REPORTERS[fmt](found, root, color)
