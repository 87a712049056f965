"""The plan as text for a terminal or a CI log (SPEC §5): Terraform-like `+`, `~`, `-`, `<=`
headers, one line per attribute, secrets as `(sensitive)`, and the summary sentence last.

The attribute lines and the value formatting live here and are reused by the Markdown format,
so both say the same thing about a change."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from mailgitops.connect.report import summary_line as check_summary_line
from mailgitops.connect.report import text_lines
from mailgitops.connect.results import ProviderResult
from mailgitops.model import SENSITIVE_KEYS, SecretRef
from mailgitops.output import paint, visible
from mailgitops.plan.changes import Change
from mailgitops.plan.result import Plan

Op = Literal["+", "-", "~"]

# Values under model.SENSITIVE_KEYS, and every secret reference, are shown as this.
SENSITIVE = "(sensitive)"

_ACTION_COLOR = {"create": "green", "update": "yellow", "delete": "red", "adopt": "cyan"}
_ACTION_MARK = {"create": "+", "update": "~", "delete": "-", "adopt": "<="}
_OP_COLOR: dict[Op, str] = {"+": "green", "-": "red", "~": "yellow"}


@dataclass(frozen=True)
class AttrLine:
    """One attribute of a change, its values already in display form. `note` replaces the
    values of a sensitive attribute that changed (`(sensitive, rotated)`)."""

    op: Op
    path: str
    old: str | None
    new: str | None
    note: str | None = None

    def body(self, arrow: str) -> str:
        if self.note is not None:
            return self.note
        if self.op == "+":
            return str(self.new)
        if self.op == "-":
            return str(self.old)
        return f"{self.old} {arrow} {self.new}"


# Shown escaped so user text can neither hide a change nor paint the terminal (output.py).
escape_invisible = visible


def quote(text: str) -> str:
    """A string as JSON writes it, keeping readable non-ASCII letters readable."""
    return escape_invisible(json.dumps(text, ensure_ascii=False))


def literal(value: Any) -> str:
    """A JSON value written JSON-ish on one line; secret references inside are hidden."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, dict):
        if SecretRef.is_ref(value):
            return SENSITIVE
        items = (
            f"{quote(str(k))}: {SENSITIVE if k in SENSITIVE_KEYS else literal(v)}"
            for k, v in value.items()
        )
        return "{" + ", ".join(items) + "}"
    return quote(str(value))


def _is_sensitive(path: str, *values: Any) -> bool:
    return path.rsplit(".", 1)[-1] in SENSITIVE_KEYS or any(SecretRef.is_ref(v) for v in values)


def _expandable(path: str, value: Any) -> bool:
    return (
        isinstance(value, dict)
        and bool(value)
        and not SecretRef.is_ref(value)
        and not _is_sensitive(path)
    )


def _walk(value: Any, path: str, out: dict[str, Any]) -> None:
    if _expandable(path, value):
        for key, sub in value.items():
            _walk(sub, f"{path}.{key}", out)
    else:
        out[path] = value


def flatten(entry: dict[str, Any]) -> dict[str, Any]:
    """Nested mappings as dotted paths (`imap.host`); lists stay whole."""
    out: dict[str, Any] = {}
    for key, value in entry.items():
        _walk(value, str(key), out)
    return out


def _show(path: str, value: Any) -> str:
    return SENSITIVE if _is_sensitive(path, value) else literal(value)


def _leaf(path: str, before: Any, after: Any, sensitive: bool) -> AttrLine:
    if before is None:
        return AttrLine("+", path, None, SENSITIVE if sensitive else _show(path, after))
    if after is None:
        return AttrLine("-", path, SENSITIVE if sensitive else _show(path, before), None)
    if sensitive or _is_sensitive(path, before, after):
        return AttrLine("~", path, None, None, f"(sensitive, {_secret_change(before, after)})")
    return AttrLine("~", path, literal(before), literal(after))


def _secret_change(before: Any, after: Any) -> str:
    """`rotated` when only the user's `version` label moved: same reference, new value."""
    if isinstance(before, dict) and isinstance(after, dict):
        strip = ({k: v for k, v in d.items() if k != "version"} for d in (before, after))
        if next(strip) == next(strip):
            return "rotated"
    return "changed"


def attribute_lines(change: Change) -> list[AttrLine]:
    """What a change does to each attribute, in display form, never showing a secret."""
    if change.action == "create":
        assert change.after is not None
        return [AttrLine("+", p, None, _show(p, v)) for p, v in flatten(change.after).items()]
    if change.action == "delete":
        assert change.before is not None
        return [AttrLine("-", p, _show(p, v), None) for p, v in flatten(change.before).items()]
    lines: list[AttrLine] = []
    for d in change.diff:
        sensitive = d.sensitive or _is_sensitive(d.path, d.before, d.after)
        element = d.path.endswith("]")  # a list element (plan.diff): one line
        if (
            sensitive
            or element
            or not (_expandable(d.path, d.before) or _expandable(d.path, d.after))
        ):
            lines.append(_leaf(d.path, d.before, d.after, sensitive))
            continue
        # A whole section added or removed (an adopted entry without `imap`, say): one line
        # per attribute inside, so a secret reference in it is still hidden.
        before: dict[str, Any] = {}
        after: dict[str, Any] = {}
        _walk(d.before, d.path, before)
        _walk(d.after, d.path, after)
        for path in dict.fromkeys([*before, *after]):
            old, new = before.get(path), after.get(path)
            if old != new:
                lines.append(_leaf(path, old, new, False))
    return lines


def change_notes(change: Change) -> list[str]:
    notes = list(change.notes)
    if change.live_key is not None:
        notes.append(f"the live entry {quote(change.live_key)} is renamed to {quote(change.id)}")
    return notes


def _free_text(text: str, indent: str) -> str:
    """Our messages can carry user text (addresses, file names): escape what a terminal would
    interpret and keep continuation lines under their first line."""
    return ("\n" + indent).join(escape_invisible(line) for line in text.split("\n"))


def _header(change: Change, color: bool) -> str:
    head = f"  {_ACTION_MARK[change.action]} {change.kind} {quote(change.id)}"
    if change.action == "adopt":
        head += " (adopt: made outside mailgitops, becomes managed)"
    line = paint(head, _ACTION_COLOR[change.action], color)
    if change.source is not None:
        # A file name may hold a line break: escaped, it cannot forge a line of the plan.
        line += "  " + paint(f"# {escape_invisible(str(change.source))}", "dim", color)
    return line


def _change_block(change: Change, color: bool) -> list[str]:
    out = [_header(change, color)]
    attrs = attribute_lines(change)
    for attr in attrs:
        mark = paint(attr.op, _OP_COLOR[attr.op], color)
        out.append(f"      {mark} {escape_invisible(attr.path)} = {attr.body('->')}")
    if change.action == "adopt" and not attrs:
        out.append("      # the live attributes already match the config")
    out.extend(f"      # note: {_free_text(n, '      #   ')}" for n in change_notes(change))
    return out


NO_CHECKS_LINE = "Connection checks: the plan creates or changes no provider."
_UNREADABLE = "Secrets not readable here (apply will need them):"


def failed_checks_line(plan: Plan) -> str:
    return (
        f"CHECK FAILED: {len(plan.failed_checks())} connection check(s) failed; `apply` refuses "
        "this plan unless --allow-failed-check"
    )


def _check_section(plan: Plan, color: bool) -> list[str]:
    results = [ProviderResult.from_json(r) for r in plan.checks or ()]
    if not results:
        return [NO_CHECKS_LINE, ""]
    out = ["Connection checks of the providers this plan creates or changes:"]
    out += text_lines(results, color)
    out.append(check_summary_line(results))
    if plan.failed_checks():
        out.append(paint(paint(failed_checks_line(plan), "red", color), "bold", color))
    out.append("")
    return out


def unreadable_line(plan: Plan) -> str:
    refs = ", ".join(plan.unreadable_secrets)
    return f"{_UNREADABLE} {refs}"


def render(plan: Plan, color: bool) -> str:
    out: list[str] = []
    for change in plan.changes:
        out += [*_change_block(change, color), ""]
    if plan.unmanaged:
        out.append("Unmanaged (made outside mailgitops, left alone):")
        for u in plan.unmanaged:
            used = f" (provider {_free_text(u.provider, '')})" if u.provider else ""
            out.append(f"  {u.kind} {quote(u.id)}{used}")
        out.append("")
    for warning in plan.warnings:
        out.append(f"{paint('Warning:', 'yellow', color)} {_free_text(warning, '  ')}")
    if plan.unreadable_secrets:
        out.append(paint(_UNREADABLE, "yellow", color))
        out.extend(f"  - {_free_text(ref, '    ')}" for ref in plan.unreadable_secrets)
    if plan.warnings or plan.unreadable_secrets:
        out.append("")
    if plan.checks is not None:
        out += _check_section(plan, color)
    for refusal in plan.refusals:
        label = paint(paint("Refused:", "red", color), "bold", color)
        out.append(f"{label} {_free_text(refusal.message, '  ')}")
        out.extend(f"  - {_free_text(d, '    ')}" for d in refusal.details)
        out.append("")
    out.append(plan.summary_line())
    return "\n".join(out) + "\n"
