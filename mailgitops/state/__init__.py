"""Where the live state lives (SPEC §5 "State location"), and the backend that keeps it.

The first of these that is set wins:
1. `--state PATH` (relative to the current directory, like any path on a command line),
2. the environment variable MAILGITOPS_STATE (same),
3. the `state:` section of mailgitops.yaml, `{backend: file, path: PATH}` (relative to the
   config root, so the setting means the same wherever the command runs),
4. `<root>/mailgitops.state.json`.
A location starting with postgres:// or postgresql:// names the PostgreSQL backend.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mailgitops.errors import StateError
from mailgitops.state.base import State, StateBackend
from mailgitops.state.file import FileBackend

__all__ = ["DEFAULT_STATE_FILE", "ENV_VAR", "State", "StateBackend", "open_backend"]

DEFAULT_STATE_FILE = "mailgitops.state.json"
ENV_VAR = "MAILGITOPS_STATE"

_POSTGRES_SCHEMES = ("postgres://", "postgresql://")
_BACKENDS = ("file", "postgres")


def open_backend(
    state_arg: str | None, root: Path, setting: dict[str, Any] | None = None
) -> StateBackend:
    """The backend for this run. `setting` is the parsed `state:` section of mailgitops.yaml."""
    if state_arg is not None:
        if not state_arg:
            raise StateError("--state needs a path or a postgresql:// URL, not an empty string")
        return _backend(_kind_of(state_arg), state_arg, Path())
    # An empty variable counts as unset, as `MAILGITOPS_STATE= mailgitops plan` intends.
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        return _backend(_kind_of(from_env), from_env, Path())
    if setting:
        kind = setting.get("backend", "file")
        return _backend(kind, str(setting.get("path") or DEFAULT_STATE_FILE), root)
    return _backend("file", DEFAULT_STATE_FILE, root)


def _kind_of(location: str) -> str:
    return "postgres" if location.startswith(_POSTGRES_SCHEMES) else "file"


def _backend(kind: str, location: str, base: Path) -> StateBackend:
    """The one place that maps a backend kind to its class."""
    if kind == "file":
        return FileBackend(base / Path(location).expanduser())
    if kind == "postgres":
        raise StateError("the PostgreSQL state backend is not available in this version")
    raise StateError(
        f"unknown state backend {kind!r} in mailgitops.yaml (known: {', '.join(_BACKENDS)})"
    )
