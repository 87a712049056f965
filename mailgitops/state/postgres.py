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

Tables are created (later: migrated) on first use, in one transaction under a transaction
advisory lock, so two runners starting at once on an empty database do not trip over each
other. A plain read (plan, show) never creates them: a missing table is an empty state.

Locking: lock() opens a dedicated connection and takes a *session* advisory lock keyed by the
workspace; read() and write() run on that connection while it is held. The server drops the
lock when the session ends, including when the runner is killed (kill -9 closes its socket;
over TCP the server-side keepalives set below notice a vanished host within about two
minutes). Session advisory locks do not survive transaction-pooling proxies such as PgBouncer
in transaction mode: connect directly, or through session pooling.

write() is one transaction that upserts the changed and new entries, deletes the removed ones
and moves the serial. It first locks the workspace row and refuses when lineage, serial or
revision moved since read(): something that does not take our lock (an export job, a hand
edit in psql) changed the state, and writing now could break the deletion rule.

The DSN may hold a password, and a password may be given separately: neither is ever part of
a message. describe() shows the DSN with its password removed; errors from the driver are
scrubbed of both.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, TypeAlias

import psycopg
from psycopg import conninfo, sql

from mailgitops.errors import LockError, StateError
from mailgitops.state.base import FORMAT_VERSION, Entries, LockHolder, State
from mailgitops.state.dsn import SECRET_PARAMS, redact, showable, split_workspace
from mailgitops.state.validation import schema_problems

DEFAULT_WORKSPACE = "default"
SCHEMA_VERSION = 1
WORKSPACE_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,63}")

_POLL_SECONDS = 0.1
_CONNECT_TIMEOUT_SECONDS = 10
_APP_NAME = re.compile(r"mailgitops pid=(?P<pid>\d+) host=(?P<host>\S+)")

Connection: TypeAlias = "psycopg.Connection[tuple[Any, ...]]"

# Every statement of a migration runs in one transaction; index i holds version i + 1.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE IF NOT EXISTS mailgitops_schema_version (
            version integer PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now()
        )""",
        # COLLATE "C": keys sort by code point, as Python sorts them, whatever the database's
        # locale; and equality stays byte equality, as in the JSON file.
        """CREATE TABLE mailgitops_workspace (
            workspace text COLLATE "C" PRIMARY KEY,
            lineage text NOT NULL,
            serial bigint NOT NULL CHECK (serial >= 0),
            format_version integer NOT NULL,
            revision bigint NOT NULL DEFAULT 0,
            updated_at timestamptz NOT NULL DEFAULT now()
        )""",
        """CREATE TABLE mailgitops_provider (
            workspace text COLLATE "C" NOT NULL
                REFERENCES mailgitops_workspace (workspace) ON DELETE CASCADE,
            name text COLLATE "C" NOT NULL,
            entry jsonb NOT NULL,
            PRIMARY KEY (workspace, name)
        )""",
        """CREATE TABLE mailgitops_mailbox (
            workspace text COLLATE "C" NOT NULL
                REFERENCES mailgitops_workspace (workspace) ON DELETE CASCADE,
            address text COLLATE "C" NOT NULL,
            entry jsonb NOT NULL,
            PRIMARY KEY (workspace, address)
        )""",
        # Statement-level with transition tables: one bump per statement, not per row, so a
        # bulk load of 100,000 mailboxes does not update the workspace row 100,000 times.
        """CREATE OR REPLACE FUNCTION mailgitops_bump_revision() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE mailgitops_workspace AS w SET revision = w.revision + 1
             WHERE w.workspace IN (SELECT DISTINCT c.workspace FROM changed_rows AS c);
            RETURN NULL;
        END
        $$""",
        *(
            f"""CREATE TRIGGER mailgitops_{table}_{event.lower()}_revision
                AFTER {event} ON mailgitops_{table}
                REFERENCING {side} TABLE AS changed_rows
                FOR EACH STATEMENT EXECUTE FUNCTION mailgitops_bump_revision()"""
            for table in ("provider", "mailbox")
            for event, side in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD"))
        ),
    ),
)
assert len(_MIGRATIONS) == SCHEMA_VERSION


def _advisory_key(name: str) -> int:
    """A stable signed 64-bit key (what pg_advisory_lock takes) for `name`. Python's hash() is
    salted per process and PostgreSQL's hashtext() is not promised to stay the same across
    major versions; sha256 is the same everywhere, for ever."""
    digest = hashlib.sha256(f"mailgitops:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


_MIGRATION_KEY = _advisory_key("schema-migration")


def workspace_lock_key(workspace: str) -> int:
    return _advisory_key(f"workspace:{workspace}")


def application_name() -> str:
    """What pg_stat_activity shows for our sessions: a waiting apply reads the holder's pid and
    host from it. Computed per connection: a forked child has another pid."""
    return f"mailgitops pid={os.getpid()} host={socket.gethostname()}"


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
        return f"PostgresBackend({self._shown()!r}, workspace={self.workspace!r})"

    def _shown(self) -> str:
        if self._label is not None:
            return f"the PostgreSQL DSN in {self._label}"
        return redact(self._dsn)

    def describe(self) -> str:
        return f"{self._shown()} (workspace {self.workspace})"

    # -- reading ------------------------------------------------------------------------------

    def read(self) -> State:
        if self._conn is not None:
            state, revision = self._read_on(self._conn)
            self._last_read = (state, revision)
            return state
        with self._connection() as conn:
            if self._schema_version(conn) == 0:
                # `plan` never creates anything: no tables is the empty state.
                return State()
            self._ensure_schema(conn)
            return self._read_on(conn)[0]

    def _read_on(self, conn: Connection) -> tuple[State, int]:
        with self._errors("read"), conn.transaction():
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
        if format_version != FORMAT_VERSION:
            raise self._refused(
                f"it has format_version {format_version}, and this mailgitops reads only "
                f"format_version {FORMAT_VERSION}: use the mailgitops that wrote it"
            )
        document = {
            "format_version": format_version,
            "lineage": lineage,
            "serial": serial,
            "providers": providers,
            "mailboxes": mailboxes,
        }
        problems = schema_problems(document)
        if problems:
            raise self._refused(
                "it does not match schemas/state.schema.json:\n  " + "\n  ".join(problems)
            )
        state = State(lineage, int(serial), providers, mailboxes, FORMAT_VERSION)
        return state, int(revision)

    def _entries(self, conn: Connection, table: str, key: str) -> Entries:
        query = sql.SQL("SELECT {key}, entry FROM {table} WHERE workspace = %s ORDER BY {key}")
        names = {"key": sql.Identifier(key), "table": sql.Identifier(table)}
        return dict(conn.execute(query.format(**names), (self.workspace,)))

    def _refused(self, reason: str) -> StateError:
        return StateError(
            f"cannot use state {self.describe()}: {reason}\n"
            "mailgitops never overwrites a state it cannot read: fix the rows by hand, or "
            "remove the workspace (DELETE FROM mailgitops_workspace WHERE workspace = "
            f"'{self.workspace}' removes its entries too) and `mailgitops state push` a good "
            "copy."
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
        problems = schema_problems(
            {
                "format_version": new.format_version,
                "lineage": new.lineage,
                "serial": new.serial,
                "providers": {k: new.providers[k] for k in providers.upsert},
                "mailboxes": {k: new.mailboxes[k] for k in mailboxes.upsert},
            }
        )
        if problems:
            raise StateError(
                f"refusing to write an invalid state to {self.describe()} (a bug in "
                "mailgitops):\n  " + "\n  ".join(problems)
            )
        with self._errors("write"), conn.transaction():
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
                    raise self._changed() from None
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
            raise self._changed()
        if row is None:
            return
        read = self._last_read
        if read is not None and read[0] is previous:
            if int(row[2]) != read[1]:
                raise self._changed()
            return
        # `previous` did not come from our read(): compare the whole content.
        current = State(
            row[0],
            int(row[1]),
            self._entries(conn, "mailgitops_provider", "name"),
            self._entries(conn, "mailgitops_mailbox", "address"),
        )
        if current.checksum() != previous.checksum():
            raise self._changed()

    def _changed(self) -> StateError:
        return StateError(
            f"state {self.describe()} changed while this command was running; nothing was "
            "written. Run the command again to plan against the current state."
        )

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
        with self._connection() as conn:
            with self._errors("lock"):
                # Only over TCP: a runner whose host vanished (no FIN, no RST) is noticed by
                # the server within idle + interval * count seconds, and its lock dropped.
                conn.execute("SET tcp_keepalives_idle = 60")
                conn.execute("SET tcp_keepalives_interval = 10")
                conn.execute("SET tcp_keepalives_count = 6")
            self._ensure_schema(conn)
            self._acquire(conn, timeout)
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

    def _acquire(self, conn: Connection, timeout: float) -> None:
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._errors("lock"):
            while True:
                row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self._lock_key,)).fetchone()
                if row is not None and row[0] is True:
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                time.sleep(min(_POLL_SECONDS, remaining))
            holder = self._holder(conn)
        waited = f" after waiting {timeout:g}s" if timeout > 0 else ""
        raise LockError(
            f"state {self.describe()} is locked by {holder.describe()}{waited}. Another apply "
            "is running: wait for it, or retry with --lock-timeout SECONDS. (The database "
            "releases the lock when the holder's session ends.)"
        )

    def _holder(self, conn: Connection) -> LockHolder:
        # A bigint advisory key shows in pg_locks as classid (high half), objid (low half),
        # objsubid 1.
        unsigned = self._lock_key & 0xFFFF_FFFF_FFFF_FFFF
        row = conn.execute(
            "SELECT l.pid, a.application_name, a.backend_start, a.client_addr::text, "
            "a.client_hostname FROM pg_locks AS l "
            "LEFT JOIN pg_stat_activity AS a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.classid::bigint = %s AND l.objid::bigint = %s "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "LIMIT 1",
            (unsigned >> 32, unsigned & 0xFFFF_FFFF),
        ).fetchone()
        if row is None:
            # Released between our attempt and this query.
            return LockHolder(None, None, None, "a session that has just ended")
        backend_pid, app, started, client_addr, client_host = row
        since = started.isoformat(timespec="seconds") if started is not None else None
        where = client_host or client_addr
        session = f"PostgreSQL session {backend_pid} " + (
            f"from {where}" if where else "over a local socket"
        )
        match = _APP_NAME.fullmatch(app or "")
        if match is None:
            shown = f"application_name {app!r}" if app else "no application_name"
            return LockHolder(None, None, since, f"{session}, {shown} (not mailgitops?)")
        return LockHolder(int(match["pid"]), match["host"], since, session)

    # -- connections and schema ---------------------------------------------------------------

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
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
                f"cannot connect to the PostgreSQL state {self.describe()}: {self._scrub(exc)}"
            ) from None
        try:
            yield conn
        finally:
            conn.close()

    def _schema_version(self, conn: Connection) -> int:
        with self._errors("read"):
            row = conn.execute("SELECT to_regclass('mailgitops_schema_version')").fetchone()
            if row is None or row[0] is None:
                return 0
            row = conn.execute("SELECT max(version) FROM mailgitops_schema_version").fetchone()
        return int(row[0]) if row is not None and row[0] is not None else 0

    def _ensure_schema(self, conn: Connection) -> None:
        if self._schema_version(conn) == SCHEMA_VERSION:
            return
        with self._errors("create the tables of"):
            # Serializes the migration: the second runner waits, then finds it done. A session
            # lock taken *before* the transaction: a transaction that began before the first
            # runner committed would still see the old catalog after waiting, and try to
            # create the tables again.
            conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_KEY,))
            try:
                with conn.transaction():
                    self._migrate(conn)
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_KEY,))

    def _migrate(self, conn: Connection) -> None:
        version = self._schema_version(conn)
        if version > SCHEMA_VERSION:
            raise StateError(
                f"the tables of {self.describe()} have schema version {version}, newer "
                f"than this mailgitops knows ({SCHEMA_VERSION}): use a newer mailgitops"
            )
        for number in range(version + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[number - 1]:
                conn.execute(statement)
            conn.execute("INSERT INTO mailgitops_schema_version (version) VALUES (%s)", (number,))

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Driver errors as StateError, scrubbed of secrets; never a traceback."""
        try:
            yield
        except psycopg.Error as exc:
            raise StateError(
                f"cannot {action} the PostgreSQL state {self.describe()}: {self._scrub(exc)}"
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
