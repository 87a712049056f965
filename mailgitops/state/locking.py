"""What every backend's lock() shares: waiting up to --lock-timeout, and the message that
names who holds the lock when the wait is over."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from mailgitops.errors import LockError


@dataclass(frozen=True)
class LockHolder:
    """Who holds a state lock, for the message a waiting apply prints."""

    pid: int | None
    host: str | None
    since: str | None
    info: str = ""

    def describe(self) -> str:
        parts = [
            f"pid {self.pid}" if self.pid is not None else "",
            f"on {self.host}" if self.host else "",
            f"since {self.since}" if self.since else "",
            self.info,
        ]
        return ", ".join(p for p in parts if p) or "unknown holder"


def wait_for(attempt: Callable[[], bool], timeout: float, poll_seconds: float) -> bool:
    """Calls `attempt` (a non-blocking try to take the lock) until it returns True, or until
    `timeout` seconds have passed; False then. It is tried at least once, even with no
    timeout. Polling, not a blocking call: neither flock(2) nor pg_advisory_lock can be
    told to give up after a while."""
    deadline = time.monotonic() + max(timeout, 0.0)
    while not attempt():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(poll_seconds, remaining))
    return True


def locked(
    where: str, holder: LockHolder, timeout: float, *, lock_file: str = "", note: str = ""
) -> LockError:
    """The error of a lock() that waited in vain. `lock_file`: where the holder is recorded,
    for a backend that keeps one; `note`: what the reader should know of this backend's lock."""
    kept_in = f" (lock file {lock_file})" if lock_file else ""
    waited = f" after waiting {timeout:g}s" if timeout > 0 else ""
    return LockError(
        f"state {where} is locked by {holder.describe()}{kept_in}{waited}. Another apply is "
        "running: wait for it, or retry with --lock-timeout SECONDS." + (f" {note}" if note else "")
    )
