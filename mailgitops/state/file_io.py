"""The file backend's disk operations: reading the state file safely, and replacing it (and
its backup) atomically and durably, without ever taking over another user's file.

FILE.tmp and FILE.backup.tmp are written, fsync'ed and renamed over FILE and FILE.backup, so
a reader or a crash sees either the old or the new version, never half of one. A leftover from
a writer that died is removed by the next writer, which holds the lock."""

from __future__ import annotations

import errno
import os
import pwd
import stat
from contextlib import suppress
from pathlib import Path

from mailgitops.errors import StateError


def sibling(target: Path, suffix: str) -> Path:
    return target.with_name(target.name + suffix)


def make_parent(target: Path) -> None:
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)


def read_bytes(target: Path, shown: str) -> tuple[bytes | None, os.stat_result | None]:
    """The file's bytes and status; (None, None) when it does not exist. `shown`: the state's
    name in messages."""
    try:
        # O_NONBLOCK: opening a FIFO given as the state path must fail, not hang.
        fd = os.open(target, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        raise StateError(f"cannot read state {shown}: {os_reason(exc)}") from exc
    try:
        status = os.fstat(fd)
        if stat.S_ISDIR(status.st_mode):
            raise StateError(f"state {shown} is a directory, not a file")
        if not stat.S_ISREG(status.st_mode):
            raise StateError(f"state {shown} is not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as stream:
            raw = stream.read()
    except OSError as exc:
        raise StateError(f"cannot read state {shown}: {os_reason(exc)}") from exc
    finally:
        os.close(fd)
    return raw, status


def owner_to_keep(status: os.stat_result | None, shown: str) -> tuple[int, int] | None:
    """The (uid, gid) the new files must get, or None when ours is right. Replacing another
    user's file by rename would make it ours: root keeps the old owner, anyone else is
    refused."""
    me = os.geteuid()
    if status is None or status.st_uid == me:
        return None
    if me == 0:
        return status.st_uid, status.st_gid
    raise StateError(
        f"state {shown} is owned by {_user_name(status.st_uid)}, not by you "
        f"({_user_name(me)}): refusing to replace it, which would make it yours. Run "
        "mailgitops as its owner, or change the file's owner."
    )


def replace(
    target: Path,
    document: bytes,
    previous: bytes | None,
    owner: tuple[int, int] | None,
    shown: str,
) -> None:
    """`document` in place of the file at `target`, and `previous` (its old bytes, unless it
    did not exist) in place of its backup. Must be called under the lock."""
    tmp, backup_tmp = sibling(target, ".tmp"), sibling(target, ".backup.tmp")
    created: list[Path] = []
    try:
        make_parent(target)
        _write_synced(tmp, document, owner, created)
        if previous is not None:
            _write_synced(backup_tmp, previous, owner, created)
            os.replace(backup_tmp, sibling(target, ".backup"))
            created.remove(backup_tmp)
        os.replace(tmp, target)
        created.remove(tmp)
    except BaseException as exc:  # any failure, even an interrupt: leave no temp file
        for path in created:
            # Best effort: the error that stopped the write is the one to report.
            with suppress(OSError):
                path.unlink()
        if isinstance(exc, OSError):
            raise StateError(f"cannot write state {shown}: {os_reason(exc)}") from exc
        raise
    _sync_directory(target.parent, shown)


def _write_synced(
    path: Path, data: bytes, owner: tuple[int, int] | None, created: list[Path]
) -> None:
    # Under the lock no one else writes these names: anything there is a dead writer's.
    with suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    created.append(path)
    with os.fdopen(fd, "wb") as stream:
        # The umask may have taken bits from 0o600; the state must be exactly 0600.
        os.fchmod(fd, 0o600)
        if owner is not None:
            os.fchown(fd, *owner)
        stream.write(data)
        stream.flush()
        os.fsync(fd)


def _sync_directory(directory: Path, shown: str) -> None:
    # Makes the renames durable: without it a power loss can bring back the old name.
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        # Some file systems (FUSE, SMB) cannot fsync a directory; the rename is done.
        if exc.errno in (errno.EINVAL, errno.ENOTSUP):
            return
        raise StateError(
            f"state {shown} was replaced, but its directory could not be flushed to "
            f"disk: {os_reason(exc)}"
        ) from exc


def _user_name(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def os_reason(exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    return f"{reason} ({exc.filename})" if exc.filename else reason
