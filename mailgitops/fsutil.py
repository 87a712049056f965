"""Writing files so that a reader sees the old content or the new, never a half-written one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


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
