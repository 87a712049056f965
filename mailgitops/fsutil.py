"""Reading a file no larger than a limit, and writing files so that a reader sees the old
content or the new, never a half-written one."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path


class TooLarge(Exception):
    """A file holds more bytes than the limit of its reader."""


def read_bounded(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of the file at `path`, of which one more than `limit` at most are read: the
    size is seen in what is read, not trusted from stat() (the file may grow in between).
    Raises TooLarge past `limit`, and OSError, also for a device or a socket (a device may
    never end). A pipe is read (`apply <(cat plan.json)`, `apply /dev/stdin`), but opening a
    FIFO never waits for a writer: one that nobody writes to reads as empty."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    with os.fdopen(fd, "rb") as fh:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):  # as open() says it
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
            raise OSError(errno.EINVAL, "not a regular file or a pipe", str(path))
        os.set_blocking(fd, True)  # opened without waiting; now reads wait for data or EOF
        raw = fh.read(limit + 1)
    if len(raw) > limit:
        raise TooLarge
    return raw


def replace_refusal(path: Path, protected: Iterable[Path] = ()) -> str | None:
    """Why a file we write whole (a plan file) must not replace what is at `path`, or None:
    only a regular file of our own may be replaced. A symbolic link (rename would replace the
    link, or a later write could follow it), a device, FIFO or directory, and the files in
    `protected` (the live state, its lock and backup) are refused."""
    real = os.path.realpath(path)
    for other in protected:
        same = real == os.path.realpath(other)
        with contextlib.suppress(OSError):
            same = same or os.path.samefile(path, other)
        if same:
            return f"it is {other}, a file of the live state"
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return exc.strerror or str(exc)
    if stat.S_ISLNK(info.st_mode):
        return "it is a symbolic link"
    if not stat.S_ISREG(info.st_mode):
        return "it is not a regular file"
    return None


def atomic_write(
    path: Path, data: bytes, mode: int = 0o600, durable: bool = True, overwrite: bool = True
) -> None:
    """Write `data` to `path` via a temporary file in the same directory, fsync and rename.

    `durable=False` skips the fsync, for files whose loss costs nothing (cache entries, which
    are checked when read). `overwrite=False` raises FileExistsError instead of replacing a
    file that exists — even one that appeared a moment ago: the temporary file is hard-linked
    into place, which never replaces anything."""
    directory = path.parent if str(path.parent) else Path()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)  # after a replace it is gone; after a link it is the spare name
