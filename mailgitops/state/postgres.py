"""The PostgreSQL state backend: one live state per *workspace*, shared by every runner that
reaches the database (docs/state-backends.md).

Storage is rows, not one JSON blob, so that an apply writes only what it changed:
- mailgitops_workspace   one row per workspace: lineage, serial, format_version, and
                         `revision`, a counter that triggers bump on every change to the
                         workspace's entries, by mailgitops or anyone else;
- mailgitops_provider    (workspace, name) -> entry jsonb
- mailgitops_mailbox     (workspace, address) -> entry jsonb
- mailgitops_schema_version   which migrations were applied.
Entries reference their workspace row (ON DELETE CASCADE), so entries without a workspace
cannot exist, and "no workspace row" is exactly the empty state of SPEC §3.

Tables are created (later: migrated) on first use (state/postgres_schema.py); a plain read
(plan, show) never creates them: a missing table is an empty state.

Locking: lock() opens a dedicated connection and takes a *session* advisory lock keyed by the
workspace; read() and write() run on that connection while it is held. The server drops the
lock when the session ends, including when the runner is killed (kill -9 closes its socket;
over TCP the server-side keepalives set below notice a vanished host within about two
minutes). Session advisory locks do not survive transaction-pooling proxies such as PgBouncer
in transaction mode: connect directly, or through session pooling (state/postgres_lock.py).

write() is one transaction that upserts the changed and new entries, deletes the removed ones
and moves the serial. It first locks the workspace row and refuses when lineage, serial or
revision moved since read(): something that does not take our lock (an export job, a hand
edit in psql) changed the state, and writing now could break the deletion rule.

The DSN may hold a password, and a password may be given separately: neither is ever part of
a message (state/postgres_connection.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import psycopg
from psycopg import sql

from mailgitops.errors import StateError
from mailgitops.state import postgres_schema
from mailgitops.state.base import (
    Entries,
    State,
    changed_while_running,
    format_refusal,
    refuse_if_changed,
    refuse_invalid_write,
    schema_refusal,
    unusable,
)
from mailgitops.state.dsn import split_workspace
from mailgitops.state.postgres_connection import Connection, Database
from mailgitops.state.postgres_lock import acquire, workspace_lock_key
from mailgitops.state.validation import schema_problems

DEFAULT_WORKSPACE = "default"
WORKSPACE_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,63}")


@dataclass(frozen=True)
class _Delta:
    """What write() changes for one kind of entry."""

    upsert: dict[str, str]  # key -> entry as JSON text
    delete: list[str]


def _delta(new: Entries, previous: Entries) -> _Delta:
    upsert = {
        key: json.dumps(entry, ensure_ascii=False, allow_nan=False, sort_keys=True)
        for key, entry in new.items()
        if previous.get(key) != entry
    }
    return _Delta(upsert, [key for key in previous if key not in new])


class PostgresBackend:
    """The live state of one workspace in a PostgreSQL database."""

    def __init__(
        self,
        dsn: str,
        workspace: str = DEFAULT_WORKSPACE,
        *,
        password: str | None = None,
        label: str | None = None,
    ) -> None:
        self._db = Database(dsn, workspace, password=password, label=label)
        if not WORKSPACE_PATTERN.fullmatch(workspace):
            raise StateError(
                f"invalid PostgreSQL state workspace {workspace!r}: use 1 to 63 letters, "
                "digits, '.', '_' or '-'"
            )
        self.workspace = workspace
        self._lock_key = workspace_lock_key(workspace)
        self._conn: Connection | None = None
        # The state read under the lock and the workspace revision it had: write() compares
        # the revision instead of reading the whole state again.
        self._last_read: tuple[State, int] | None = None
        self.rows_written = 0

    @classmethod
    def from_location(
        cls,
        dsn: str,
        *,
        password: str | None = None,
        workspace: str | None = None,
        label: str | None = None,
    ) -> PostgresBackend:
        """A DSN as users write it: a URL may carry `?workspace=NAME`; `workspace`, when given
        too (mailgitops.yaml), must agree with it."""
        stripped, in_url = split_workspace(dsn)
        if in_url is not None and workspace is not None and in_url != workspace:
            raise StateError(
                f"the PostgreSQL state names two workspaces: {in_url!r} in the DSN and "
                f"{workspace!r} in `workspace:`; keep one"
            )
        return cls(
            stripped, workspace or in_url or DEFAULT_WORKSPACE, password=password, label=label
        )

    def __repr__(self) -> str:
        return f"PostgresBackend({self._db.shown()!r}, workspace={self.workspace!r})"

    def describe(self) -> str:
        return self._db.where

    # -- reading ------------------------------------------------------------------------------

    def read(self) -> State:
        if self._conn is not None:
            state, revision = self._read_on(self._conn)
            self._last_read = (state, revision)
            return state
        with self._db.connect() as conn:
            if postgres_schema.version(conn, self._db) == 0:
                # `plan` never creates anything: no tables is the empty state.
                return State()
            postgres_schema.ensure(conn, self._db)
            return self._read_on(conn)[0]

    def _read_on(self, conn: Connection) -> tuple[State, int]:
        with self._db.errors("read"), conn.transaction():
            # One snapshot for the three tables: a writer committing in between must not give
            # us its new mailboxes next to the old serial.
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            row = conn.execute(
                "SELECT lineage, serial, format_version, revision FROM mailgitops_workspace "
                "WHERE workspace = %s",
                (self.workspace,),
            ).fetchone()
            if row is None:
                return State(), 0
            lineage, serial, format_version, revision = row
            providers = self._entries(conn, "mailgitops_provider", "name")
            mailboxes = self._entries(conn, "mailgitops_mailbox", "address")
        refusal = format_refusal(format_version)
        if refusal is not None:
            raise self._refused(refusal)
        state = State(lineage, int(serial), providers, mailboxes, format_version)
        problems = schema_problems(state.to_json())
        if problems:
            raise self._refused(schema_refusal(problems))
        return state, int(revision)

    def _entries(self, conn: Connection, table: str, key: str) -> Entries:
        query = sql.SQL("SELECT {key}, entry FROM {table} WHERE workspace = %s ORDER BY {key}")
        names = {"key": sql.Identifier(key), "table": sql.Identifier(table)}
        return dict(conn.execute(query.format(**names), (self.workspace,)))

    def _refused(self, reason: str) -> StateError:
        return unusable(
            self.describe(),
            reason,
            "fix the rows by hand, or remove the workspace (DELETE FROM mailgitops_workspace "
            f"WHERE workspace = '{self.workspace}' removes its entries too) and `mailgitops "
            "state push` a good copy",
        )

    # -- writing ------------------------------------------------------------------------------

    def write(self, new: State, previous: State) -> None:
        conn = self._conn
        if conn is None:
            raise RuntimeError(f"{self!r}.write() called without holding its lock")
        if new.lineage is None:
            raise RuntimeError("write() needs a state with a lineage")
        providers = _delta(new.providers, previous.providers)
        mailboxes = _delta(new.mailboxes, previous.mailboxes)
        # Unchanged entries were checked when they were read: checking only the changed ones
        # keeps a 1% change to a large state cheap, and is the same check (the schema checks
        # each entry on its own).
        changed = State(
            new.lineage,
            new.serial,
            {k: new.providers[k] for k in providers.upsert},
            {k: new.mailboxes[k] for k in mailboxes.upsert},
            new.format_version,
        )
        refuse_invalid_write(schema_problems(changed.to_json()), self.describe())
        with self._db.errors("write"), conn.transaction():
            self._check_unchanged(conn, previous)
            values = (new.lineage, new.serial, new.format_version, self.workspace)
            if previous.exists:
                conn.execute(
                    "UPDATE mailgitops_workspace SET lineage = %s, serial = %s, "
                    "format_version = %s, updated_at = now() WHERE workspace = %s",
                    values,
                )
            else:
                try:
                    # No ON CONFLICT: a workspace created since our check is someone else's.
                    with conn.transaction():
                        conn.execute(
                            "INSERT INTO mailgitops_workspace "
                            "(lineage, serial, format_version, workspace) VALUES (%s, %s, %s, %s)",
                            values,
                        )
                except psycopg.errors.UniqueViolation:
                    raise changed_while_running(self.describe()) from None
            for table, key, delta in (
                ("mailgitops_provider", "name", providers),
                ("mailgitops_mailbox", "address", mailboxes),
            ):
                self._apply_delta(conn, table, key, delta)
        self._last_read = None
        self.rows_written = 1 + sum(len(d.upsert) + len(d.delete) for d in (providers, mailboxes))

    def _check_unchanged(self, conn: Connection, previous: State) -> None:
        """Inside the write transaction: the workspace is still what `previous` was read as.
        FOR UPDATE holds other writers of the workspace row until we commit."""
        row = conn.execute(
            "SELECT lineage, serial, revision FROM mailgitops_workspace "
            "WHERE workspace = %s FOR UPDATE",
            (self.workspace,),
        ).fetchone()
        now: tuple[str | None, int] = (row[0], int(row[1])) if row else (None, 0)
        if now != (previous.lineage, previous.serial if previous.exists else 0):
            raise changed_while_running(self.describe())
        if row is None:
            return
        read = self._last_read
        if read is not None and read[0] is previous:
            if int(row[2]) != read[1]:
                raise changed_while_running(self.describe())
            return
        # `previous` did not come from our read(): compare the whole content.
        current = State(
            row[0],
            int(row[1]),
            self._entries(conn, "mailgitops_provider", "name"),
            self._entries(conn, "mailgitops_mailbox", "address"),
        )
        refuse_if_changed(current, previous, self.describe())

    def _apply_delta(self, conn: Connection, table: str, key: str, delta: _Delta) -> None:
        # unnest() sends a batch as two arrays in one statement: a round trip per entry would
        # dominate a 1,000-entry change.
        names = {"key": sql.Identifier(key), "table": sql.Identifier(table)}
        if delta.delete:
            query = sql.SQL("DELETE FROM {table} WHERE workspace = %s AND {key} = ANY(%s::text[])")
            conn.execute(query.format(**names), (self.workspace, delta.delete))
        if delta.upsert:
            query = sql.SQL(
                "INSERT INTO {table} (workspace, {key}, entry) "
                "SELECT %s, u.key, u.entry::jsonb FROM unnest(%s::text[], %s::text[]) "
                "AS u(key, entry) "
                "ON CONFLICT (workspace, {key}) DO UPDATE SET entry = EXCLUDED.entry"
            )
            conn.execute(
                query.format(**names),
                (self.workspace, list(delta.upsert), list(delta.upsert.values())),
            )

    # -- locking ------------------------------------------------------------------------------

    @contextmanager
    def lock(self, timeout: float) -> Iterator[None]:
        if self._conn is not None:
            raise RuntimeError(f"{self!r} is already locked by this process")
        with self._db.connect() as conn:
            with self._db.errors("lock"):
                # Only over TCP: a runner whose host vanished (no FIN, no RST) is noticed by
                # the server within idle + interval * count seconds, and its lock dropped.
                conn.execute("SET tcp_keepalives_idle = 60")
                conn.execute("SET tcp_keepalives_interval = 10")
                conn.execute("SET tcp_keepalives_count = 6")
            postgres_schema.ensure(conn, self._db)
            with self._db.errors("lock"):
                acquire(conn, self._lock_key, timeout, self.describe())
            self._conn = conn
            try:
                yield
            finally:
                self._conn = None
                self._last_read = None
                # Closing the session releases the lock as well; unlocking first just makes
                # the release not depend on how the connection ends.
                with suppress(psycopg.Error):
                    conn.execute("SELECT pg_advisory_unlock(%s)", (self._lock_key,))
