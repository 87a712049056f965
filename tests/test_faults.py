"""Faults while apply writes the state (issue 8), through the CLI (`apply --auto-approve`).

Every failure is injected by patching the standard library (os.open, os.fdopen, os.fchmod,
os.fsync, os.replace, os.unlink, os.pwrite, fcntl.flock, os.geteuid), never mailgitops itself,
and is matched by the path it acts on, so the tests hold whatever order the backend writes in.
Tests run as root, which chmod cannot stop: a read-only file system (EROFS), a directory
without write permission (EACCES) and a full disk (ENOSPC, EDQUOT) are simulated the same way.

Each fault must give exit 1, a clear message, no traceback and no crash log, the old state
byte-for-byte (or, once the rename is done, the complete new one with the old in the backup),
no temporary file left behind, and a lock that the next apply takes: it converges.

test_sigkill_at_many_moments_of_an_apply kills real `python -m mailgitops apply` processes at
30 moments spread over an apply of a large state, and checks after each kill that the state is
the old or the new one, never a mix or half of one."""

from __future__ import annotations

import errno
import fcntl
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import python_env
from helpers import OTHER, Cli, standard, tree

from mailgitops.state.file import FileBackend

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/fd").is_dir(), reason="matches faults by /proc/self/fd paths"
)


def _fd_path(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


def _error(code: int, filename: str | None = None) -> OSError:
    return OSError(code, os.strerror(code), filename)


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """A project whose state has been applied twice (so it has a backup) and whose config has
    changed since: the next apply writes."""
    monkeypatch.setenv("ALICE_PW", "alice-secret-value")
    monkeypatch.setenv("BOB_PW", "bob-secret-value")
    # Crash logs of this test go to its own directory, where the test can look for them.
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    root = tmp_path / "repo"
    cli = Cli(standard(root), capsys)
    cli.state = tmp_path / "live" / "live.json"
    assert cli("apply", "--auto-approve")[0] == 0
    tree(root, {"providers.d/other.yaml": OTHER})
    assert cli("apply", "--auto-approve")[0] == 0
    tree(
        root,
        {
            "mailboxes.d/team.yaml": (root / "mailboxes.d/team.yaml").read_text()
            + "    signature: Bob\n"
        },
    )
    return cli


def _temp_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


# --- faults -------------------------------------------------------------------------------------


class FailingStream:
    """A stream from os.fdopen whose write (half of the data reaches the file first) or flush
    fails, as on a disk that fills up during the write."""

    def __init__(self, real: Any, at: str, code: int) -> None:
        self._real, self._at, self._code = real, at, code

    def __enter__(self) -> FailingStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self._real.close()

    def write(self, data: bytes) -> int:
        if self._at == "write":
            self._real.write(data[: len(data) // 2])
            self._real.flush()
            raise _error(self._code)
        written: int = self._real.write(data)
        return written

    def flush(self) -> None:
        if self._at == "flush":
            raise _error(self._code)
        self._real.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


Patch = Callable[[pytest.MonkeyPatch, Path], None]


def fail_open(suffix: str, code: int, flags: int = 0) -> Patch:
    """os.open of a path ending in `suffix` (opened with all of `flags`) fails."""

    def patch(mp: pytest.MonkeyPatch, state: Path) -> None:
        real = os.open

        def fake(path: Any, mode: int, *args: Any, **kwargs: Any) -> int:
            if str(path).endswith(suffix) and mode & flags == flags:
                raise _error(code, str(path))
            return real(path, mode, *args, **kwargs)

        mp.setattr(os, "open", fake)

    return patch


def fail_fd(function: str, suffix: str, code: int) -> Patch:
    """os.<function>(fd, ...) fails for a file descriptor whose path ends in `suffix`, or for
    a directory when `suffix` is "/"."""

    def patch(mp: pytest.MonkeyPatch, state: Path) -> None:
        real = getattr(os, function)

        def fake(fd: int, *args: Any) -> Any:
            path = _fd_path(fd)
            hit = os.path.isdir(path) if suffix == "/" else path.endswith(suffix)
            if hit:
                raise _error(code)
            return real(fd, *args)

        mp.setattr(os, function, fake)

    return patch


def fail_stream(suffix: str, at: str, code: int) -> Patch:
    def patch(mp: pytest.MonkeyPatch, state: Path) -> None:
        real = os.fdopen

        def fake(fd: int, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            stream = real(fd, mode, *args, **kwargs)
            if "w" in mode and _fd_path(fd).endswith(suffix):
                return FailingStream(stream, at, code)
            return stream

        mp.setattr(os, "fdopen", fake)

    return patch


def fail_path(function: str, suffix: str, code: int) -> Patch:
    """os.<function>(path, ...) (replace, unlink, rename, mkdir) fails for `suffix`."""

    def patch(mp: pytest.MonkeyPatch, state: Path) -> None:
        real = getattr(os, function)

        def fake(path: Any, *args: Any, **kwargs: Any) -> Any:
            if str(path).endswith(suffix):
                raise _error(code, str(path))
            return real(path, *args, **kwargs)

        mp.setattr(os, function, fake)

    return patch


def read_only_file_system(mp: pytest.MonkeyPatch, state: Path) -> None:
    """Every change in the state's directory fails with EROFS, opening for writing included."""
    directory = str(state.parent)
    inside = lambda path: os.path.dirname(os.path.abspath(str(path))) == directory  # noqa: E731
    real_open = os.open
    writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC

    def fake_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if inside(path) and flags & writing:
            raise _error(errno.EROFS, str(path))
        return real_open(path, flags, *args, **kwargs)

    mp.setattr(os, "open", fake_open)
    for function in ("replace", "rename", "unlink", "mkdir"):
        mp.setattr(os, function, _refuse_inside(getattr(os, function), inside, errno.EROFS))


def directory_not_writable(mp: pytest.MonkeyPatch, state: Path) -> None:
    """As a directory without write permission would do for a non-root user: existing files
    stay writable (the lock), nothing can be created, renamed or removed there (EACCES)."""
    directory = str(state.parent)
    inside = lambda path: os.path.dirname(os.path.abspath(str(path))) == directory  # noqa: E731
    real_open = os.open

    def fake_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if inside(path) and flags & os.O_CREAT and not os.path.exists(path):
            raise _error(errno.EACCES, str(path))
        return real_open(path, flags, *args, **kwargs)

    mp.setattr(os, "open", fake_open)
    for function in ("replace", "rename", "unlink"):
        mp.setattr(os, function, _refuse_inside(getattr(os, function), inside, errno.EACCES))


def _refuse_inside(real: Any, inside: Callable[[Any], bool], code: int) -> Any:
    def fake(path: Any, *args: Any, **kwargs: Any) -> Any:
        if inside(path):
            raise _error(code, str(path))
        return real(path, *args, **kwargs)

    return fake


def disk_full(lock_too: bool) -> Patch:
    """Every data write fails with ENOSPC (files, raw fds and, with `lock_too`, the lock)."""

    def patch(mp: pytest.MonkeyPatch, state: Path) -> None:
        fail_stream("", "write", errno.ENOSPC)(mp, state)

        def no_space(*args: Any) -> Any:
            raise _error(errno.ENOSPC)

        mp.setattr(os, "write", no_space)
        if lock_too:
            mp.setattr(os, "pwrite", no_space)

    return patch


def no_flock(mp: pytest.MonkeyPatch, state: Path) -> None:
    """flock(2) unsupported, as on an NFS mount without a lock manager."""

    def fake(fd: int, operation: int) -> None:
        raise _error(errno.ENOLCK)

    mp.setattr(fcntl, "flock", fake)


@dataclass(frozen=True)
class Fault:
    patch: Patch
    message: str  # a regex the error must match
    outcome: str = "old"  # "old": the old state is intact; "new": the rename was done
    leftover: bool = False  # a dead writer's temporary file is there before the apply


WRITE = r"cannot write state .*live\.json: "
TMP, BACKUP_TMP = "live.json.tmp", "live.json.backup.tmp"
FAULTS: dict[str, Fault] = {
    "temp-create-disk-full": Fault(fail_open(TMP, errno.ENOSPC), WRITE + "No space left"),
    "temp-create-quota": Fault(fail_open(TMP, errno.EDQUOT), WRITE + "Disk quota exceeded"),
    "temp-write-disk-full": Fault(fail_stream(TMP, "write", errno.ENOSPC), WRITE + "No space"),
    "temp-write-io-error": Fault(fail_stream(TMP, "write", errno.EIO), WRITE + "Input/output"),
    "temp-flush-disk-full": Fault(fail_stream(TMP, "flush", errno.ENOSPC), WRITE + "No space"),
    "temp-fchmod": Fault(fail_fd("fchmod", TMP, errno.EPERM), WRITE + "Operation not permitted"),
    "temp-fsync-io-error": Fault(fail_fd("fsync", TMP, errno.EIO), WRITE + "Input/output error"),
    "temp-fsync-disk-full": Fault(fail_fd("fsync", TMP, errno.ENOSPC), WRITE + "No space left"),
    "backup-create": Fault(fail_open(BACKUP_TMP, errno.ENOSPC), WRITE + "No space left"),
    "backup-write-disk-full": Fault(
        fail_stream(BACKUP_TMP, "write", errno.ENOSPC), WRITE + "No space left"
    ),
    "backup-fsync": Fault(fail_fd("fsync", BACKUP_TMP, errno.EIO), WRITE + "Input/output error"),
    "backup-rename": Fault(
        fail_path("replace", BACKUP_TMP, errno.EBUSY), WRITE + "Device or resource busy"
    ),
    "state-rename": Fault(fail_path("replace", TMP, errno.EACCES), WRITE + "Permission denied"),
    "state-rename-disk-full": Fault(fail_path("replace", TMP, errno.ENOSPC), WRITE + "No space"),
    "leftover-temp-cannot-be-removed": Fault(
        fail_path("unlink", TMP, errno.EACCES), WRITE + "Permission denied", leftover=True
    ),
    "directory-open-for-fsync": Fault(
        fail_open("live", errno.EACCES, os.O_DIRECTORY),
        r"live\.json was replaced, but its directory could not be flushed to disk: Permission",
        outcome="new",
    ),
    "directory-fsync": Fault(
        fail_fd("fsync", "/", errno.EIO),
        r"live\.json was replaced, but its directory could not be flushed to disk: Input/output",
        outcome="new",
    ),
    "read-only-file-system": Fault(
        read_only_file_system, r"cannot open the lock file .*: Read-only file system"
    ),
    "directory-not-writable": Fault(directory_not_writable, WRITE + "Permission denied"),
    "disk-full-data-only": Fault(disk_full(lock_too=False), WRITE + "No space left on device"),
    "disk-full-lock-too": Fault(
        disk_full(lock_too=True), r"cannot write the lock file .*: No space left on device"
    ),
    "lock-open": Fault(fail_open(".lock", errno.EACCES), r"cannot open the lock file .*denied"),
    "lock-unsupported": Fault(no_flock, r"cannot lock .*live\.json\.lock: No locks available"),
    "state-read-io-error": Fault(
        fail_open("live.json", errno.EIO, os.O_RDONLY | os.O_NONBLOCK),
        r"cannot read state .*live\.json: Input/output error",
    ),
}


def _assert_clean_failure(out: str, err: str, tmp: Path) -> None:
    assert "Traceback" not in out + err
    assert "this is a bug" not in err
    assert list(tmp.iterdir()) == [], "a crash log was written"


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_a_failing_write_keeps_the_old_state(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    fault = FAULTS[name]
    directory = cli.state.parent
    if fault.leftover:
        (directory / TMP).write_text("{\"half a dead writer's sta")
    old_state = cli.state.read_bytes()
    old_backup = FileBackend(cli.state).backup_path.read_bytes()
    before_temps = _temp_files(directory)

    with monkeypatch.context() as mp:
        fault.patch(mp, cli.state)
        code, out, err = cli("apply", "--auto-approve")

    assert code == 1, out + err
    assert re.search(fault.message, err), err
    _assert_clean_failure(out, err, tmp_path / "tmp")
    assert _temp_files(directory) == before_temps, "temporary files left behind"
    backend = FileBackend(cli.state)
    backup = backend.backup_path.read_bytes()
    if fault.outcome == "old":
        assert cli.state.read_bytes() == old_state
        assert backup in (old_backup, old_state)
    else:
        assert json.loads(cli.state.read_bytes())["serial"] == json.loads(old_state)["serial"] + 1
        assert backup == old_state
    backend.read()  # parses and passes the schema

    code, out, err = cli("apply", "--auto-approve")
    assert code == 0, err
    assert _temp_files(directory) == []
    assert cli("plan")[1].rstrip().endswith("No changes.")


def test_unsupported_directory_fsync_is_not_an_error(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Some file systems (FUSE, SMB) cannot fsync a directory: the rename is done, so apply
    succeeds (documented in mailgitops/state/file_io.py)."""
    with monkeypatch.context() as mp:
        fail_fd("fsync", "/", errno.EINVAL)(mp, cli.state)
        code, _out, err = cli("apply", "--auto-approve")
    assert code == 0, err
    assert cli("plan")[1].rstrip().endswith("No changes.")


def test_missing_state_directory_that_cannot_be_created(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli.state = tmp_path / "new" / "deeper" / "live.json"
    with monkeypatch.context() as mp:
        fail_path("mkdir", "new", errno.EACCES)(mp, cli.state)
        code, out, err = cli("apply", "--auto-approve")
    assert code == 1
    assert re.search(r"cannot open the lock file .*: Permission denied", err), err
    _assert_clean_failure(out, err, tmp_path / "tmp")
    assert not (tmp_path / "new").exists()


# --- what the state path is ---------------------------------------------------------------------


def test_state_path_that_is_a_symlink_is_written_through(cli: Cli, tmp_path: Path) -> None:
    target = cli.state
    link = tmp_path / "repo-link" / "state.json"
    link.parent.mkdir()
    link.symlink_to(os.path.relpath(target, link.parent))
    cli.state = link
    serial = json.loads(target.read_bytes())["serial"]
    code, _out, err = cli("apply", "--auto-approve")
    assert code == 0, err
    assert link.is_symlink() and os.readlink(link) == os.path.relpath(target, link.parent)
    assert json.loads(target.read_bytes())["serial"] == serial + 1
    assert sorted(p.name for p in link.parent.iterdir()) == ["state.json"]
    assert (target.parent / "live.json.lock").exists() and (
        target.parent / "live.json.backup"
    ).exists()
    assert cli("plan")[1].rstrip().endswith("No changes.")


def test_dangling_symlink_is_an_empty_state_whose_target_is_created(
    cli: Cli, tmp_path: Path
) -> None:
    target = tmp_path / "elsewhere" / "fresh.json"
    target.parent.mkdir()
    link = tmp_path / "dangling.json"
    link.symlink_to(target)
    cli.state = link
    code, _out, err = cli("apply", "--auto-approve")
    assert code == 0, err
    assert link.is_symlink() and json.loads(target.read_bytes())["serial"] == 1


def test_symlink_loop_is_a_clear_error(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "a.json").symlink_to("b.json")
    (tmp_path / "b.json").symlink_to("a.json")
    cli.state = tmp_path / "a.json"
    for argv in (("apply", "--auto-approve"), ("plan",), ("show",)):
        code, out, err = cli(*argv)
        assert code == 1, argv
        assert "Too many levels of symbolic links" in err
        _assert_clean_failure(out, err, tmp_path / "tmp")
    assert (tmp_path / "a.json").is_symlink() and (tmp_path / "b.json").is_symlink()


@pytest.mark.parametrize("kind", ["directory", "symlink-to-directory", "fifo"])
def test_state_path_that_is_not_a_file_is_refused(cli: Cli, tmp_path: Path, kind: str) -> None:
    path = tmp_path / "weird.json"
    if kind == "directory":
        path.mkdir()
        (path / "keep").write_text("x")
    elif kind == "symlink-to-directory":
        (tmp_path / "somedir").mkdir()
        path.symlink_to("somedir")
    else:
        os.mkfifo(path)
    cli.state = path
    message = "is not a regular file" if kind == "fifo" else "is a directory, not a file"
    for argv in (("apply", "--auto-approve"), ("plan",), ("show",)):
        code, out, err = cli(*argv)
        assert code == 1 and message in err, (argv, err)
        _assert_clean_failure(out, err, tmp_path / "tmp")
    if kind == "directory":
        assert sorted(p.name for p in path.iterdir()) == ["keep"]


def test_state_owned_by_someone_else_is_not_taken_over(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not root: refused, naming the owner. (Root keeps the owner: the next test.)"""
    os.chown(cli.state, 4242, 4242)
    before = cli.state.read_bytes()
    with monkeypatch.context() as mp:
        mp.setattr(os, "geteuid", lambda: 4343)
        code, out, err = cli("apply", "--auto-approve")
    assert code == 1
    assert re.search(r"is owned by uid 4242, not by you \(uid 4343\): refusing to replace it", err)
    _assert_clean_failure(out, err, tmp_path / "tmp")
    assert cli.state.read_bytes() == before
    assert _temp_files(cli.state.parent) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
def test_root_applies_to_a_state_owned_by_someone_else_and_keeps_the_owner(cli: Cli) -> None:
    os.chown(cli.state, 4242, 4343)
    code, _out, err = cli("apply", "--auto-approve")
    assert code == 0, err
    backend = FileBackend(cli.state)
    for path in (cli.state, backend.backup_path):
        status = path.stat()
        assert (status.st_uid, status.st_gid, status.st_mode & 0o777) == (4242, 4343, 0o600)


# --- SIGKILL at many moments of a real apply ---------------------------------------------------

KILLS = 30
MAILBOXES = 2_000  # in the config; each apply changes one of them
OUTSIDE = 2_000  # entries made outside mailgitops: they make the state large to write
FILES = 10


def _big_project(root: Path) -> None:
    tree(
        root,
        {
            "providers.d/corp.yaml": "name: corp\ndomains: [example.com]\n"
            "imap:\n  host: imap.example.com\nsmtp:\n  host: smtp.example.com\n"
        },
    )
    for index in range(FILES):
        _write_team(root, index, version=0)


def _write_team(root: Path, index: int, version: int) -> None:
    per_file = MAILBOXES // FILES
    lines = ["mailboxes:"]
    for i in range(index * per_file, (index + 1) * per_file):
        lines += [
            f"  - address: user{i:05d}@example.com",
            f"    owner: user{i:05d}",
            "    password: {env: KILL_PW}",
            f"    sender_name: User {i} v{version if i == index * per_file else 0}",
        ]
    path = root / "mailboxes.d" / f"team-{index:02d}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def _add_outside_entries(state: Path) -> None:
    live = json.loads(state.read_bytes())
    for i in range(OUTSIDE):
        live["mailboxes"][f"ui{i:05d}@Example.com"] = {
            "provider": "corp",
            "owner": f"ui{i}",
            "sender_name": "made in the CRM's UI",
            "sync": {"enabled": True, "period": "all", "folders": ["INBOX", "Sent"]},
        }
    state.write_text(json.dumps(live, indent=2))


@dataclass
class KillReport:
    before_write: int = 0  # the state was the old one, no temporary file
    mid_write: int = 0  # temporary files were there: killed between create and rename
    after_rename: int = 0  # the state was the new one
    finished: int = 0  # the apply had ended before the kill

    @property
    def survived(self) -> int:
        return self.before_write + self.mid_write + self.after_rename + self.finished


def _apply_process(root: Path, state: Path) -> subprocess.Popen[bytes]:
    env = {**python_env(), "KILL_PW": "kill-pw", "MAILGITOPS_CACHE_DIR": str(root / ".cache")}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mailgitops",
            "apply",
            "-C",
            str(root),
            "--state",
            str(state),
            "--auto-approve",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )


def _duration(root: Path, state: Path) -> float:
    """Seconds of one uninterrupted apply."""
    started = time.monotonic()
    process = _apply_process(root, state)
    _, stderr = process.communicate()
    assert process.returncode == 0, stderr.decode()
    return time.monotonic() - started


def _kill_moments(total: float) -> list[tuple[str, float]]:
    """18 moments spread evenly over an apply (and a little past its end), counted from its
    start; 12 counted from the moment the new state's temporary file appears, 0 to 5.5 ms
    after it: the write itself lasts only a few milliseconds of the apply."""
    spread = [("start", total * 1.1 * (i + 0.5) / 18) for i in range(18)]
    writing = [("temp file", 0.0005 * i) for i in range(KILLS - 18)]
    mixed = [m for pair in itertools.zip_longest(spread, writing) for m in pair if m]
    return mixed


def _kill(
    process: subprocess.Popen[bytes], moment: tuple[str, float], temp: Path, before: set[Any]
) -> None:
    trigger, delay = moment
    if trigger == "temp file":
        # A new temporary file, not a dead writer's leftover.
        while process.poll() is None and not _identities([temp]) - before:
            time.sleep(0.0002)
    time.sleep(delay)
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return [
        f"{kind} {key}: {old[kind].get(key)} -> {new[kind].get(key)}"
        for kind in ("providers", "mailboxes")
        for key in sorted({*old[kind], *new[kind]})
        if old[kind].get(key) != new[kind].get(key)
    ][:5]


def _identities(paths: list[Path]) -> set[tuple[str, int, int]]:
    """The temporary files there now, told apart from a dead writer's earlier ones."""
    found = set()
    for path in paths:
        try:
            status = path.stat()
        except FileNotFoundError:
            continue
        found.add((path.name, status.st_ino, status.st_mtime_ns))
    return found


def test_sigkill_at_many_moments_of_an_apply(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KILL_PW", "kill-pw")
    root = tmp_path / "repo"
    _big_project(root)
    cli = Cli(root, capsys)
    cli.state = tmp_path / "state" / "live.json"
    assert cli("apply", "--auto-approve")[0] == 0
    _add_outside_entries(cli.state)
    for version in (1, 2):  # the first run fills the parse cache
        _write_team(root, 0, version=version)
        total = _duration(root, cli.state)

    report = KillReport()
    temps = [cli.state.with_name(cli.state.name + s) for s in (".tmp", ".backup.tmp")]
    versions = dict.fromkeys(range(FILES), 0) | {0: 2}  # the sender_name version in the config
    for kill, moment in enumerate(_kill_moments(total)):
        index = kill % FILES
        versions[index] = kill + 3
        _write_team(root, index, version=versions[index])
        old_bytes = cli.state.read_bytes()
        leftovers = _identities(temps)
        old = json.loads(old_bytes)

        process = _apply_process(root, cli.state)
        _kill(process, moment, temps[0], leftovers)
        _, stderr = process.communicate()
        if process.returncode == 0:
            report.finished += 1
        else:
            assert process.returncode == -signal.SIGKILL, stderr.decode()

        new_bytes = cli.state.read_bytes()
        new = json.loads(new_bytes)  # always parses: never half a state
        if new_bytes == old_bytes:
            if _identities(temps) - leftovers:
                report.mid_write += 1
            elif process.returncode != 0:
                report.before_write += 1
        else:
            if process.returncode != 0:
                report.after_rename += 1
            # Exactly the old state with every change the config holds (a killed apply
            # leaves its change to the next one), serial + 1.
            assert new["serial"] == old["serial"] + 1
            for team, version in versions.items():
                first = team * (MAILBOXES // FILES)
                address = f"user{first:05d}@example.com"
                assert new["mailboxes"][address]["sender_name"] == f"User {first} v{version}"
                new["mailboxes"].pop(address)
                old["mailboxes"].pop(address)
            assert {**new, "serial": 0} == {**old, "serial": 0}, _differences(old, new)
        backup = FileBackend(cli.state).backup_path
        if backup.exists():
            assert json.loads(backup.read_bytes())["serial"] in (old["serial"] - 1, old["serial"])

        if kill % 10 == 9:
            # The next apply takes the lock, clears the leftovers and converges.
            code, _out, err = cli("apply", "--auto-approve")
            assert code == 0, err
            assert not any(t.exists() for t in temps)
            assert cli("plan")[1].rstrip().endswith("No changes.")

    FileBackend(cli.state).read()
    assert report.survived == KILLS
    with capsys.disabled():
        print(
            f"\n{KILLS} kills survived: {report.before_write} before the write, "
            f"{report.mid_write} mid-write, {report.after_rename} after the rename, "
            f"{report.finished} after the end (an apply takes {total:.2f}s)"
        )
