"""The live state and the interface every state backend implements.

Entries are kept as plain dicts: they are the JSON edge of the tool, and entries made outside
mailgitops may hold only some attributes (SPEC §3)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

FORMAT_VERSION = 1

Entries = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class State:
    """One version of the live system."""

    lineage: str | None = None
    serial: int = 0
    providers: Entries = field(default_factory=dict)
    mailboxes: Entries = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    @property
    def exists(self) -> bool:
        """False for the empty live system of a state that was never written."""
        return self.lineage is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "lineage": self.lineage,
            "serial": self.serial,
            "providers": self.providers,
            "mailboxes": self.mailboxes,
        }

    def checksum(self) -> str:
        """sha256 over the canonical JSON of the whole state: a saved plan records it so that
        any change to live (by apply, a user, an export job) makes the plan stale."""
        digest = hashlib.sha256()
        for piece in _canonical(self.to_json()):
            digest.update(piece.encode())
        return digest.hexdigest()

    def managed(self, kind: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
        entries = self.providers if kind == "provider" else self.mailboxes
        for key, entry in entries.items():
            if entry.get("managed") is True:
                yield key, entry


@dataclass(frozen=True)
class LockHolder:
    """Who holds a state lock, for the message a waiting apply prints."""

    pid: int | None
    host: str | None
    since: str | None
    info: str = ""

    def describe(self) -> str:
        parts = [
            f"pid {self.pid}" if self.pid is not None else "",
            f"on {self.host}" if self.host else "",
            f"since {self.since}" if self.since else "",
            self.info,
        ]
        return ", ".join(p for p in parts if p) or "unknown holder"


class StateBackend(Protocol):
    """Where the live state lives. Implementations: file (state/file.py), PostgreSQL."""

    def describe(self) -> str:
        """A human name for messages: a path or a DSN without its password."""
        ...

    def read(self) -> State:
        """The current state; an empty State when none was ever written. Raises StateError for
        a state that exists but cannot be used (it is then never overwritten)."""
        ...

    def write(self, new: State, previous: State) -> None:
        """Replace `previous` (as read under the lock) by `new`, atomically. Must be called
        while holding lock()."""
        ...

    def lock(self, timeout: float) -> AbstractContextManager[None]:
        """An exclusive lock held from read to write. Waits up to `timeout` seconds, then raises
        LockError naming the holder. Released by the OS or server when the holder dies."""
        ...


_CHUNK = 1000  # entries encoded at a time


def _dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _canonical(document: dict[str, Any]) -> Iterator[str]:
    """`_dump(document)` in pieces: the same characters, but the large mappings (providers,
    mailboxes) encoded a thousand entries at a time, so the whole state is never in memory a
    second time as one string (0.9 GB at a million mailboxes, docs/performance.md)."""
    yield "{"
    for index, key in enumerate(sorted(document)):
        yield f"{',' if index else ''}{_dump(key)}:"
        value = document[key]
        if not isinstance(value, dict) or len(value) <= _CHUNK:
            yield _dump(value)
            continue
        names = sorted(value)
        yield "{"
        for start in range(0, len(names), _CHUNK):
            chunk = _dump({name: value[name] for name in names[start : start + _CHUNK]})
            yield ("," if start else "") + chunk[1:-1]
        yield "}"
    yield "}"
