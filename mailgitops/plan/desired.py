"""The desired side of a plan: the config's entries in the state's form."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mailgitops.diagnostics import Place
from mailgitops.model import Config

Entry = tuple[dict[str, Any], Place | None]


@dataclass(frozen=True)
class Desired:
    """The config as the plan compares it: each entry's normalized attributes (the state's
    form) and where it is defined. Cached whole for unchanged configs (pipeline.py)."""

    providers: dict[str, Entry]
    mailboxes: dict[str, Entry]

    @classmethod
    def of(cls, config: Config) -> Desired:
        return cls(
            {name: (p.attrs(), p.source) for name, p in config.providers.items()},
            {addr: (m.attrs(), m.source) for addr, m in config.mailboxes.items()},
        )

    def plain(self) -> dict[str, Any]:
        """The entries without their places: what a plan file keeps and apply compares with
        the config (planfile.py)."""
        return {
            "providers": {k: attrs for k, (attrs, _src) in self.providers.items()},
            "mailboxes": {k: attrs for k, (attrs, _src) in self.mailboxes.items()},
        }

    def to_json(self) -> dict[str, Any]:
        """The entries with their places, as the cache keeps them (pipeline.py)."""

        def side(entries: dict[str, Entry]) -> dict[str, Any]:
            return {
                key: [attrs, [src.file, src.line, src.col] if src else None]
                for key, (attrs, src) in entries.items()
            }

        return {"providers": side(self.providers), "mailboxes": side(self.mailboxes)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Desired:
        def side(entries: dict[str, Any]) -> dict[str, Entry]:
            return {
                key: (attrs, Place(src[0], src[1], src[2]) if src else None)
                for key, (attrs, src) in entries.items()
            }

        return cls(side(data["providers"]), side(data["mailboxes"]))
