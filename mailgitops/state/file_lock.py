"""The file backend's lock: flock(2) on FILE.lock, beside the state file.

The kernel drops an flock when its holder dies, so a kill -9'd apply never blocks the next one.
The lock file holds the holder's pid, host and start time for the message a waiting apply
prints, and is emptied on release. It is never deleted: removing a file that others wait on
lets two processes lock two different files. flock(2) needs POSIX; on NFS, Linux maps it to
fcntl locks, which the server sees."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

from mailgitops.errors import StateError
from mailgitops.state.file_io import make_parent, os_reason
from mailgitops.state.locking import LockHolder, locked, wait_for

_POLL_SECONDS = 0.05


@contextmanager
def flocked(path: Path, shown: str, state_shown: str, timeout: float) -> Iterator[None]:
    """Holds the lock on the lock file `path` (named `shown` in messages) of the state named
    `state_shown`, waiting up to `timeout` seconds for it."""
    try:
        make_parent(path)
        # O_NOFOLLOW: a lock name that someone made a link cannot redirect the write of the
        # holder record; fstat: nor can a FIFO or device take its place.
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise StateError(f"cannot open the lock file {shown}: {os_reason(exc)}") from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise StateError(f"the lock file {shown} is not a regular file")
    held = False
    try:
        if not wait_for(lambda: _try_flock(fd, shown), timeout, _POLL_SECONDS):
            raise locked(state_shown, _read_holder(fd), timeout, lock_file=shown)
        held = True
        _record_holder(fd, shown)
        yield
    finally:
        if held:
            # An empty record after release means "nobody": a waiter that reads it while the
            # next holder starts up says "unknown holder" rather than a wrong pid.
            with suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _try_flock(fd: int, shown: str) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as exc:
        raise StateError(f"cannot lock {shown}: {os_reason(exc)}") from exc
    return True


def _record_holder(fd: int, shown: str) -> None:
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
    except OSError as exc:
        raise StateError(f"cannot write the lock file {shown}: {os_reason(exc)}") from exc


def _read_holder(fd: int) -> LockHolder:
    try:
        record = json.loads(os.pread(fd, 4096, 0))
    except (OSError, ValueError):
        return LockHolder(None, None, None)
    if not isinstance(record, dict):
        return LockHolder(None, None, None)
    pid, host, since = record.get("pid"), record.get("host"), record.get("since")
    return LockHolder(
        pid if isinstance(pid, int) else None,
        host if isinstance(host, str) else None,
        since if isinstance(since, str) else None,
    )
