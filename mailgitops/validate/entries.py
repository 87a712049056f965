"""What validation reads a config into: a provider entry per provider file, a mailbox entry per
item of a mailboxes file (merged over the file's `defaults:`), and the checked config that
gathers them with every finding. Each entry knows where its attributes are written, so a rule
reports a finding with one call."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from mailgitops.config.parse import Document
from mailgitops.config.places import place_of
from mailgitops.diagnostics import Diagnostics, Severity
from mailgitops.model import PROVIDER_DEFAULTS, fold_address
from mailgitops.settings import Settings


def lookup(node: Any, path: tuple[str, ...], default: Any = None) -> Any:
    """The value at `path` of nested mappings, or `default` where the path ends early."""
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


class Entry:
    """What a provider entry and a mailbox entry share: their document, places in it, and
    findings placed there."""

    doc: Document

    def place(self, *path: str | int) -> tuple[int, int]:
        return place_of(self.doc.marked(), path)

    def report(
        self,
        found: Diagnostics,
        path: tuple[str | int, ...],
        message: str,
        rule: str,
        severity: Severity = "error",
    ) -> None:
        """A finding at the attribute `path` (at the entry itself when `path` is empty)."""
        found.add(self.doc.path, *self.place(*path), message, rule, severity)


@dataclass
class ProviderEntry(Entry):
    doc: Document
    data: dict[str, Any]
    memo: dict[tuple[str, ...], Any] = field(default_factory=dict, compare=False)

    @property
    def name(self) -> str | None:
        name = self.data.get("name")
        return name if isinstance(name, str) else None

    def get(self, *path: str, default: Any = None) -> Any:
        return lookup(self.data, path, default)

    def setting(self, *path: str) -> Any:
        """An attribute as the provider means it: the model's default when it is left out."""
        return self.get(*path, default=PROVIDER_DEFAULTS.get(path))

    def usable(self, *path: str, choices: tuple[Any, ...]) -> Any:
        """A setting for the checks of the provider's mailboxes, or None when it is not one of
        `choices` (the provider's own checks report that). Asked for every mailbox: looked up
        once per provider."""
        if path not in self.memo:
            value = self.setting(*path)
            self.memo[path] = value if value in choices else None
        return self.memo[path]

    def place_text(self, *path: str | int) -> str:
        line, col = self.place(*path)
        return f"{self.doc.path}:{line}:{col}"


_Entry = TypeVar("_Entry", bound=Entry)


def earlier(seen: dict[str, _Entry], key: str, entry: _Entry) -> _Entry | None:
    """The entry that had `key` before `entry` (a duplicate), or None: then `entry` is the
    first, and is recorded as such."""
    first = seen.setdefault(key, entry)
    return None if first is entry else first


def merge(defaults: dict[str, Any] | None, item: dict[str, Any]) -> dict[str, Any]:
    """`defaults` under `item`; nested mappings (sync) are merged key by key."""
    if not defaults:
        return dict(item)
    merged = dict(defaults)
    for key, value in item.items():
        base = merged.get(key)
        if isinstance(base, dict) and isinstance(value, dict):
            merged[key] = {**base, **value}
        else:
            merged[key] = value
    return merged


def _has(node: Any, path: tuple[str | int, ...]) -> bool:
    for part in path:
        found = (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        )
        if not found:
            return False
        node = node[part]
    return True


@dataclass
class MailboxEntry(Entry):
    doc: Document
    index: int  # in the file's `mailboxes:` list
    merged: dict[str, Any]  # the item over the file's `defaults:`
    provider: str | None = None  # resolved name, once known

    @property
    def address(self) -> str | None:
        address = self.merged.get("address")
        return fold_address(address) if isinstance(address, str) and "@" in address else None

    def place(self, *path: str | int) -> tuple[int, int]:
        """Where an attribute of the merged mailbox is written: in the item itself, else in
        the file's defaults, else the item's mapping. The empty path: the mailbox itself."""
        if not path:
            return self.place_of_item
        marked = self.doc.marked()
        item = marked["mailboxes"][self.index]
        defaults = marked.get("defaults")
        if _has(item, path):
            return place_of(item, path)
        if isinstance(defaults, dict) and _has(defaults, path):
            return place_of(defaults, path)
        return place_of(item, path[:1]) if path[0] in item else self.place_of_item

    @property
    def place_of_item(self) -> tuple[int, int]:
        """Where the mailbox's mapping starts."""
        return self.doc.item_places[self.index]

    def place_text(self, *path: str | int) -> str:
        line, _col = self.place(*path)
        return f"{self.doc.path}:{line}"


@dataclass
class CheckedConfig:
    """The outcome of validation: every finding, and the entries as far as they could be read
    (normalize.py turns them into the typed model when there is no error)."""

    root: Path
    diagnostics: Diagnostics
    providers: list[ProviderEntry] = field(default_factory=list)
    mailboxes: list[MailboxEntry] = field(default_factory=list)
    settings: Settings = field(default_factory=Settings)  # built once, from the checked file

    @property
    def ok(self) -> bool:
        return not any(d.severity == "error" for d in self.diagnostics.items)
