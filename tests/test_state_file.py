"""The file state backend and open_backend: real files, real processes, real locks."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

import mailgitops
from mailgitops import schema
from mailgitops.errors import LockError, StateError
from mailgitops.settings import StateSetting
from mailgitops.state import DEFAULT_STATE_FILE, State, open_backend
from mailgitops.state.file import FileBackend

REPO = Path(mailgitops.__file__).resolve().parent.parent

PROVIDER: dict[str, Any] = {
    "managed": True,
    "name": "corp",
    "service_type": "imap",
    "domains": ["example.com"],
    "imap": {"host": "imap.example.com", "security": "ssl_tls", "port": 993},
    "smtp": {"host": "smtp.example.com", "security": "ssl_tls", "port": 465, "timeout_seconds": 40},
    "auth": {"method": "basic"},
}
MAILBOX: dict[str, Any] = {
    "managed": True,
    "provider": "corp",
    "owner": "alice",
    "sender_name": "Alice Müller",
    "password": {"env": "ALICE_PW", "version": 2},
    "sync": {"enabled": True, "period": "week", "folders": ["INBOX"]},
    "shared_with": [{"user": "bob", "rights": ["read", "send"]}],
}


def make_state(serial: int = 1, **mailboxes: dict[str, Any]) -> State:
    return State(
        lineage="0b5f-lineage",
        serial=serial,
        providers={"corp": PROVIDER},
        mailboxes={"alice@example.com": MAILBOX, **mailboxes},
    )


def document(**changes: Any) -> dict[str, Any]:
    return {**make_state().to_json(), **changes}


def write(backend: FileBackend, new: State) -> None:
    with backend.lock(0):
        backend.write(new, backend.read())


@pytest.fixture
def state_path(tmp_path: Path) -> Path:
    return tmp_path / "live" / "state.json"


@pytest.fixture
def backend(state_path: Path) -> FileBackend:
    return FileBackend(state_path)


def child_env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path}


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".tmp" in p.name)


# --- reading and writing ----------------------------------------------------------------------


def test_missing_file_is_the_empty_state(backend: FileBackend, state_path: Path) -> None:
    state = backend.read()
    assert state == State()
    assert not state.exists
    assert not state_path.parent.exists(), "read must not create anything"


def test_round_trip(backend: FileBackend, state_path: Path) -> None:
    state = make_state()
    write(backend, state)
    assert FileBackend(state_path).read() == state
    text = state_path.read_text("utf-8")
    assert json.loads(text) == state.to_json()
    assert "Alice Müller" in text
    # one entry per line, keys sorted: a changed entry is a changed line in a diff
    lines = text.splitlines()
    assert lines[0] == "{" and lines[-1] == "}" and text.endswith("}\n")
    for kind in ("providers", "mailboxes"):
        entries = getattr(state, kind)
        for name, entry in entries.items():
            value = json.dumps(entry, sort_keys=True, ensure_ascii=False)
            line = f"    {json.dumps(name)}: {value}"
            assert line in lines or line + "," in lines


def test_entries_made_outside_may_hold_anything(backend: FileBackend) -> None:
    state = State(
        lineage="0b5f-lineage",
        serial=0,
        providers={"legacy.mail": {"Address": "mail.example.net", "managed": False}},
        mailboxes={
            "bob@example.com": {"provider": "legacy.mail", "owner": "bob", "crm_id": [1, 2]},
            "carol@example.com": {"provider": "corp", "owner": "carol", "signature": None},
        },
    )
    write(backend, state)
    assert backend.read() == state


def test_state_schema_is_a_valid_2020_12_schema() -> None:
    document = schema.load("state")
    Draft202012Validator.check_schema(document)
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_first_write_creates_private_parent_directory(tmp_path: Path) -> None:
    backend = FileBackend(tmp_path / "a" / "b" / "state.json")
    write(backend, make_state())
    assert stat.S_IMODE((tmp_path / "a" / "b").stat().st_mode) & 0o077 == 0


def test_files_are_0600_whatever_the_umask(backend: FileBackend, state_path: Path) -> None:
    old_umask = os.umask(0o000)
    try:
        write(backend, make_state(1))
        write(backend, make_state(2))
    finally:
        os.umask(old_umask)
    for path in (state_path, backend.backup_path, backend.lock_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_backup_holds_the_previous_version(backend: FileBackend, state_path: Path) -> None:
    write(backend, make_state(1))
    first = state_path.read_bytes()
    assert not backend.backup_path.exists(), "nothing to back up on the first write"
    write(backend, make_state(2))
    assert backend.backup_path.read_bytes() == first
    assert backend.read().serial == 2
    assert leftovers(state_path.parent) == []


def test_write_refuses_a_state_changed_since_it_was_read(
    backend: FileBackend, state_path: Path
) -> None:
    write(backend, make_state(1))
    with backend.lock(0):
        previous = backend.read()
        changed_by_someone_else = state_path.read_bytes().replace(b'"alice"', b'"carol"')
        state_path.write_bytes(changed_by_someone_else)
        with pytest.raises(StateError, match="changed while this command was running"):
            backend.write(make_state(2), previous)
    assert state_path.read_bytes() == changed_by_someone_else


def test_write_without_the_lock_is_a_bug(backend: FileBackend) -> None:
    with pytest.raises(RuntimeError, match="without holding its lock"):
        backend.write(make_state(), State())


def test_write_refuses_an_invalid_state_without_showing_secrets(
    backend: FileBackend, state_path: Path
) -> None:
    write(backend, make_state(1))
    before = state_path.read_bytes()
    leaky = make_state(2, **{"bob@example.com": {**MAILBOX, "password": "hunter2"}})
    with pytest.raises(StateError) as raised:
        write(backend, leaky)
    message = str(raised.value)
    assert 'mailboxes["bob@example.com"].password' in message
    assert "hunter2" not in message
    assert state_path.read_bytes() == before


def test_leftover_temp_file_of_a_dead_writer_is_replaced(
    backend: FileBackend, state_path: Path
) -> None:
    write(backend, make_state(1))
    (state_path.parent / "state.json.tmp").write_text("half a sta")
    write(backend, make_state(2))
    assert backend.read().serial == 2
    assert leftovers(state_path.parent) == []


# --- states that must be refused and left alone -----------------------------------------------

CORRUPT: dict[str, tuple[bytes, str]] = {
    "empty": (b"", "it is empty"),
    "blank": (b"  \n\n", "it is empty"),
    "not-json": (b'{"format_version": 1,', "not valid JSON: .* at line 1 column"),
    "not-utf8": (b'{"lineage": "caf\xe9"}', r"not UTF-8 \(byte 0xe9 at offset 16\)"),
    "duplicate-key": (b'{"serial": 1, "serial": 2}', 'the key "serial" appears twice'),
    "too-deep": (b"[" * 100_000, "nested too deeply"),
    "not-an-object": (b"[1, 2]", r"\(top level\): must be an object, not an array"),
    "newer-format": (
        json.dumps(document(format_version=2)).encode(),
        "format_version 2, and this mailgitops reads only format_version 1",
    ),
    "missing-owner": (
        json.dumps(document(mailboxes={"a@x.com": {"provider": "corp"}})).encode(),
        r"mailboxes\[\"a@x.com\"\]: 'owner' is a required property",
    ),
    "provider-not-a-string": (
        json.dumps(document(mailboxes={"a@x.com": {"provider": 5, "owner": "a"}})).encode(),
        r"mailboxes\[\"a@x.com\"\].provider: must be a string, not an integer",
    ),
    "port-as-string": (
        json.dumps(document(providers={"corp": {"imap": {"port": "993"}}})).encode(),
        r"providers.corp.imap.port: must be an integer, not a string",
    ),
    "bad-service-type": (
        json.dumps(document(providers={"corp": {"service_type": "pop3"}})).encode(),
        r"providers.corp.service_type: 'pop3' is not one of",
    ),
    "not-an-address": (
        json.dumps(document(mailboxes={"nobody": {"provider": "corp", "owner": "a"}})).encode(),
        "mailboxes: 'nobody' is not an email address",
    ),
    "negative-serial": (
        json.dumps(document(serial=-1)).encode(),
        "serial: -1 is less than the minimum of 0",
    ),
    "plaintext-password": (
        json.dumps(
            document(mailboxes={"a@x.com": {"provider": "c", "owner": "a", "password": "hunter2"}})
        ).encode(),
        r"mailboxes\[\"a@x.com\"\].password: must be a secret reference",
    ),
    "plaintext-client-secret": (
        json.dumps(
            document(providers={"c": {"auth": {"method": "oauth2", "client_secret": "hunter2"}}})
        ).encode(),
        "providers.c.auth.client_secret: must be a secret reference",
    ),
    "secret-smuggled-in-a-reference": (
        json.dumps(
            document(
                mailboxes={
                    "a@x.com": {"provider": "c", "owner": "a", "password": {"value": "hunter2"}}
                }
            )
        ).encode(),
        r"mailboxes\[\"a@x.com\"\].password: must be a secret reference",
    ),
}


@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_unusable_state_is_refused_and_never_overwritten(state_path: Path, case: str) -> None:
    content, reason = CORRUPT[case]
    state_path.parent.mkdir()
    state_path.write_bytes(content)
    backend = FileBackend(state_path)

    with pytest.raises(StateError, match=reason) as raised:
        backend.read()
    message = str(raised.value)
    assert str(state_path) in message
    assert "hunter2" not in message
    assert "Traceback" not in message

    with backend.lock(0), pytest.raises(StateError, match=reason):
        backend.write(make_state(), State())
    assert state_path.read_bytes() == content
    assert not backend.backup_path.exists()
    assert leftovers(state_path.parent) == []


def test_refusal_points_to_the_backup(backend: FileBackend, state_path: Path) -> None:
    write(backend, make_state(1))
    write(backend, make_state(2))
    state_path.write_bytes(b"")
    with pytest.raises(
        StateError, match=f"restore the previous version from {re.escape(str(backend.backup_path))}"
    ):
        backend.read()


def test_many_schema_errors_are_summarised(state_path: Path) -> None:
    mailboxes = {f"u{i}@x.com": {"provider": "corp"} for i in range(25)}
    state_path.parent.mkdir()
    state_path.write_text(json.dumps(document(mailboxes=mailboxes)))
    with pytest.raises(StateError, match=r"\.\.\. and 15 more"):
        FileBackend(state_path).read()


def test_directory_as_state_path(tmp_path: Path) -> None:
    backend = FileBackend(tmp_path)
    with pytest.raises(
        StateError, match=f"state {re.escape(str(tmp_path))} is a directory, not a file"
    ):
        backend.read()
    with backend.lock(0), pytest.raises(StateError, match="is a directory"):
        backend.write(make_state(), State())
    assert tmp_path.is_dir()


def test_fifo_as_state_path_fails_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "state.json"
    os.mkfifo(fifo)
    with pytest.raises(StateError, match="is not a regular file"):
        FileBackend(fifo).read()


def test_unreadable_parent_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    backend = FileBackend(tmp_path / "file" / "state.json")
    with pytest.raises(StateError, match=r"cannot read state .*: Not a directory"):
        backend.read()


# --- failing writes leave the old state intact -------------------------------------------------


def test_failing_backup_leaves_old_state_and_no_temp_files(
    backend: FileBackend, state_path: Path
) -> None:
    write(backend, make_state(1))
    write(backend, make_state(2))
    state, backup = state_path.read_bytes(), backend.backup_path.read_bytes()
    # Works as root too: nothing can replace a directory by a file.
    (state_path.parent / "state.json.backup.tmp").mkdir()

    with pytest.raises(
        StateError, match=f"cannot write state {re.escape(str(state_path))}: Is a directory"
    ):
        write(backend, make_state(3))

    assert state_path.read_bytes() == state
    assert backend.backup_path.read_bytes() == backup
    assert leftovers(state_path.parent) == ["state.json.backup.tmp"]


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_disk_full_leaves_old_state_and_no_temp_files(
    backend: FileBackend, state_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    write(backend, make_state(1))
    write(backend, make_state(2))
    state, backup = state_path.read_bytes(), backend.backup_path.read_bytes()

    def disk_full(*args: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, failing, disk_full)
    with pytest.raises(
        StateError, match=f"cannot write state {re.escape(str(state_path))}: No space left"
    ):
        write(backend, make_state(3))
    monkeypatch.undo()

    assert state_path.read_bytes() == state
    assert backend.backup_path.read_bytes() == backup
    assert leftovers(state_path.parent) == []


KILLED_WRITER = """
import os
import sys
from pathlib import Path
from mailgitops.state.base import State
from mailgitops.state.file import FileBackend

path, function, stop_at = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
real = getattr(os, function)
calls = 0

def stop_here(*args):
    global calls
    calls += 1
    if calls == stop_at:
        print("stopped", flush=True)
        sys.stdin.readline()
    return real(*args)

setattr(os, function, stop_here)
backend = FileBackend(path)
with backend.lock(0):
    previous = backend.read()
    backend.write(State("0b5f-lineage", previous.serial + 1, {}, {}), previous)
"""


@pytest.mark.parametrize(
    ("function", "call", "serial_after"),
    [
        pytest.param("fsync", 1, 1, id="new-state-not-yet-synced"),
        pytest.param("fsync", 2, 1, id="backup-not-yet-synced"),
        pytest.param("replace", 1, 1, id="before-backup-rename"),
        pytest.param("replace", 2, 1, id="between-backup-and-state-rename"),
        pytest.param("fsync", 3, 2, id="before-directory-sync"),
    ],
)
def test_kill_9_mid_write_leaves_a_usable_state(
    backend: FileBackend, state_path: Path, function: str, call: int, serial_after: int
) -> None:
    write(backend, make_state(1))
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(state_path), function, str(call)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    assert writer.stdout is not None
    assert writer.stdout.readline() == "stopped\n"
    writer.kill()
    writer.communicate()

    assert backend.read().serial == serial_after
    if backend.backup_path.exists():
        assert FileBackend(backend.backup_path).read().lineage == "0b5f-lineage"
    write(backend, make_state(3))
    assert backend.read().serial == 3
    assert leftovers(state_path.parent) == []


# --- symlinks and ownership ---------------------------------------------------------------------


def test_symlinked_state_is_written_through_to_its_target(tmp_path: Path) -> None:
    target = tmp_path / "state-dir" / "live.json"
    link = tmp_path / "repo" / "mailgitops.state.json"
    link.parent.mkdir()
    target.parent.mkdir()
    link.symlink_to(os.path.relpath(target, link.parent))
    backend = FileBackend(link)

    assert backend.read() == State(), "a dangling link is the empty state"
    write(backend, make_state(1))
    write(backend, make_state(2))

    assert link.is_symlink()
    assert FileBackend(target).read().serial == 2
    assert FileBackend(target).lock_path == backend.lock_path == Path(f"{target}.lock")
    assert backend.backup_path == Path(f"{target}.backup")
    assert json.loads(backend.backup_path.read_text())["serial"] == 1
    assert sorted(p.name for p in link.parent.iterdir()) == ["mailgitops.state.json"]


def test_a_file_owned_by_another_user_is_not_taken_over(
    backend: FileBackend, state_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(backend, make_state(1))
    before = state_path.read_bytes()
    someone_else = os.geteuid() + 1 if os.geteuid() != 0 else 4242
    monkeypatch.setattr(os, "geteuid", lambda: someone_else)

    with pytest.raises(StateError, match=r"is owned by .*uid \d+.*refusing to replace it"):
        write(backend, make_state(2))
    assert state_path.read_bytes() == before
    assert leftovers(state_path.parent) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
def test_root_keeps_the_owner_of_the_state(backend: FileBackend, state_path: Path) -> None:
    write(backend, make_state(1))
    os.chown(state_path, 4242, 4343)
    write(backend, make_state(2))
    for path in (state_path, backend.backup_path):
        assert (path.stat().st_uid, path.stat().st_gid) == (4242, 4343)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


# --- locking with real processes ----------------------------------------------------------------

HOLD_LOCK = """
import sys
from pathlib import Path
from mailgitops.state.file import FileBackend

with FileBackend(Path(sys.argv[1])).lock(0):
    print("locked", flush=True)
    sys.stdin.readline()
"""


@pytest.fixture
def hold_lock() -> Iterator[Callable[[Path], subprocess.Popen[str]]]:
    """Starts a process that holds the lock on a state until its stdin is closed."""
    children: list[subprocess.Popen[str]] = []

    def start(path: Path) -> subprocess.Popen[str]:
        child = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        children.append(child)
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line == "locked\n", child.communicate()[1]
        return child

    yield start
    for child in children:
        child.kill()
        child.wait()
        for stream in (child.stdin, child.stdout, child.stderr):
            if stream is not None:
                stream.close()


def test_lock_held_by_another_process_names_it(
    backend: FileBackend, state_path: Path, hold_lock: Callable[[Path], subprocess.Popen[str]]
) -> None:
    holder = hold_lock(state_path)
    with pytest.raises(LockError) as raised, backend.lock(0):
        pass
    message = str(raised.value)
    assert f"pid {holder.pid}" in message
    assert f"on {socket.gethostname()}" in message
    assert "since 20" in message
    assert str(state_path) in message
    assert "--lock-timeout" in message


def test_lock_timeout_waits_for_the_holder(
    backend: FileBackend, state_path: Path, hold_lock: Callable[[Path], subprocess.Popen[str]]
) -> None:
    holder = hold_lock(state_path)
    assert holder.stdin is not None
    with pytest.raises(LockError, match=r"after waiting 0\.2s"), backend.lock(0.2):
        pass

    threading.Timer(0.1, holder.stdin.close).start()
    with backend.lock(30):
        assert holder.wait(timeout=5) == 0
        record = json.loads(backend.lock_path.read_text())
        assert record["pid"] == os.getpid()


def test_a_killed_holder_does_not_block_the_next_one(
    backend: FileBackend, state_path: Path, hold_lock: Callable[[Path], subprocess.Popen[str]]
) -> None:
    holder = hold_lock(state_path)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    with backend.lock(0):
        write_under_lock = make_state()
        backend.write(write_under_lock, backend.read())
    assert backend.read() == write_under_lock


def test_lock_file_stays_and_is_emptied_on_release(backend: FileBackend) -> None:
    with backend.lock(0):
        assert json.loads(backend.lock_path.read_text())["pid"] == os.getpid()
    assert backend.lock_path.read_text() == ""
    with backend.lock(0):
        pass


def test_locks_of_two_states_are_independent(
    tmp_path: Path, hold_lock: Callable[[Path], subprocess.Popen[str]]
) -> None:
    hold_lock(tmp_path / "one.json")
    with FileBackend(tmp_path / "two.json").lock(0):
        pass


def test_a_lock_file_that_is_not_a_regular_file_is_refused(
    backend: FileBackend, state_path: Path
) -> None:
    state_path.parent.mkdir(parents=True)
    os.mkfifo(backend.lock_path)
    refused = r"the lock file .*state\.json\.lock is not a regular file"
    with pytest.raises(StateError, match=refused), backend.lock(0):
        pass
    assert stat.S_ISFIFO(backend.lock_path.stat().st_mode), "left as it was"


@pytest.mark.parametrize("record", [b"not json", b"[1, 2]", b'{"pid": "7", "host": 7}'])
def test_an_unreadable_holder_record_is_an_unknown_holder(
    backend: FileBackend, state_path: Path, record: bytes
) -> None:
    """A lock held by something that wrote no record of ours (or an old version of it)."""
    state_path.parent.mkdir(parents=True)
    backend.lock_path.write_bytes(record)
    fd = os.open(backend.lock_path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another open file description: another holder
        with pytest.raises(LockError, match="is locked by unknown holder"), backend.lock(0):
            pass
    finally:
        os.close(fd)
    with backend.lock(0):
        pass


# --- where the state is --------------------------------------------------------------------------


@pytest.fixture
def no_state_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAILGITOPS_STATE", raising=False)


def location(backend: object) -> Path:
    assert isinstance(backend, FileBackend)
    return backend.path


@pytest.mark.usefixtures("no_state_env")
def test_default_location_is_under_the_root(tmp_path: Path) -> None:
    assert location(open_backend(None, tmp_path)) == tmp_path / DEFAULT_STATE_FILE
    assert DEFAULT_STATE_FILE == "mailgitops.state.json"


@pytest.mark.usefixtures("no_state_env")
def test_setting_path_is_relative_to_the_root(tmp_path: Path) -> None:
    setting = StateSetting.of({"backend": "file", "path": "state/live.json"})
    assert location(open_backend(None, tmp_path, setting)) == tmp_path / "state/live.json"
    absolute = StateSetting.of({"path": str(tmp_path / "elsewhere.json")})
    assert location(open_backend(None, Path("root"), absolute)) == tmp_path / "elsewhere.json"


def test_precedence_flag_then_env_then_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    setting = StateSetting.of({"backend": "file", "path": "from-setting.json"})
    monkeypatch.setenv("MAILGITOPS_STATE", "from-env.json")
    assert location(open_backend("from-flag.json", tmp_path, setting)) == Path("from-flag.json")
    assert location(open_backend(None, tmp_path, setting)) == Path("from-env.json")
    monkeypatch.setenv("MAILGITOPS_STATE", "")
    assert location(open_backend(None, tmp_path, setting)) == tmp_path / "from-setting.json"


@pytest.mark.usefixtures("no_state_env")
def test_unknown_backend_and_empty_flag(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="unknown state backend 's3'"):
        open_backend(None, tmp_path, StateSetting.of({"backend": "s3"}))
    with pytest.raises(StateError, match="--state needs a path"):
        open_backend("", tmp_path)
