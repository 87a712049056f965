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
from mailgitops.config.parse import Document
from mailgitops.fsutil import atomic_write

if TYPE_CHECKING:  # imported when used: validate, which never asks for it, does not pay for it
    from mailgitops.plan.desired import Desired

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
    """Get and put JSON values by kind and key; every failure is a miss, never an error. What
    an entry of a parsed file or a rendered template holds (its key, its JSON, the check of a
    hit) is known here only: the config layer asks for a document or a rendered text."""

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

    # -- parsed files -----------------------------------------------------------------------

    def _document_key(self, relpath: str, raw: bytes) -> str:
        # The folder decides the schema, so it is part of the key; the name is not.
        return self.key("file", relpath.rpartition("/")[0].encode(), raw)

    def document(self, relpath: str, raw: bytes) -> Document | None:
        """The file parsed from `raw`, when a file of its folder with these bytes was loaded
        and found schema-valid before (the Document is `clean`); else None. A mangled entry
        is a miss, and is rewritten."""
        hit = self.get(self._document_key(relpath, raw))
        if not isinstance(hit, dict) or not isinstance(hit.get("data"), dict):
            return None
        try:
            return Document(
                relpath,
                hit["data"],
                raw=raw,
                root_place=(hit["root_mark"][0], hit["root_mark"][1]),
                item_places=[(m[0], m[1]) for m in hit["item_marks"]],
                clean=True,
            )
        except (KeyError, TypeError, IndexError):
            return None

    def remember_document(self, doc: Document) -> None:
        """Keep a document that has no finding of its own (loaded and schema-valid), unless
        it came from here."""
        if doc.clean or doc.diagnostics or doc.data is None:
            return
        self.put(
            self._document_key(doc.path, doc.raw),
            {"data": doc.data, "root_mark": doc.root_place, "item_marks": doc.item_places},
        )

    # -- rendered templates -------------------------------------------------------------------

    def _rendered_key(self, relpath: str, raw: bytes, inputs: bytes) -> str:
        # Keyed by every input of the render: the template, the digest of vars:, the data
        # files and every shared template (any of them may be included), and the folder.
        return self.key("template", relpath.rpartition("/")[0].encode(), raw, inputs)

    def rendered(self, relpath: str, raw: bytes, inputs: bytes) -> str | None:
        """The text the template `raw` rendered to with the inputs of digest `inputs`, when
        that text parsed without a finding before; else None."""
        hit = self.get(self._rendered_key(relpath, raw, inputs))
        text = hit.get("text") if isinstance(hit, dict) else None
        return text if isinstance(text, str) else None

    def remember_rendered(self, relpath: str, raw: bytes, inputs: bytes, text: str) -> None:
        self.put(self._rendered_key(relpath, raw, inputs), {"text": text})

    # -- state verdicts -----------------------------------------------------------------------

    # The file state backend's verdicts (state/file_format.StateVerdicts): whether the state
    # file whose bytes have this sha256 passed the schema check before.
    def state_known_valid(self, digest: bytes) -> bool:
        return self.get(self.key("state-valid", digest)) is True

    def remember_state_valid(self, digest: bytes) -> None:
        self.put(self.key("state-valid", digest), True)

    # -- the whole config -----------------------------------------------------------------------

    # The whole config as the plan compares it (pipeline.Project.desired), under a key over
    # every file of the config: the desired entries and the config's warnings.
    def desired(self, key: str) -> tuple[Desired, tuple[str, ...]] | None:
        from mailgitops.plan.desired import Desired

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
