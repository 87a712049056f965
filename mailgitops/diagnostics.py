"""What a check finds in a config: a Diagnostic, with its place (FILE:LINE:COL), a severity
and a rule id; and the place type the model shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mailgitops.output import paint, visible

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Place:
    """A place in the config: FILE relative to the config root, 1-based LINE and COL. Where an
    entry is defined, and where a diagnostic points."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, order=True)
class Diagnostic:
    file: str
    line: int
    col: int
    severity: Severity
    message: str
    rule: str

    def __str__(self) -> str:
        return self.line_text(color=False)

    def line_text(self, color: bool) -> str:
        """`FILE:LINE:COL: severity: MESSAGE [rule]`, the one line every command prints a
        finding as: one line whatever the file name or message holds (key names and file
        names come from the config, and a line break in one must not forge a line of its
        own); the severity painted when `color`."""
        severity = paint(self.severity, "red" if self.severity == "error" else "yellow", color)
        return (
            f"{visible(self.file)}:{self.line}:{self.col}: {severity}: "
            f"{visible(self.message)} [{self.rule}]"
        )

    def to_json(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "severity": self.severity,
            "message": self.message,
            "rule": self.rule,
        }


def sort_key(diag: Diagnostic) -> tuple[str, int, int, str, str]:
    return (diag.file, diag.line, diag.col, diag.rule, diag.message)


class Diagnostics:
    """Gathers every finding of a run; checks never stop at the first one."""

    def __init__(self) -> None:
        self.items: list[Diagnostic] = []

    def add(
        self, file: str, line: int, col: int, message: str, rule: str, severity: Severity = "error"
    ) -> None:
        self.items.append(Diagnostic(file, line, col, severity, message, rule))

    def extend(self, diags: list[Diagnostic]) -> None:
        self.items.extend(diags)

    # Counted over the distinct findings that `sorted()` reports: a finding found twice (by two
    # checks, or once per document that shares it) is one error in every command's count.
    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.sorted() if d.severity == "error"]

    def sorted(self) -> list[Diagnostic]:
        return sorted(set(self.items), key=sort_key)
