"""The live state, the interface every state backend implements, and what every backend says
when it refuses a state (so that they refuse alike, in the same words).

Entries are kept as plain dicts: they are the JSON edge of the tool, and entries made outside
mailgitops may hold only some attributes (SPEC §3)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from mailgitops.errors import StateError

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


class StateBackend(Protocol):
    """Where the live state lives. Implementations: file (state/file.py), PostgreSQL
    (state/postgres.py)."""

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


# -- refusals shared by the backends ---------------------------------------------------------------


def refuse_if_changed(current: State, previous: State, where: str) -> None:
    """Before a write: the state as it is now must be the `previous` one the command read and
    planned against. Someone that does not take the lock (a hand edit, an export job, psql)
    may have changed it since, and writing now would silently undo their change."""
    if current is not previous and current.checksum() != previous.checksum():
        raise changed_while_running(where)


def changed_while_running(where: str) -> StateError:
    return StateError(
        f"state {where} changed while this command was running; nothing was written. Run the "
        "command again to plan against the current state."
    )


def unusable(where: str, reason: str, remedy: str) -> StateError:
    """A stored state that cannot be used: it is then never overwritten, whatever the command."""
    return StateError(
        f"cannot use state {where}: {reason}\n"
        f"mailgitops never overwrites a state it cannot read: {remedy}."
    )


def format_refusal(version: object) -> str | None:
    """Why a stored state of this format_version cannot be read, or None when it can, or when
    it is no number at all (the schema check then says what is wrong with it)."""
    is_number = isinstance(version, int | float) and not isinstance(version, bool)
    if not is_number or version == FORMAT_VERSION:
        return None
    return (
        f"it has format_version {version}, and this mailgitops reads only format_version "
        f"{FORMAT_VERSION}: use the mailgitops that wrote it"
    )


def schema_refusal(problems: list[str]) -> str:
    """Why a stored state that fails schemas/state.schema.json cannot be read."""
    return "it does not match schemas/state.schema.json:\n  " + "\n  ".join(problems)


def refuse_invalid_write(problems: list[str], where: str) -> None:
    """The last guard before storage: a state that read() would refuse must never be written,
    and a plaintext secret must never reach the file or the database."""
    if problems:
        raise StateError(
            f"refusing to write an invalid state to {where} (a bug in mailgitops):\n  "
            + "\n  ".join(problems)
        )


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
