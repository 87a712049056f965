"""The file state backend: one JSON document (SPEC §3) on a local or network file system.

Files next to the state file FILE (all mode 0600):
- FILE.lock    the lock, taken with flock(2): the kernel drops it when its holder dies, so a
               kill -9'd apply never blocks the next one. It holds the holder's pid, host and
               start time for the message a waiting apply prints, and is emptied on release.
               It is never deleted: removing a file that others wait on lets two processes
               lock two different files.
- FILE.backup  the previous version, replaced on every write.
- FILE.tmp, FILE.backup.tmp   written, fsync'ed and renamed over their targets, so a reader or
               a crash sees either the old or the new version, never half of one. A leftover
               from a writer that died is removed by the next writer (which holds the lock).

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
flock(2) needs POSIX; on NFS, Linux maps it to fcntl locks, which the server sees.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import hashlib
import json
import os
import pwd
import re
import socket
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mailgitops.cache import Cache
from mailgitops.errors import LockError, StateError
from mailgitops.model import SECRET_KEYS
from mailgitops.output import visible
from mailgitops.state.base import FORMAT_VERSION, LockHolder, State
from mailgitops.state.validation import MAX_INT, is_ref
from mailgitops.state.validation import schema_problems as _schema_problems

_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class _OnDisk:
    """The state file as read: `raw` and `status` are None when it does not exist."""

    state: State
    raw: bytes | None
    status: os.stat_result | None


class _DuplicateKeyError(ValueError):
    pass


class _HugeIntError(ValueError):
    pass


def _bounded_int(text: str) -> int:
    """An integer of the JSON text, refused before conversion when it cannot be one of ours:
    Python's own limit (4,300 digits) would raise a bare ValueError, and a number that long
    costs quadratic time to convert."""
    if len(text.lstrip("-")) > 19:
        raise _HugeIntError(f"the integer {text[:20]}… has {len(text)} digits")
    value = int(text)
    if abs(value) > MAX_INT:
        raise _HugeIntError(f"the integer {text} is larger than 64 bits")
    return value


class FileBackend:
    """The live state in a JSON file, locked with a sidecar flock(2) file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._target = Path(os.path.realpath(path))
        self._lock_fd: int | None = None
        # What read() returned, and a digest of its bytes (the bytes themselves would stay in
        # memory for the whole run: 450 MB at a million mailboxes).
        self._last_read: tuple[State, bytes] | None = None
        # Set by a caller with a cache (plan, apply): the schema verdict on these exact bytes
        # is remembered, so a warm run does not check an unchanged state again.
        self.verdicts: Cache | None = None

    def __repr__(self) -> str:
        return f"FileBackend({str(self.path)!r})"

    @property
    def backup_path(self) -> Path:
        return self._sibling(".backup")

    @property
    def lock_path(self) -> Path:
        return self._sibling(".lock")

    @property
    def shown(self) -> str:
        """The path for messages: a state path comes from mailgitops.yaml, and a line break or
        an escape sequence in it must not forge or paint a line."""
        return _shown(self.path)

    @property
    def _lock_shown(self) -> str:
        return _shown(self.lock_path)

    def describe(self) -> str:
        return self.shown

    def own_files(self) -> list[Path]:
        """The files this backend keeps: nothing else may write over them."""
        return [self.path, self._target, self.lock_path, self.backup_path]

    def read(self) -> State:
        raw, _status = self._read_raw()
        if raw is None:
            self._last_read = None
            return State()
        digest = hashlib.sha256(raw).digest()
        box = [raw]
        del raw  # _parse holds the only reference: the bytes are freed before the JSON parse
        state = self._parse(box)
        self._last_read = state, digest
        return state

    def write(self, new: State, previous: State) -> None:
        if self._lock_fd is None:
            raise RuntimeError(f"{self!r}.write() called without holding its lock")
        document = self._serialize(new)
        raw, status = self._read_raw()
        seen = self._last_read
        if (
            seen is not None
            and raw is not None
            and seen[0] is previous
            and seen[1] == hashlib.sha256(raw).digest()
        ):
            # The very bytes `previous` was parsed from: no need to parse them again.
            on_disk = _OnDisk(previous, raw, status)
        else:
            on_disk = (
                _OnDisk(self._parse([raw]), raw, status)
                if raw is not None
                else _OnDisk(State(), None, None)
            )
        if on_disk.state is not previous and on_disk.state.checksum() != previous.checksum():
            # Someone that does not take the lock (a hand edit, an export job) changed the
            # file after this run read it: writing now would silently undo their change.
            raise StateError(
                f"state {self.shown} changed while this command was running; nothing was "
                "written. Run the command again to plan against the current state."
            )
        owner = self._owner_to_keep(on_disk.status)
        tmp, backup_tmp = self._sibling(".tmp"), self._sibling(".backup.tmp")
        created: list[Path] = []
        try:
            self._make_parent()
            self._write_synced(tmp, document, owner, created)
            if on_disk.raw is not None:
                self._write_synced(backup_tmp, on_disk.raw, owner, created)
                os.replace(backup_tmp, self.backup_path)
                created.remove(backup_tmp)
            os.replace(tmp, self._target)
            created.remove(tmp)
        except BaseException as exc:  # any failure, even an interrupt: leave no temp file
            for path in created:
                # Best effort: the error that stopped the write is the one to report.
                with suppress(OSError):
                    path.unlink()
            if isinstance(exc, OSError):
                raise StateError(f"cannot write state {self.shown}: {_os_reason(exc)}") from exc
            raise
        self._sync_directory()

    @contextmanager
    def lock(self, timeout: float) -> Iterator[None]:
        if self._lock_fd is not None:
            raise RuntimeError(f"{self!r} is already locked by this process")
        if self._target != Path(os.path.abspath(self.path)) and not os.path.lexists(self.lock_path):
            # The first lock beside the target of a link: make sure the target is a state
            # (or nothing) before creating a file next to it. A state path that is a link to
            # /etc/passwd is refused here, and leaves no /etc/passwd.lock behind.
            raw, _status = self._read_raw()
            if raw is not None:
                self._parse([raw])
        try:
            self._make_parent()
            # O_NOFOLLOW: a lock name that someone made a link cannot redirect the write of
            # the holder record; fstat: nor can a FIFO or device take its place.
            fd = os.open(
                self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600
            )
        except OSError as exc:
            raise StateError(
                f"cannot open the lock file {self._lock_shown}: {_os_reason(exc)}"
            ) from exc
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise StateError(f"the lock file {self._lock_shown} is not a regular file")
        try:
            self._acquire(fd, timeout)
            self._lock_fd = fd
            self._record_holder(fd)
            yield
        finally:
            if self._lock_fd is not None:
                # An empty record after release means "nobody": a waiter that reads it while
                # the next holder starts up says "unknown holder" rather than a wrong pid.
                with suppress(OSError):
                    os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
                self._lock_fd = None
            os.close(fd)

    def _acquire(self, fd: int, timeout: float) -> None:
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                time.sleep(min(_POLL_SECONDS, remaining))
            except OSError as exc:
                raise StateError(f"cannot lock {self._lock_shown}: {_os_reason(exc)}") from exc
        holder = _read_holder(fd)
        waited = f" after waiting {timeout:g}s" if timeout > 0 else ""
        raise LockError(
            f"state {self.shown} is locked by {holder.describe()} (lock file "
            f"{self._lock_shown}){waited}. Another apply is running: wait for it, or retry with "
            "--lock-timeout SECONDS."
        )

    def _record_holder(self, fd: int) -> None:
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, _holder_record(), 0)
        except OSError as exc:
            reason = _os_reason(exc)
            raise StateError(f"cannot write the lock file {self._lock_shown}: {reason}") from exc

    def _read_raw(self) -> tuple[bytes | None, os.stat_result | None]:
        """The file's bytes and status; (None, None) when it does not exist."""
        try:
            # O_NONBLOCK: opening a FIFO given as the state path must fail, not hang.
            fd = os.open(self._target, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            return None, None
        except OSError as exc:
            raise StateError(f"cannot read state {self.shown}: {_os_reason(exc)}") from exc
        try:
            status = os.fstat(fd)
            if stat.S_ISDIR(status.st_mode):
                raise StateError(f"state {self.shown} is a directory, not a file")
            if not stat.S_ISREG(status.st_mode):
                raise StateError(f"state {self.shown} is not a regular file")
            with os.fdopen(fd, "rb", closefd=False) as stream:
                raw = stream.read()
        except OSError as exc:
            raise StateError(f"cannot read state {self.shown}: {_os_reason(exc)}") from exc
        finally:
            os.close(fd)
        return raw, status

    def _parse(self, box: list[bytes]) -> State:
        """The state in the bytes `box` holds; the box is emptied, so that the bytes can be
        freed before the JSON parse (450 MB at a million mailboxes, docs/performance.md)."""
        raw = box.pop()
        verdicts = self.verdicts
        key = verdicts.key("state-valid", raw) if verdicts is not None else None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self._refused(
                f"it is not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
            ) from None
        del raw
        if not text.strip():
            raise self._refused("it is empty")
        try:
            odd: list[str] = []
            data = json.loads(
                text,
                object_pairs_hook=functools.partial(_checked_object, odd),
                parse_int=_bounded_int,
                parse_constant=functools.partial(_odd_constant, odd),
            )
        except json.JSONDecodeError as exc:
            raise self._refused(
                f"it is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
            ) from None
        except (_DuplicateKeyError, _HugeIntError) as exc:
            raise self._refused(f"it is not valid JSON: {exc}") from None
        except RecursionError:
            raise self._refused("it is nested too deeply to be a state") from None
        version = data.get("format_version") if isinstance(data, dict) else None
        is_number = isinstance(version, int | float) and not isinstance(version, bool)
        if is_number and version != FORMAT_VERSION:
            raise self._refused(
                f"it has format_version {version}, and this mailgitops reads only "
                f"format_version {FORMAT_VERSION}: use the mailgitops that wrote it"
            )
        if verdicts is not None and key is not None and verdicts.get(key) is True:
            problems: list[str] = []
        else:
            # The exact walk over every value only when parsing saw something odd: a lone
            # surrogate escape, NaN or infinity, a secret key holding a value.
            problems = _schema_problems(data, check_values=bool(odd or _SURROGATE.search(text)))
            if not problems and verdicts is not None and key is not None:
                verdicts.put(key, True)
        if problems:
            raise self._refused(
                "it does not match schemas/state.schema.json:\n  " + "\n  ".join(problems)
            )
        return State(
            lineage=data["lineage"],
            serial=int(data["serial"]),
            providers=data["providers"],
            mailboxes=data["mailboxes"],
            format_version=FORMAT_VERSION,
        )

    def _refused(self, reason: str) -> StateError:
        restore = (
            f", or restore the previous version from {_shown(self.backup_path)}"
            if self.backup_path.is_file()
            else ""
        )
        return StateError(
            f"cannot use state {self.shown}: {reason}\n"
            f"mailgitops never overwrites a state it cannot read: fix it by hand{restore}."
        )

    def _serialize(self, new: State) -> bytes:
        document = new.to_json()
        problems = _schema_problems(document)
        if problems:
            # The last guard before disk: a state read() would refuse must never be written,
            # and a plaintext secret must never reach the file.
            raise StateError(
                f"refusing to write an invalid state to {self.shown} (a bug in mailgitops):\n  "
                + "\n  ".join(problems)
            )
        return _layout(document).encode("utf-8")

    def _owner_to_keep(self, status: os.stat_result | None) -> tuple[int, int] | None:
        """The (uid, gid) the new files must get, or None when ours is right."""
        me = os.geteuid()
        if status is None or status.st_uid == me:
            return None
        if me == 0:
            return status.st_uid, status.st_gid
        raise StateError(
            f"state {self.shown} is owned by {_user_name(status.st_uid)}, not by you "
            f"({_user_name(me)}): refusing to replace it, which would make it yours. Run "
            "mailgitops as its owner, or change the file's owner."
        )

    def _write_synced(
        self, path: Path, data: bytes, owner: tuple[int, int] | None, created: list[Path]
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

    def _sync_directory(self) -> None:
        # Makes the renames durable: without it a power loss can bring back the old name.
        try:
            fd = os.open(self._target.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            # Some file systems (FUSE, SMB) cannot fsync a directory; the rename is done.
            if exc.errno in (errno.EINVAL, errno.ENOTSUP):
                return
            raise StateError(
                f"state {self.shown} was replaced, but its directory could not be flushed to "
                f"disk: {_os_reason(exc)}"
            ) from exc

    def _make_parent(self) -> None:
        self._target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _sibling(self, suffix: str) -> Path:
        return self._target.with_name(self._target.name + suffix)


_SURROGATE = re.compile(r"\\u[dD][89abAB]")


def _odd_constant(odd: list[str], name: str) -> float:
    odd.append(name)
    return float(name)


def _checked_object(odd: list[str], pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = _reject_duplicate_keys(pairs)
    if not SECRET_KEYS.isdisjoint(result):  # in C: most objects hold no secret key
        for key in SECRET_KEYS.intersection(result):
            value = result[key]
            if value is not None and not is_ref(value):
                odd.append(key)
    return result


def _shown(path: Path) -> str:
    return visible(str(path))


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)  # in C; a key seen twice leaves the dict shorter than the pairs
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _value in pairs:
            if key in seen:
                raise _DuplicateKeyError(f"the key {json.dumps(key)} appears twice in one object")
            seen.add(key)
    return result


def _holder_record() -> bytes:
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return (json.dumps(record) + "\n").encode()


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


def _user_name(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _os_reason(exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    return f"{reason} ({exc.filename})" if exc.filename else reason


def _layout(document: dict[str, Any]) -> str:
    """The state as JSON with one entry per line, keys sorted: readable, diff-friendly (a
    changed mailbox is a changed line), and written by json's C encoder — `indent=` would
    switch to its pure-Python encoder, seconds for 100,000 mailboxes."""

    def dump(value: Any) -> str:
        return json.dumps(value, sort_keys=True, ensure_ascii=False, allow_nan=False)

    lines = ["{"]
    keys = sorted(document)
    for index, key in enumerate(keys):
        comma = "," if index < len(keys) - 1 else ""
        value = document[key]
        if key in ("providers", "mailboxes") and isinstance(value, dict) and value:
            lines.append(f"  {dump(key)}: {{")
            names = sorted(value)
            for n, name in enumerate(names):
                inner = "," if n < len(names) - 1 else ""
                lines.append(f"    {dump(name)}: {dump(value[name])}{inner}")
            lines.append(f"  }}{comma}")
        else:
            lines.append(f"  {dump(key)}: {dump(value)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"
