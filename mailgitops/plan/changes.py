"""What a plan changes: one Change per entry (an AttrChange per attribute it changes), and the
live entries it leaves alone (Unmanaged); each with its JSON form (SPEC §5)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from mailgitops.diagnostics import Place

Action = Literal["create", "update", "delete", "adopt"]
Kind = Literal["provider", "mailbox"]


@dataclass(frozen=True)
class AttrChange:
    """One changed attribute: `path` is dotted (`imap.port`); before/after are JSON values,
    None where absent. Sensitive attributes hold references, never values."""

    path: str
    before: Any
    after: Any
    sensitive: bool = False

    def to_json(self) -> dict[str, Any]:
        out = {"path": self.path, "before": self.before, "after": self.after}
        if self.sensitive:
            out["sensitive"] = True
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AttrChange:
        return cls(
            data["path"], data.get("before"), data.get("after"), data.get("sensitive", False)
        )


@dataclass(frozen=True)
class Change:
    action: Action
    kind: Kind
    id: str
    before: dict[str, Any] | None  # the live entry, without `managed`
    after: dict[str, Any] | None  # the desired entry
    diff: tuple[AttrChange, ...] = ()
    source: Place | None = None  # where the entry is in the config
    live_key: str | None = None  # the live entry's key when it differs (address case)
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "action": self.action,
            "kind": self.kind,
            "id": self.id,
            "before": self.before,
            "after": self.after,
            "diff": [d.to_json() for d in self.diff],
        }
        if self.source is not None:
            out["source"] = {"file": self.source.file, "line": self.source.line}
        if self.live_key is not None:
            out["live_key"] = self.live_key
        if self.notes:
            out["notes"] = list(self.notes)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Change:
        src = data.get("source")
        return cls(
            action=data["action"],
            kind=data["kind"],
            id=data["id"],
            before=data.get("before"),
            after=data.get("after"),
            diff=tuple(AttrChange.from_json(d) for d in data.get("diff", [])),
            source=Place(src["file"], src["line"], 1) if src else None,
            live_key=data.get("live_key"),
            notes=tuple(data.get("notes", ())),
        )


@dataclass(frozen=True)
class Unmanaged:
    kind: Kind
    id: str
    provider: str | None = None  # for a mailbox: the provider it uses

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "id": self.id,
            **({"provider": self.provider} if self.provider else {}),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Unmanaged:
        return cls(data["kind"], data["id"], data.get("provider"))
