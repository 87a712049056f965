"""The results of `check`: one Check per step, grouped per provider. Plain data, with the JSON
form that `check --format json` prints and that a saved plan carries (`plan --check`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Status = Literal["ok", "warning", "fail", "skipped"]
STATUSES: tuple[Status, ...] = ("ok", "warning", "fail", "skipped")

MAX_SERVER_TEXT = 200  # characters of a server's answer kept in a message


def clean(text: str | bytes, limit: int = MAX_SERVER_TEXT) -> str:
    """Server (or config) text made safe to print: control characters (terminal escapes, line
    breaks, NUL) escaped as \\xNN, and cut to `limit` characters."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    out: list[str] = []
    for ch in text:
        code = ord(ch)
        if (
            code < 0x20
            or 0x7F <= code < 0xA0
            or ch
            in "\u2028\u2029\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
        ):
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    result = "".join(out)
    if len(result) > limit:
        result = result[:limit] + "…"
    return result


@dataclass(frozen=True)
class Check:
    """One step against one server: `server` is imap, smtp, exchange or autodiscover; `target`
    is host:port; `mailbox` is set for a login."""

    server: str
    target: str
    step: str
    status: Status
    message: str
    mailbox: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "server": self.server,
            "target": self.target,
            "step": self.step,
            "status": self.status,
            "message": self.message,
        }
        if self.mailbox is not None:
            out["mailbox"] = self.mailbox
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Check:
        status = data["status"]
        if status not in STATUSES:
            raise ValueError(f"unknown check status {status!r}")
        return cls(
            str(data["server"]),
            str(data["target"]),
            str(data["step"]),
            status,
            str(data["message"]),
            None if data.get("mailbox") is None else str(data["mailbox"]),
        )


@dataclass(frozen=True)
class ProviderResult:
    """The checks of one provider. `file` and `lines` say where it is written (lines per
    server key: imap, smtp, exchange; `""` for the provider's mapping)."""

    name: str
    file: str
    lines: dict[str, int]
    checks: tuple[Check, ...] = ()

    @property
    def failed(self) -> bool:
        return any(c.status == "fail" for c in self.checks)

    def line_for(self, server: str) -> int:
        return self.lines.get(server, self.lines.get("", 1))

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "file": self.file,
            "line": self.lines.get("", 1),
            "ok": not self.failed,
            "checks": [{**c.to_json(), "line": self.line_for(c.server)} for c in self.checks],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProviderResult:
        checks = tuple(Check.from_json(c) for c in data["checks"])
        lines = {"": int(data.get("line", 1))}
        for raw, check in zip(data["checks"], checks, strict=True):
            if isinstance(raw.get("line"), int):
                lines[check.server] = raw["line"]
        return cls(str(data["name"]), str(data["file"]), lines, checks)


def summary(results: list[ProviderResult]) -> dict[str, int]:
    counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
    for result in results:
        for check in result.checks:
            counts[check.status] += 1
    return {
        "providers": len(results),
        "failed_providers": sum(1 for r in results if r.failed),
        **counts,
    }
