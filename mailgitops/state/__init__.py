"""Where the live state lives (SPEC §5 "State location"), and the backend that keeps it.

The first of these that is set wins:
1. `--state PATH` (relative to the current directory, like any path on a command line),
2. the environment variable MAILGITOPS_STATE (same),
3. the `state:` section of mailgitops.yaml, `{backend: file, path: PATH}` (relative to the
   config root, so the setting means the same wherever the command runs), or
   `{backend: postgres, dsn: DSN, password: REF, workspace: NAME}`,
4. `<root>/mailgitops.state.json`.
A location starting with postgres:// or postgresql:// names the PostgreSQL backend; its
workspace is the URL's `?workspace=NAME` parameter, else `default`
(docs/state-backends.md).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from mailgitops.errors import StateError
from mailgitops.settings import StateSetting
from mailgitops.state.base import State, StateBackend
from mailgitops.state.file import FileBackend
from mailgitops.state.file_format import StateVerdicts

if TYPE_CHECKING:
    from mailgitops.state.postgres import PostgresBackend

__all__ = ["DEFAULT_STATE_FILE", "ENV_VAR", "State", "StateBackend", "open_backend"]

DEFAULT_STATE_FILE = "mailgitops.state.json"
ENV_VAR = "MAILGITOPS_STATE"

_POSTGRES_SCHEMES = ("postgres://", "postgresql://")
_BACKENDS = ("file", "postgres")


def open_backend(
    state_arg: str | None,
    root: Path,
    setting: StateSetting | None = None,
    verdicts: StateVerdicts | None = None,
) -> StateBackend:
    """The backend for this run. `setting` is the `state:` section of mailgitops.yaml;
    `verdicts`, the cache of a command that may use one (the file backend asks it whether
    the state's exact bytes passed the schema check before)."""
    if state_arg is not None:
        if not state_arg:
            raise StateError("--state needs a path or a postgresql:// URL, not an empty string")
        return _backend(_kind_of(state_arg), state_arg, Path(), verdicts)
    # An empty variable counts as unset, as `MAILGITOPS_STATE= mailgitops plan` intends.
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        return _backend(_kind_of(from_env), from_env, Path(), verdicts)
    if setting is not None:
        if setting.backend == "postgres":
            return _postgres_from_setting(setting, root)
        return _backend(setting.backend, setting.path or DEFAULT_STATE_FILE, root, verdicts)
    return _backend("file", DEFAULT_STATE_FILE, root, verdicts)


def _kind_of(location: str) -> str:
    return "postgres" if location.startswith(_POSTGRES_SCHEMES) else "file"


def _backend(kind: str, location: str, base: Path, verdicts: StateVerdicts | None) -> StateBackend:
    """The one place that maps a backend kind to its class."""
    if kind == "file":
        return FileBackend(base / Path(location).expanduser(), verdicts)
    if kind == "postgres":
        return _postgres(location)
    raise StateError(
        f"unknown state backend {kind!r} in mailgitops.yaml (known: {', '.join(_BACKENDS)})"
    )


def _postgres(
    dsn: str,
    *,
    password: str | None = None,
    workspace: str | None = None,
    label: str | None = None,
) -> PostgresBackend:
    for value in (dsn, password):
        try:
            (value or "").encode("utf-8")
        except UnicodeEncodeError:  # undecodable bytes in an environment variable
            raise StateError(
                "the PostgreSQL DSN or password is not valid UTF-8 text (it is not shown)"
            ) from None
    # Imported here: psycopg is an optional dependency, and loading it costs every command
    # that does not use PostgreSQL.
    try:
        from mailgitops.state.postgres import PostgresBackend
    except ImportError:
        raise StateError(
            "the PostgreSQL state backend needs psycopg 3: pip install 'mailgitops[postgres]'"
        ) from None
    return PostgresBackend.from_location(dsn, password=password, workspace=workspace, label=label)


def _postgres_from_setting(setting: StateSetting, root: Path) -> PostgresBackend:
    """`state: {backend: postgres, dsn: …, password: {env: …}, workspace: NAME}`. The DSN may
    itself be a secret reference (it may hold a host name or a password one does not put in
    Git); the password is read from its reference and handed to the driver on its own."""
    from mailgitops import secrets
    from mailgitops.errors import SecretError

    values: dict[str, str | None] = {}
    for key, value in (("dsn", setting.dsn), ("password", setting.password)):
        if isinstance(value, dict):
            try:
                values[key] = secrets.read_value(value, root)
            except SecretError as exc:
                raise StateError(f"mailgitops.yaml: state.{key}: cannot read {exc}") from None
        elif isinstance(value, str) and key == "dsn":
            values[key] = value
        elif value is not None:
            raise StateError(
                f"mailgitops.yaml: state.{key} must be "
                + ("a string or " if key == "dsn" else "")
                + "a secret reference {env: NAME} or {file: PATH}"
            )
    dsn = values.get("dsn")
    if not dsn:
        raise StateError(
            "mailgitops.yaml: state.backend is postgres, so state.dsn must name the database: "
            "a postgresql:// URL or a libpq key=value string without the password, or a "
            "secret reference {env: NAME} / {file: PATH} to one"
        )
    reference = setting.dsn
    return _postgres(
        dsn,
        password=values.get("password"),
        workspace=setting.workspace,
        label=f"mailgitops.yaml state.dsn ({secrets.describe(reference)})"
        if isinstance(reference, dict)
        else None,
    )
