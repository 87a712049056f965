"""A content-addressed cache of parsed, validated and normalized files, so that a plan on
unchanged files parses no YAML at all.

Entries are keyed by a hash of everything that can change their meaning: the file's bytes,
the JSON Schemas and the tool's version. An entry is JSON (never pickle: a cache restored in
CI from another branch must not be able to run code), written atomically, and checked on read:
a corrupt, truncated or foreign entry is ignored and rewritten. The cache can never change a
result (tests/test_cache.py runs the same cases with and without it).

Location: $MAILGITOPS_CACHE_DIR, else $XDG_CACHE_HOME/mailgitops, else ~/.cache/mailgitops.
Safe to keep between CI runs (actions/cache); `--no-cache` turns it off."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from mailgitops import __version__, schema
from mailgitops.fsutil import atomic_write

ENV_VAR = "MAILGITOPS_CACHE_DIR"
ENTRY_FORMAT = 1


def default_directory() -> Path:
    configured = os.environ.get(ENV_VAR)
    if configured:
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "mailgitops"


class Cache:
    """Get and put JSON values by kind and key; every failure is a miss, never an error."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._salt = f"{__version__}\0{schema.fingerprint()}\0{ENTRY_FORMAT}\0".encode()

    def key(self, kind: str, *parts: bytes) -> str:
        digest = hashlib.sha256(self._salt + kind.encode() + b"\0")
        for part in parts:
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
        return digest.hexdigest()

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> Any:
        """The value stored under `key`, or None."""
        try:
            with open(self._path(key), "rb") as fh:
                entry = json.loads(fh.read())
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict) or entry.get("key") != key:
            return None  # foreign or mangled: ignored, and rewritten by the next put
        return entry.get("value")

    def put(self, key: str, value: Any) -> None:
        path = self._path(key)
        data = json.dumps({"key": key, "value": value}, separators=(",", ":")).encode()
        with contextlib.suppress(OSError):  # a read-only or full cache only costs speed
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, data, mode=0o644, durable=False)


def open_cache(disabled: bool) -> Cache | None:
    return None if disabled else Cache(default_directory())
