"""The file state backend: one JSON document (SPEC §3) on a local or network file system.

Files next to the state file FILE (all mode 0600):
- FILE.lock    the flock(2) lock, with a record of its holder (state/file_lock.py).
- FILE.backup  the previous version, replaced on every write.
- FILE.tmp, FILE.backup.tmp   the new versions, renamed over their targets (state/file_io.py).
The strict reading of the JSON document, and its layout, are state/file_format.py.

A state path that is a symlink is followed, once, when the backend is created: the lock, the
backup and the temporary files live next to the link's target and the target is replaced, so
the link stays in place and every process agrees on one lock whichever name it uses. A dangling
link is an empty state whose first write creates the target.

A state file owned by another user is never silently taken over (replacing it by rename would
make it ours): root writes the new version and the backup with the old owner; anyone else is
refused with a message naming the owner.

A state file that cannot be used (empty, not UTF-8, not JSON, another format_version, not valid
under schemas/state.schema.json, a directory) raises StateError and is never overwritten. Nor
is one that changed since it was read (by a hand edit or an export job, which take no lock):
write() compares it with the `previous` state it is given. The new state is checked against
the schema too, so nothing that read() would refuse, such as a plaintext secret, reaches disk.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mailgitops.output import visible
from mailgitops.state import file_format, file_io
from mailgitops.state.base import State, refuse_if_changed, unusable
from mailgitops.state.file_format import StateVerdicts
from mailgitops.state.file_lock import flocked


class FileBackend:
    """The live state in a JSON file, locked with a sidecar flock(2) file."""

    def __init__(self, path: Path, verdicts: StateVerdicts | None = None) -> None:
        self.path = path
        self._target = Path(os.path.realpath(path))
        self._locked = False
        # What read() returned, and a digest of its bytes (the bytes themselves would stay in
        # memory for the whole run: 450 MB at a million mailboxes).
        self._last_read: tuple[State, bytes] | None = None
        # Given by a caller with a cache (plan): the schema verdict on these exact bytes is
        # remembered, so a warm run does not check an unchanged state again.
        self._verdicts = verdicts

    def __repr__(self) -> str:
        return f"FileBackend({str(self.path)!r})"

    @property
    def backup_path(self) -> Path:
        return file_io.sibling(self._target, ".backup")

    @property
    def lock_path(self) -> Path:
        return file_io.sibling(self._target, ".lock")

    @property
    def shown(self) -> str:
        """The path for messages: a state path comes from mailgitops.yaml, and a line break or
        an escape sequence in it must not forge or paint a line."""
        return _shown(self.path)

    def describe(self) -> str:
        return self.shown

    def own_files(self) -> list[Path]:
        """The files this backend keeps: nothing else may write over them."""
        return [self.path, self._target, self.lock_path, self.backup_path]

    def read(self) -> State:
        raw, _status = file_io.read_bytes(self._target, self.shown)
        if raw is None:
            self._last_read = None
            return State()
        digest = hashlib.sha256(raw).digest()
        box = [raw]
        del raw  # _parse holds the only reference: the bytes are freed before the JSON parse
        state = self._parse(box, digest)
        self._last_read = state, digest
        return state

    def write(self, new: State, previous: State) -> None:
        if not self._locked:
            raise RuntimeError(f"{self!r}.write() called without holding its lock")
        document = file_format.serialize(new, self.shown)
        raw, status = file_io.read_bytes(self._target, self.shown)
        if raw is None:
            current = State()
        else:
            digest = hashlib.sha256(raw).digest()
            seen = self._last_read
            # The very bytes `previous` was parsed from: no need to parse them again.
            same = seen is not None and seen[0] is previous and seen[1] == digest
            current = previous if same else self._parse([raw], digest)
        refuse_if_changed(current, previous, self.shown)
        owner = file_io.owner_to_keep(status, self.shown)
        file_io.replace(self._target, document, raw, owner, self.shown)

    @contextmanager
    def lock(self, timeout: float) -> Iterator[None]:
        if self._locked:
            raise RuntimeError(f"{self!r} is already locked by this process")
        if self._target != Path(os.path.abspath(self.path)) and not os.path.lexists(self.lock_path):
            # The first lock beside the target of a link: make sure the target is a state
            # (or nothing) before creating a file next to it. A state path that is a link to
            # /etc/passwd is refused here, and leaves no /etc/passwd.lock behind.
            raw, _status = file_io.read_bytes(self._target, self.shown)
            if raw is not None:
                self._parse([raw], hashlib.sha256(raw).digest())
        with flocked(self.lock_path, _shown(self.lock_path), self.shown, timeout):
            self._locked = True
            try:
                yield
            finally:
                self._locked = False

    def _parse(self, box: list[bytes], digest: bytes) -> State:
        try:
            return file_format.parse(box, digest, self._verdicts)
        except file_format.Unusable as exc:
            restore = (
                f", or restore the previous version from {_shown(self.backup_path)}"
                if self.backup_path.is_file()
                else ""
            )
            raise unusable(self.shown, str(exc), f"fix it by hand{restore}") from None


def _shown(path: Path) -> str:
    return visible(str(path))
