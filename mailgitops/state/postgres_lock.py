"""The PostgreSQL backend's lock: a session advisory lock keyed by the workspace, and who holds
it, read from pg_locks and the holder's application_name (state/postgres_connection.py)."""

from __future__ import annotations

import hashlib

from mailgitops.state.locking import LockHolder, locked, wait_for
from mailgitops.state.postgres_connection import Connection, runner_of

_POLL_SECONDS = 0.1


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key (what pg_advisory_lock takes) for `name`. Python's hash() is
    salted per process and PostgreSQL's hashtext() is not promised to stay the same across
    major versions; sha256 is the same everywhere, for ever."""
    digest = hashlib.sha256(f"mailgitops:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def workspace_lock_key(workspace: str) -> int:
    return advisory_key(f"workspace:{workspace}")


def acquire(conn: Connection, key: int, timeout: float, where: str) -> None:
    """Takes the session advisory lock `key` on `conn`, waiting up to `timeout` seconds;
    LockError naming the holder when it is still held then."""

    def attempt() -> bool:
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
        return row is not None and row[0] is True

    if not wait_for(attempt, timeout, _POLL_SECONDS):
        raise locked(
            where,
            _holder(conn, key),
            timeout,
            note="(The database releases the lock when the holder's session ends.)",
        )


def _holder(conn: Connection, key: int) -> LockHolder:
    # A bigint advisory key shows in pg_locks as classid (high half), objid (low half),
    # objsubid 1.
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
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
    runner = runner_of(app)
    if runner is None:
        shown = f"application_name {app!r}" if app else "no application_name"
        return LockHolder(None, None, since, f"{session}, {shown} (not mailgitops?)")
    return LockHolder(*runner, since, session)
