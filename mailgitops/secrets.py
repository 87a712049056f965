"""Secret references: {env: NAME} or {file: PATH}. Values are read only to check that apply can
deliver them, never returned to anything that prints, logs or stores.

Rotation: the state stores the reference only. A user who rotates the value behind an
unchanged reference bumps its `version:` label; the plan then shows the secret as changed and
apply delivers the new value (docs/secrets.md)."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailgitops.errors import SecretError
from mailgitops.model import KEEP_LIVE, SENSITIVE_PATHS

if TYPE_CHECKING:  # validate needs only the policy: no plan machinery at import
    from mailgitops.plan import Change, Plan

MAX_SECRET_BYTES = 64 * 1024


def describe(ref: dict[str, Any]) -> str:
    """`env:NAME` or `file:PATH`, for messages."""
    if "env" in ref:
        return f"env:{ref['env']}"
    return f"file:{ref.get('file')}"


def policy_violation(ref: dict[str, Any], settings: dict[str, Any], root: Path) -> str | None:
    """Why `ref` is not allowed by the `secrets:` section of mailgitops.yaml, or None. With
    `env_allow`, an {env: NAME} must match one of its glob patterns; with `file_root`, a
    {file: PATH} must resolve (symlinks resolved) inside that directory — so a pull request
    cannot point a password at /etc/shadow or at a CI credential. Nothing is read."""
    section = settings.get("secrets")
    if not isinstance(section, dict):
        return None
    if "env" in ref:
        patterns = section.get("env_allow")
        name = str(ref["env"])
        if isinstance(patterns, list) and not any(
            fnmatch.fnmatchcase(name, str(p)) for p in patterns
        ):
            return f"environment variable {name} is not allowed by secrets.env_allow"
        return None
    file_root = section.get("file_root")
    if not isinstance(file_root, str) or not isinstance(ref.get("file"), str):
        return None
    allowed = (root / Path(file_root).expanduser()).resolve()
    target = (root / Path(ref["file"]).expanduser()).resolve()
    if not target.is_relative_to(allowed):
        return f"{ref['file']} resolves outside secrets.file_root ({file_root})"
    return None


def unreadable_reason(ref: dict[str, Any], root: Path) -> str | None:
    """Why the value behind `ref` cannot be read here, or None when it can. The value itself
    is discarded at once."""
    if "env" in ref:
        value = os.environ.get(str(ref["env"]))
        if value is None:
            return "environment variable not set"
        return "environment variable is empty" if value == "" else None
    raw = ref.get("file")
    if not isinstance(raw, str):
        return "not a secret reference"
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = root / path
    try:
        with open(path, "rb") as fh:
            size = len(fh.read(MAX_SECRET_BYTES + 1))
    except OSError as exc:
        return f"cannot read the file ({exc.strerror})"
    if size > MAX_SECRET_BYTES:
        return f"the file is larger than {MAX_SECRET_BYTES} bytes"
    return "the file is empty" if size == 0 else None


def read_value(ref: dict[str, Any], root: Path) -> str:
    """The value behind `ref`, for the one caller that must hand it on (the PostgreSQL state
    backend's DSN and password, passed straight to the driver). Never print, log or store it.
    A file's trailing newline is not part of the value: editors add one."""
    reason = unreadable_reason(ref, root)
    if reason is not None:
        raise SecretError(f"{describe(ref)}: {reason}")
    if "env" in ref:
        return os.environ[str(ref["env"])]
    path = Path(str(ref["file"])).expanduser()
    if not path.is_absolute():
        path = root / path
    try:
        raw = path.read_bytes()[:MAX_SECRET_BYTES]
        value = raw.decode("utf-8")
    except OSError as exc:
        raise SecretError(f"{describe(ref)}: cannot read the file ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise SecretError(f"{describe(ref)}: the file is not UTF-8 text") from None
    value = value.removesuffix("\n").removesuffix("\r")
    if not value:
        raise SecretError(f"{describe(ref)}: the file holds only a line break")
    return value


def _refs(entry: dict[str, Any] | None) -> Iterator[tuple[str, dict[str, Any]]]:
    if not entry:
        return
    for path in SENSITIVE_PATHS:
        node: Any = entry
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            yield ".".join(path), node


def delivered(change: Change) -> Iterator[dict[str, Any]]:
    """The secret references whose value applying `change` sends to the CRM: all of a new
    entry's, and those an update or adopt changes (a new reference or a new version). An
    adopt that keeps live's reference (or `{keep: live}`) sends nothing: the CRM keeps what it
    has."""
    if change.action == "delete":
        return
    changed = {d.path for d in change.diff}
    for path, ref in _refs(change.after):
        if ref == KEEP_LIVE:
            continue  # refused on a create by rules/secret_policy.py; nothing to read
        if change.action == "create" or path in changed:
            yield ref


def unreadable(changes: Iterable[Change], root: Path) -> list[str]:
    """`env:NAME (reason)` for every delivered secret that cannot be read here."""
    out: dict[str, None] = {}
    for change in changes:
        for ref in delivered(change):
            reason = unreadable_reason(ref, root)
            if reason is not None:
                out[f"{describe(ref)} ({reason})"] = None
    return list(out)


def violations(changes: Iterable[Change], settings: dict[str, Any], root: Path) -> list[str]:
    """`env:NAME: reason` for every delivered secret that mailgitops.yaml does not allow."""
    out: dict[str, None] = {}
    for change in changes:
        for ref in delivered(change):
            reason = policy_violation(ref, settings, root)
            if reason is not None:
                out[f"{describe(ref)}: {reason}"] = None
    return list(out)


def with_unreadable(plan: Plan, root: Path) -> Plan:
    import dataclasses

    return dataclasses.replace(plan, unreadable_secrets=tuple(unreadable(plan.changes, root)))
