"""How the PostgreSQL backend reaches its database, and says what went wrong there without a
secret: the DSN may hold a password, and a password may be given separately; neither is ever
part of a message. Messages show the DSN with its password removed (state/dsn.py), and errors
from the driver are scrubbed of both."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeAlias

import psycopg
from psycopg import conninfo

from mailgitops.errors import StateError
from mailgitops.state.dsn import SECRET_PARAMS, redact, showable

Connection: TypeAlias = "psycopg.Connection[tuple[Any, ...]]"

_CONNECT_TIMEOUT_SECONDS = 10
_APP_NAME = re.compile(r"mailgitops pid=(?P<pid>\d+) host=(?P<host>\S+)")


def application_name() -> str:
    """What pg_stat_activity shows for our sessions: a waiting apply reads the holder's pid and
    host from it (runner_of). Computed per connection: a forked child has another pid."""
    return f"mailgitops pid={os.getpid()} host={socket.gethostname()}"


def runner_of(app: str | None) -> tuple[int, str] | None:
    """The pid and host in a session's application_name, or None when it is not ours."""
    match = _APP_NAME.fullmatch(app or "")
    return (int(match["pid"]), match["host"]) if match is not None else None


class Database:
    """One database, as the state of `workspace` in it is named in messages (`where`)."""

    def __init__(
        self, dsn: str, workspace: str, *, password: str | None, label: str | None
    ) -> None:
        self._password = password
        self._dsn = dsn
        # A DSN read from a secret reference is private as a whole (user, host, port,
        # database): messages name the reference instead, and driver errors are scrubbed of
        # every parameter's value.
        self._label = label
        # Parsed once here, so that a malformed DSN fails before any connection attempt, and
        # with a message that does not echo it.
        try:
            self._params = conninfo.conninfo_to_dict(dsn)
        except psycopg.Error:
            raise StateError(
                "the PostgreSQL DSN is neither a postgresql:// URL nor a libpq key=value "
                "string (it is not shown: it may hold a password)"
            ) from None
        self.where = f"{self.shown()} (workspace {workspace})"

    def shown(self) -> str:
        if self._label is not None:
            return f"the PostgreSQL DSN in {self._label}"
        return redact(self._dsn)

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        options: dict[str, Any] = {"application_name": application_name(), "autocommit": True}
        if self._password is not None:
            # Handed to libpq as its own parameter, never spliced into a string.
            options["password"] = self._password
        if "connect_timeout" not in self._params:
            options["connect_timeout"] = _CONNECT_TIMEOUT_SECONDS
        try:
            conn = psycopg.connect(self._dsn, **options)
        except psycopg.Error as exc:
            raise StateError(
                f"cannot connect to the PostgreSQL state {self.where}: {self._scrub(exc)}"
            ) from None
        try:
            yield conn
        finally:
            conn.close()

    @contextmanager
    def errors(self, action: str) -> Iterator[None]:
        """Driver errors as StateError, scrubbed of secrets; never a traceback."""
        try:
            yield
        except psycopg.Error as exc:
            raise StateError(
                f"cannot {action} the PostgreSQL state {self.where}: {self._scrub(exc)}"
            ) from None

    def _scrub(self, exc: BaseException) -> str:
        message = " ".join(str(exc).split()) or type(exc).__name__
        secrets = [self._password, *(self._params.get(k) for k in SECRET_PARAMS)]
        if self._label is not None or not showable(self._dsn):
            secrets += [v for k, v in self._params.items() if k not in ("connect_timeout",)]
        # Longest first: a value that contains another is replaced whole.
        for secret in sorted((str(s) for s in secrets if s), key=len, reverse=True):
            message = message.replace(secret, "***")
        return message
