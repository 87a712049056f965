"""Secret references: {env: NAME} or {file: PATH}. Values are read only to check that apply can
deliver them, never returned to anything that prints, logs or stores. Which secrets a plan
delivers, and whether they are allowed and readable, is rules/secret_policy.py's.

Rotation: the state stores the reference only. A user who rotates the value behind an
unchanged reference bumps its `version:` label; the plan then shows the secret as changed and
apply delivers the new value (docs/secrets.md)."""

from __future__ import annotations

import fnmatch
import os
import stat
from pathlib import Path
from typing import Any

from mailgitops.errors import SecretError
from mailgitops.settings import SecretsPolicy

MAX_SECRET_BYTES = 64 * 1024


def describe(ref: dict[str, Any]) -> str:
    """`env:NAME` or `file:PATH`, for messages."""
    if "env" in ref:
        return f"env:{ref['env']}"
    return f"file:{ref.get('file')}"


def policy_violation(ref: dict[str, Any], policy: SecretsPolicy | None, root: Path) -> str | None:
    """Why `ref` is not allowed by the `secrets:` section of mailgitops.yaml, or None. With
    `env_allow`, an {env: NAME} must match one of its glob patterns; with `file_root`, a
    {file: PATH} must resolve (symlinks resolved) inside that directory — so a pull request
    cannot point a password at /etc/shadow or at a CI credential. Nothing is read."""
    if policy is None:
        return None
    if "env" in ref:
        patterns = policy.env_allow
        name = str(ref["env"])
        if patterns is not None and not any(fnmatch.fnmatchcase(name, p) for p in patterns):
            return f"environment variable {name} is not allowed by secrets.env_allow"
        return None
    file_root = policy.file_root
    if file_root is None or not isinstance(ref.get("file"), str):
        return None
    allowed = (root / Path(file_root).expanduser()).resolve()
    target = (root / Path(ref["file"]).expanduser()).resolve()
    if not target.is_relative_to(allowed):
        return f"{ref['file']} resolves outside secrets.file_root ({file_root})"
    return None


class _Unreadable(Exception):
    pass


def _read_file(raw: str, root: Path) -> bytes:
    """The bytes of a secret file. Only a regular file is read: the file is opened without
    blocking (a FIFO or a device such as /dev/kmsg would otherwise make plan and apply wait
    for ever), checked with fstat on the open descriptor (no race with a rename), and read up
    to MAX_SECRET_BYTES. Symbolic links are followed: mounted secrets (Kubernetes) are links;
    `secrets.file_root` limits where they may lead."""
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = root / path
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise _Unreadable(f"cannot read the file ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _Unreadable("not a regular file; devices, FIFOs and directories are never read")
        if info.st_size > MAX_SECRET_BYTES:
            raise _Unreadable(f"the file is larger than {MAX_SECRET_BYTES} bytes")
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_SECRET_BYTES:
            chunk = os.read(fd, MAX_SECRET_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise _Unreadable(f"cannot read the file ({exc.strerror})") from None
    finally:
        os.close(fd)
    if size > MAX_SECRET_BYTES:
        raise _Unreadable(f"the file is larger than {MAX_SECRET_BYTES} bytes")
    return b"".join(chunks)


def _value(ref: dict[str, Any], root: Path) -> str:
    """The value behind `ref`; _Unreadable says why there is none."""
    if "env" in ref:
        value = os.environ.get(str(ref["env"]))
        if value is None:
            raise _Unreadable("environment variable not set")
        if value == "":
            raise _Unreadable("environment variable is empty")
        try:
            value.encode("utf-8")  # undecodable bytes arrive as lone surrogates
        except UnicodeEncodeError:
            raise _Unreadable("environment variable is not valid UTF-8") from None
        return value
    raw = ref.get("file")
    if not isinstance(raw, str):
        raise _Unreadable("not a secret reference")
    data = _read_file(raw, root)
    if not data:
        raise _Unreadable("the file is empty")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _Unreadable("the file is not UTF-8 text") from None
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise _Unreadable("the file holds only a line break")
    return text


def unreadable_reason(ref: dict[str, Any], root: Path) -> str | None:
    """Why the value behind `ref` cannot be read here, or None when it can. The value itself
    is discarded at once."""
    try:
        _value(ref, root)
    except _Unreadable as exc:
        return str(exc)
    return None


def read_value(ref: dict[str, Any], root: Path) -> str:
    """The value behind `ref`, for the one caller that must hand it on (the PostgreSQL state
    backend's DSN and password, passed straight to the driver). Never print, log or store it.
    A file's trailing newline is not part of the value: editors add one."""
    try:
        return _value(ref, root)
    except _Unreadable as exc:
        raise SecretError(f"{describe(ref)}: {exc}") from None
