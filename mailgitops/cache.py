"""A content-addressed cache of parsed, validated and normalized files, so that a plan on
unchanged files parses no YAML at all.

Entries are keyed by a hash of everything that can change their meaning: the file's bytes,
the JSON Schemas and the tool's version. An entry is JSON (never pickle: a cache restored in
CI from another branch must not be able to run code), written atomically, private to the user
(directory 0700, files 0600), and authenticated: each entry carries an HMAC-SHA256 under a key
that is not in the cache (MAILGITOPS_CACHE_KEY, else a random key kept in a 0600 file under
$XDG_STATE_HOME/mailgitops, else ~/.local/state/mailgitops). A cache restored from another
job, or written by a pull request's job, holds entries under another key: they are ignored
and rewritten, so a forged entry of any kind costs time, never a result (SPEC §9;
tests/test_trust.py poisons every kind). `apply` and the rules (access, safety, secrets)
never read the cache at all.

Location: $MAILGITOPS_CACHE_DIR, else $XDG_CACHE_HOME/mailgitops, else ~/.cache/mailgitops.
`--no-cache` turns it off."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailgitops import __version__, schema
from mailgitops.fsutil import atomic_write

if TYPE_CHECKING:
    from mailgitops.plan import Desired

ENV_VAR = "MAILGITOPS_CACHE_DIR"
KEY_ENV = "MAILGITOPS_CACHE_KEY"
ENTRY_FORMAT = 2
_MAC_BYTES = 64  # hex of HMAC-SHA256, then a newline, then the entry's JSON


def default_directory() -> Path:
    configured = os.environ.get(ENV_VAR)
    if configured:
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "mailgitops"


def key_file() -> Path:
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "state"
    return base / "mailgitops" / "cache.key"


def _secret_key() -> bytes | None:
    """The key that authenticates entries: never stored in the cache directory, which CI
    restores from jobs that pull requests control. None (no cache) when it cannot be had."""
    configured = os.environ.get(KEY_ENV)
    if configured:
        return configured.encode()
    path = key_file()
    try:
        with open(path, "rb") as fh:
            key = fh.read(256)
        if len(key) >= 32:
            return key
    except OSError:
        pass
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(path, secrets.token_hex(32).encode(), mode=0o600, overwrite=False)
    except FileExistsError:
        pass  # another process made it first: use theirs
    except OSError:
        return None
    try:
        with open(path, "rb") as fh:
            key = fh.read(256)
    except OSError:
        return None
    return key if len(key) >= 32 else None


class Cache:
    """Get and put JSON values by kind and key; every failure is a miss, never an error."""

    def __init__(self, directory: Path, secret: bytes) -> None:
        self.directory = directory
        self._secret = secret
        self._salt = f"{__version__}\0{schema.fingerprint()}\0{ENTRY_FORMAT}\0".encode()

    def key(self, kind: str, *parts: bytes) -> str:
        digest = hashlib.sha256(self._salt + kind.encode() + b"\0")
        for part in parts:
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
        return digest.hexdigest()

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def _mac(self, key: str, body: bytes) -> bytes:
        mac = hmac.new(self._secret, key.encode() + b"\0", hashlib.sha256)
        mac.update(body)
        return mac.hexdigest().encode()

    def get(self, key: str) -> Any:
        """The value stored under `key`, or None. An entry whose MAC does not verify (forged,
        from another key, mangled) is a miss."""
        try:
            with open(self._path(key), "rb") as fh:
                raw = fh.read()
        except OSError:
            return None
        mac, body = raw[:_MAC_BYTES], raw[_MAC_BYTES + 1 :]
        if len(raw) <= _MAC_BYTES or not hmac.compare_digest(mac, self._mac(key, body)):
            return None  # ignored, and rewritten by the next put
        try:
            return json.loads(body)
        except ValueError:
            return None

    def put(self, key: str, value: Any) -> None:
        path = self._path(key)
        body = json.dumps(value, separators=(",", ":")).encode()
        with contextlib.suppress(OSError):  # a read-only or full cache only costs speed
            _private_dir(self.directory)
            _private_dir(path.parent)
            atomic_write(path, self._mac(key, body) + b"\n" + body, mode=0o600, durable=False)

    # The whole config as the plan compares it (pipeline.Project.desired), under a key over
    # every file of the config: the desired entries and the config's warnings.
    def desired(self, key: str) -> tuple[Desired, tuple[str, ...]] | None:
        from mailgitops.plan import Desired

        hit = self.get(key)
        if not isinstance(hit, dict):
            return None
        try:
            return Desired.from_json(hit["desired"]), tuple(str(w) for w in hit["warnings"])
        except (KeyError, TypeError, ValueError):
            return None  # a mangled entry: computed again and rewritten

    def remember_desired(self, key: str, desired: Desired, warnings: tuple[str, ...]) -> None:
        self.put(key, {"desired": desired.to_json(), "warnings": list(warnings)})


def _private_dir(path: Path) -> None:
    """A directory only its owner can read: entries say what a config holds."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)


def open_cache(disabled: bool) -> Cache | None:
    if disabled:
        return None
    secret = _secret_key()
    return None if secret is None else Cache(default_directory(), secret)
