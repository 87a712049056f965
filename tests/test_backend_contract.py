"""One contract for every state backend: the same plan/apply behaviour, refusals, stale plans,
secret handling, concurrent appliers and killed appliers, run against the file backend and
PostgreSQL through the real CLI. Then what only PostgreSQL has: selection, passwords, the
lock holder from pg_stat_activity, migrations, writes that touch only what changed, and
`state push` / `state pull`.

PostgreSQL comes from the session fixture in conftest.py (a throwaway cluster, or
MAILGITOPS_TEST_PG_DSN); a test that needs it fails, never skips, when there is none."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from conftest import PG_PASSWORD_ROLE, PYTHON, PgServer, fresh_workspace, python_env
from helpers import CORP, OTHER, TEAM, standard, tree
from psycopg import sql

from mailgitops.cli import main
from mailgitops.errors import LockError, StateError
from mailgitops.settings import StateSetting
from mailgitops.state import open_backend
from mailgitops.state.base import State, StateBackend
from mailgitops.state.postgres import PostgresBackend
from mailgitops.state.postgres_connection import application_name
from mailgitops.state.postgres_lock import workspace_lock_key

ALICE_PW = "alice-pw-Zq8#value"
BOB_PW = "bob-pw-Kx3!value"
# Where the applier is killed: so long after it took the lock (while it plans, holding the
# lock), and as soon as it starts writing. Observed, not guessed from wall time, so that the
# kill lands in the same phase on a fast laptop and on a loaded CI machine.
KILL_POINTS = (("locked", 0.2), ("writing", 0.0))
MANY = 3000


# --- the two backends, seen from outside mailgitops ----------------------------------------


class Store:
    """A state location plus direct access to what it stores, bypassing mailgitops: the way
    a test (or a user in the CRM, or an export job) sees and changes it."""

    kind = ""
    state_arg = ""

    def stored(self) -> dict[str, Any] | None:
        """The stored state as a SPEC §3 document; None when there is none."""
        raise NotImplementedError

    def snapshot(self) -> str:
        """Everything stored, as text: equal snapshots mean nothing was written."""
        raise NotImplementedError

    def put_outside(self, kind: str, key: str, entry: dict[str, Any]) -> None:
        """Create or replace an entry without mailgitops (the serial stays)."""
        raise NotImplementedError

    def reached(self, pid: int, phase: str) -> bool:
        """Whether process `pid` holds this state's lock ("locked") or is writing it
        ("writing"), as seen from outside."""
        raise NotImplementedError

    def backend(self) -> StateBackend:
        return open_backend(self.state_arg, Path())

    def fresh(self) -> Store:
        """Another, empty state of the same kind."""
        raise NotImplementedError


class FileStore(Store):
    kind = "file"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.state_arg = str(path)

    def stored(self) -> dict[str, Any] | None:
        if not self.path.exists():
            return None
        data: dict[str, Any] = json.loads(self.path.read_text())
        return data

    def snapshot(self) -> str:
        files = sorted(self.path.parent.glob(self.path.name + "*"))
        return "\n".join(f"{p.name}:{p.read_bytes().decode('utf-8', 'replace')}" for p in files)

    def put_outside(self, kind: str, key: str, entry: dict[str, Any]) -> None:
        data = self.stored()
        assert data is not None
        data[f"{kind}s" if kind == "provider" else "mailboxes"][key] = entry
        self.path.write_text(json.dumps(data))

    def reached(self, pid: int, phase: str) -> bool:
        if phase == "writing":
            return self.path.with_name(self.path.name + ".tmp").exists()
        try:
            record = json.loads(self.path.with_name(self.path.name + ".lock").read_text())
        except (OSError, ValueError):
            return False
        return isinstance(record, dict) and record.get("pid") == pid

    def fresh(self) -> Store:
        n = len(list(self.path.parent.glob("fresh-*.json")))
        return FileStore(self.path.parent / f"fresh-{n}.json")


class PgStore(Store):
    kind = "postgres"

    def __init__(self, server: PgServer) -> None:
        self.server = server
        self.workspace = fresh_workspace()
        self.state_arg = server.workspace_url(self.workspace)
        self._watch: psycopg.Connection[tuple[Any, ...]] | None = None

    def _query(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.server.dsn, autocommit=True) as conn:
            exists = conn.execute("SELECT to_regclass('mailgitops_workspace')").fetchone()
            if exists is None or exists[0] is None:
                return []
            return conn.execute(query, params).fetchall()

    def stored(self) -> dict[str, Any] | None:
        rows = self._query(
            "SELECT format_version, lineage, serial FROM mailgitops_workspace WHERE workspace = %s",
            (self.workspace,),
        )
        if not rows:
            return None
        format_version, lineage, serial = rows[0]
        return {
            "format_version": format_version,
            "lineage": lineage,
            "serial": serial,
            "providers": dict(
                self._query(
                    "SELECT name, entry FROM mailgitops_provider WHERE workspace = %s",
                    (self.workspace,),
                )
            ),
            "mailboxes": dict(
                self._query(
                    "SELECT address, entry FROM mailgitops_mailbox WHERE workspace = %s",
                    (self.workspace,),
                )
            ),
        }

    def snapshot(self) -> str:
        rows = self._query(
            "SELECT 'w', row_to_json(w)::text FROM mailgitops_workspace AS w "
            "WHERE workspace = %(w)s "
            "UNION ALL SELECT 'p', name || '=' || entry::text FROM mailgitops_provider "
            "WHERE workspace = %(w)s "
            "UNION ALL SELECT 'm', address || '=' || entry::text FROM mailgitops_mailbox "
            "WHERE workspace = %(w)s ORDER BY 1, 2",
            {"w": self.workspace},  # type: ignore[arg-type]
        )
        return "\n".join(f"{a}:{b}" for a, b in rows)

    def put_outside(self, kind: str, key: str, entry: dict[str, Any]) -> None:
        table, column = ("mailgitops_provider", "name")
        if kind == "mailbox":
            table, column = ("mailgitops_mailbox", "address")
        with psycopg.connect(self.server.dsn, autocommit=True) as conn:
            conn.execute(
                f"INSERT INTO {table} (workspace, {column}, entry) "
                f"VALUES (%s, %s, %s::jsonb) ON CONFLICT (workspace, {column}) "
                "DO UPDATE SET entry = EXCLUDED.entry",
                (self.workspace, key, json.dumps(entry)),
            )

    def fresh(self) -> Store:
        return PgStore(self.server)

    def reached(self, pid: int, phase: str) -> bool:
        if self._watch is None:
            self._watch = psycopg.connect(self.server.dsn, autocommit=True)
        name = f"mailgitops pid={pid} host={socket.gethostname()}"
        if phase == "locked":
            key = workspace_lock_key(self.workspace) & 0xFFFF_FFFF_FFFF_FFFF
            row = self._watch.execute(
                "SELECT count(*) FROM pg_locks AS l JOIN pg_stat_activity AS a USING (pid) "
                "WHERE a.application_name = %s AND l.locktype = 'advisory' AND l.granted "
                "AND l.objsubid = 1 AND l.classid::bigint = %s AND l.objid::bigint = %s",
                (name, key >> 32, key & 0xFFFF_FFFF),
            ).fetchone()
        else:
            # The write transaction begins by locking the workspace row FOR UPDATE.
            row = self._watch.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                "AND state IN ('active', 'idle in transaction') "
                "AND (query LIKE '%%FOR UPDATE' OR query LIKE 'INSERT%%' "
                "OR query LIKE 'DELETE%%')",
                (name,),
            ).fetchone()
        return row is not None and row[0] > 0

    def session_gone(self, pid: int, timeout: float = 10.0) -> None:
        """Waits until the server has ended the session of the (killed) process `pid`. The
        server notices a dead client at its next read of the socket; this waits for that
        instead of racing it, and a lock that really got stuck fails the next apply."""
        name = f"mailgitops pid={pid} host={socket.gethostname()}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with psycopg.connect(self.server.dsn, autocommit=True) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (name,)
                ).fetchone()
            if row is not None and row[0] == 0:
                return
            time.sleep(0.05)


@pytest.fixture(params=["file", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "file":
        return FileStore(tmp_path / "state" / "live.json")
    request.applymarker(pytest.mark.postgres)
    server: PgServer = request.getfixturevalue("pg")
    return PgStore(server)


@pytest.fixture
def secrets_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALICE_PW", ALICE_PW)
    monkeypatch.setenv("BOB_PW", BOB_PW)


class Run:
    """`mailgitops COMMAND -C ROOT --state STORE ARGS...` in-process; keeps every output so
    tests can check that no secret ever appeared in any of them."""

    def __init__(self, root: Path, store: Store, capsys: pytest.CaptureFixture[str]) -> None:
        self.root, self.store, self.capsys = root, store, capsys
        self.outputs: list[str] = []

    def __call__(self, command: str, *argv: str, state: bool = True) -> tuple[int, str, str]:
        args = [command, "-C", str(self.root)]
        if state:
            args += ["--state", self.store.state_arg]
        code = main([*args, *argv])
        out, err = self.capsys.readouterr()
        self.outputs += [out, err]
        return code, out, err

    def plan_actions(self) -> list[tuple[str, str, str]]:
        code, out, err = self("plan", "--format", "json")
        assert code in (0, 1), err
        return [(c["action"], c["kind"], c["id"]) for c in json.loads(out)["changes"]]


@pytest.fixture
def run(tmp_path: Path, store: Store, capsys: pytest.CaptureFixture[str], secrets_env: None) -> Run:
    return Run(standard(tmp_path / "config"), store, capsys)


def no_changes(run: Run) -> bool:
    code, out, _ = run("plan")
    return code == 0 and out.rstrip().endswith("No changes.")


# --- plan and apply ------------------------------------------------------------------------


def test_create_apply_then_no_changes(run: Run, store: Store) -> None:
    assert run.plan_actions() == [
        ("create", "provider", "corp"),
        ("create", "mailbox", "alice@example.com"),
        ("create", "mailbox", "bob@example.com"),
    ]
    assert store.stored() is None, "plan never creates the state"
    code, out, err = run("apply", "--auto-approve")
    assert code == 0, err
    assert "Apply complete! 3 added" in out and "State serial 1" in out
    live = store.stored()
    assert live is not None and live["serial"] == 1 and live["lineage"]
    assert live["mailboxes"]["alice@example.com"] == {
        "managed": True,
        "provider": "corp",
        "owner": "alice",
        "login": "alice@example.com",
        "password": {"env": "ALICE_PW"},
        "send_emails": True,
        "default": False,
        "sync": {"enabled": True, "period": "week", "folders": ["INBOX"]},
        "shared_with": [],
    }
    assert no_changes(run)
    before = store.snapshot()
    code, out, _ = run("apply", "--auto-approve")
    assert code == 0 and "Nothing to apply" in out
    assert store.snapshot() == before, "no change, nothing written"
    code, out, _ = run("show", "--format", "json")
    assert json.loads(out) == store.stored()


def test_update(run: Run, store: Store) -> None:
    assert run("apply", "--auto-approve")[0] == 0
    secure = "imap:\n  host: imap.example.com\n  security: starttls\n"
    tree(
        run.root,
        {"providers.d/corp.yaml": CORP.replace("imap:\n  host: imap.example.com\n", secure)},
    )
    assert run.plan_actions() == [("update", "provider", "corp")]
    out = run("plan")[1]
    assert "imap.port" in out and "993 -> 143" in out
    assert run("apply", "--auto-approve")[0] == 0
    live = store.stored()
    assert live is not None and live["serial"] == 2
    assert live["providers"]["corp"]["imap"] == {
        "host": "imap.example.com",
        "security": "starttls",
        "port": 143,
    }
    assert no_changes(run)


def test_delete_leaves_unmanaged_alone(run: Run, store: Store) -> None:
    assert run("apply", "--auto-approve")[0] == 0
    store.put_outside("mailbox", "zed@example.com", {"provider": "corp", "owner": "zed"})
    tree(run.root, {"mailboxes.d/team.yaml": TEAM.split("  - address: bob")[0]})
    assert run.plan_actions() == [("delete", "mailbox", "bob@example.com")]
    assert run("apply", "--auto-approve")[0] == 0
    live = store.stored()
    assert live is not None and live["serial"] == 2
    assert "bob@example.com" not in live["mailboxes"]
    assert live["mailboxes"]["zed@example.com"] == {"provider": "corp", "owner": "zed"}
    assert no_changes(run)


def test_adopt_an_entry_made_outside(run: Run, store: Store) -> None:
    assert run("apply", "--auto-approve")[0] == 0
    store.put_outside("mailbox", "carol@example.com", {"provider": "corp", "owner": "carol"})
    tree(
        run.root,
        {
            "mailboxes.d/carol.yaml": "mailboxes:\n  - address: carol@example.com\n"
            "    owner: carol\n    password: {env: ALICE_PW}\n"
        },
    )
    assert run.plan_actions() == [("adopt", "mailbox", "carol@example.com")]
    out = run("plan")[1]
    assert "Plan: 0 to add, 0 to change, 0 to destroy, 1 to adopt." in out
    assert run("apply", "--auto-approve")[0] == 0
    live = store.stored()
    assert live is not None
    assert live["mailboxes"]["carol@example.com"]["managed"] is True
    assert live["mailboxes"]["carol@example.com"]["login"] == "carol@example.com"
    assert no_changes(run)


def test_deletion_rule_refuses_and_writes_nothing(run: Run, store: Store) -> None:
    tree(run.root, {"providers.d/other.yaml": OTHER})
    assert run("apply", "--auto-approve")[0] == 0
    store.put_outside("mailbox", "ui@other.com", {"provider": "other", "owner": "ursula"})
    before = store.snapshot()
    (run.root / "providers.d/other.yaml").unlink()
    code, _, err = run("plan")
    assert code == 1
    assert "cannot delete provider `other`" in err
    assert "ui@other.com (created outside mailgitops)" in err
    code, _, err = run("apply", "--auto-approve")
    assert code == 1 and "ui@other.com" in err
    assert store.snapshot() == before, "a refused plan applies nothing"


def test_stale_plans_are_refused(run: Run, store: Store, tmp_path: Path) -> None:
    assert run("apply", "--auto-approve")[0] == 0
    planfile = tmp_path / "plan.json"
    tree(run.root, {"providers.d/other.yaml": OTHER})
    assert run("plan", "--out", str(planfile))[0] == 0
    # Someone else applies in between.
    tree(run.root, {"providers.d/corp.yaml": CORP + "display_name: Corp\n"})
    assert run("apply", "--auto-approve")[0] == 0
    before = store.snapshot()
    code, _, err = run("apply", str(planfile))
    assert code == 1 and "stale plan" in err and "serial 1 to 2" in err
    assert store.snapshot() == before
    # An edit outside apply (same serial) makes a plan stale too.
    assert run("plan", "--out", str(planfile))[0] == 0
    store.put_outside("mailbox", "ui@example.com", {"provider": "corp", "owner": "u"})
    before = store.snapshot()
    code, _, err = run("apply", str(planfile))
    assert code == 1 and "content changed" in err
    assert store.snapshot() == before


def test_a_plan_for_another_state_or_workspace_is_its_own_error(
    run: Run, store: Store, tmp_path: Path
) -> None:
    """Issue 12: the plan records its state (a DSN without its password); applied to another
    state or workspace it is refused as such, not as "stale", and nothing is written."""
    planfile = tmp_path / "plan.json"
    assert run("plan", "--out", str(planfile))[0] == 0
    location = json.loads(planfile.read_text())["state"]["location"]
    assert location["backend"] == store.kind and location["chosen_by"] == "--state"
    other = store.fresh()
    before = (store.snapshot(), other.snapshot())
    code = main(["apply", "-C", str(run.root), "--state", other.state_arg, str(planfile)])
    err = run.capsys.readouterr().err
    assert code == 1 and "was made against the" in err and "stale" not in err
    assert (store.snapshot(), other.snapshot()) == before
    if store.kind == "postgres":
        password = urlsplit(store.state_arg).password
        assert password is None or password not in planfile.read_text()
        code, _, err = run("apply", str(planfile), state=False)
        assert code == 1 and "name it again with --state" in err
        assert (store.snapshot(), other.snapshot()) == before
    code, _, err = run("apply", str(planfile))
    assert code == 0, err


def test_replay_of_the_first_plan_is_refused(run: Run, store: Store, tmp_path: Path) -> None:
    planfile = tmp_path / "first.json"
    assert run("plan", "--out", str(planfile))[0] == 0
    code, _, err = run("apply", str(planfile))
    assert code == 0, err
    before = store.snapshot()
    code, _, err = run("apply", str(planfile))
    assert code == 1 and "stale plan" in err and "empty state" in err
    assert store.snapshot() == before


def test_secrets_are_never_stored_or_shown(run: Run, store: Store) -> None:
    tree(
        run.root,
        {
            "providers.d/oauth.yaml": "name: oauth\ndomains: [oauth.com]\n"
            "imap: {host: imap.oauth.com}\nsmtp: {host: smtp.oauth.com}\n"
            "auth:\n  method: oauth2\n  client_id: cid\n  client_secret: {env: BOB_PW}\n"
        },
    )
    assert run("apply", "--auto-approve")[0] == 0
    tree(
        run.root,
        {"mailboxes.d/team.yaml": TEAM.replace("{env: BOB_PW}", "{env: BOB_PW, version: 2}")},
    )
    assert run("apply", "--auto-approve")[0] == 0
    run("show")
    run("plan", "--format", "json")
    stored = store.snapshot()
    for value in (ALICE_PW, BOB_PW):
        assert value not in stored
        assert not any(value in text for text in run.outputs)
    live = store.stored()
    assert live is not None
    assert live["mailboxes"]["bob@example.com"]["password"] == {"env": "BOB_PW", "version": "2"}
    assert live["providers"]["oauth"]["auth"]["client_secret"] == {"env": "BOB_PW"}


def test_a_stored_plaintext_secret_is_refused_and_not_shown(run: Run, store: Store) -> None:
    assert run("apply", "--auto-approve")[0] == 0
    store.put_outside(
        "mailbox", "leak@example.com", {"provider": "corp", "owner": "l", "password": "hunter2-x"}
    )
    before = store.snapshot()
    for argv in (("plan",), ("apply", "--auto-approve"), ("show",)):
        code, _, err = run(*argv)
        assert code == 1, argv
        assert "must be a secret reference" in err and "Traceback" not in err
    assert not any("hunter2-x" in text for text in run.outputs)
    assert store.snapshot() == before


def test_a_held_lock_names_its_holder(run: Run, store: Store) -> None:
    with store.backend().lock(0):
        code, _, err = run("apply", "--auto-approve", "--lock-timeout", "0.2")
    assert code == 1
    assert f"pid {os.getpid()}" in err and socket.gethostname() in err
    assert "after waiting 0.2s" in err and "--lock-timeout" in err
    assert store.stored() is None
    assert run("apply", "--auto-approve")[0] == 0


def test_a_state_of_another_format_version_is_refused_and_kept(run: Run, store: Store) -> None:
    assert run("apply", "--auto-approve")[0] == 0
    if isinstance(store, FileStore):
        data = store.stored()
        assert data is not None
        store.path.write_text(json.dumps({**data, "format_version": 2}))
    else:
        assert isinstance(store, PgStore)
        with psycopg.connect(store.server.dsn, autocommit=True) as conn:
            conn.execute(
                "UPDATE mailgitops_workspace SET format_version = 2 WHERE workspace = %s",
                (store.workspace,),
            )
    before = store.snapshot()
    for argv in (("plan",), ("apply", "--auto-approve"), ("show",)):
        code, _, err = run(*argv)
        assert code == 1, argv
        assert "it has format_version 2, and this mailgitops reads only format_version 1" in err
        assert "never overwrites a state it cannot read" in err and "Traceback" not in err
    assert store.snapshot() == before


def test_the_lock_is_not_reentrant_and_a_write_needs_it(store: Store) -> None:
    backend = store.backend()
    with pytest.raises(RuntimeError, match="without holding its lock"):
        backend.write(State("lin", 1), State())
    with backend.lock(0):
        with pytest.raises(RuntimeError, match="already locked by this process"), backend.lock(0):
            pass
        backend.write(State("lin", 1), backend.read())  # the lock is still held
    with pytest.raises(RuntimeError, match="without holding its lock"):
        backend.write(State("lin", 2), State("lin", 1))
    assert backend.read() == State("lin", 1)


# --- real processes ------------------------------------------------------------------------


def _apply_process(
    root: Path, store: Store, *extra: str, quiet: bool = False
) -> subprocess.Popen[str]:
    """`mailgitops apply` in a child process. `quiet`: its output is not kept (a child nobody
    reads from would block on a full pipe while printing a large plan)."""
    env = python_env()
    env.update(ALICE_PW=ALICE_PW, BOB_PW=BOB_PW)
    sink = subprocess.DEVNULL if quiet else subprocess.PIPE
    return subprocess.Popen(
        [PYTHON, "-m", "mailgitops", "apply", "-C", str(root), "--state", store.state_arg,
         "--auto-approve", *extra],
        env=env,
        stdout=sink,
        stderr=sink,
        text=True,
    )  # fmt: skip


def test_concurrent_appliers_lose_nothing(run: Run, store: Store, tmp_path: Path) -> None:
    assert run("apply", "--auto-approve")[0] == 0
    initial = store.stored()
    assert initial is not None
    roots = []
    for k in range(4):
        root = tmp_path / f"writer-{k}"
        shutil.copytree(run.root, root)
        tree(root, {"providers.d/corp.yaml": CORP + f"display_name: writer-{k}\n"})
        roots.append(root)
    children = [_apply_process(root, store, "--lock-timeout", "60") for root in roots]
    serials: dict[int, int] = {}
    for k, child in enumerate(children):
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        found = re.search(r"State serial (\d+)", out)
        assert found, out
        serials[int(found[1])] = k
        assert ALICE_PW not in out + err and BOB_PW not in out + err
    final = store.stored()
    assert final is not None
    assert sorted(serials) == [initial["serial"] + k for k in range(1, 5)], serials
    assert final["serial"] == initial["serial"] + 4
    assert final["lineage"] == initial["lineage"]
    # The last writer's change is what is live: each planned against its predecessor's state.
    last = serials[final["serial"]]
    assert final["providers"]["corp"]["display_name"] == f"writer-{last}"


def _many_mailboxes(root: Path) -> Path:
    lines = ["mailboxes:"]
    for i in range(MANY):
        lines += [
            f"  - address: user{i:04d}@example.com",
            f"    owner: u{i:04d}",
            "    password: {env: ALICE_PW}",
        ]
    tree(root, {"providers.d/corp.yaml": CORP, "mailboxes.d/many.yaml": "\n".join(lines) + "\n"})
    return root


def test_a_killed_applier_leaves_a_whole_state_and_no_lock(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str], secrets_env: None
) -> None:
    root = _many_mailboxes(tmp_path / "many")
    for n, (phase, delay) in enumerate(KILL_POINTS):
        target = store.fresh()
        child = _apply_process(root, target, "--lock-timeout", "0", quiet=True)
        try:
            deadline = time.monotonic() + 60
            while not target.reached(child.pid, phase) and child.poll() is None:
                assert time.monotonic() < deadline, f"the applier never reached {phase}"
                time.sleep(0.001)
            time.sleep(delay)
        finally:
            child.send_signal(signal.SIGKILL)
            child.communicate(timeout=60)
        if isinstance(target, PgStore):
            target.session_gone(child.pid)
        live = target.stored()
        # Either the old state (none) or the new one, complete: never a part of it.
        if live is not None:
            assert live["serial"] == 1
            assert len(live["mailboxes"]) == MANY and "corp" in live["providers"]
        assert target.backend().read().serial == (0 if live is None else 1)
        # The next apply is not blocked by the dead one's lock, and converges.
        runner = Run(root, target, capsys)
        code, _, err = runner("apply", "--auto-approve", "--lock-timeout", "0")
        assert code == 0, err
        final = target.stored()
        assert final is not None and final["serial"] == 1
        assert len(final["mailboxes"]) == MANY
        if n == len(KILL_POINTS) - 1:
            assert no_changes(runner)


# --- PostgreSQL only -----------------------------------------------------------------------

pg_only = pytest.mark.postgres


@pg_only
@pytest.mark.parametrize(
    ("location", "workspace"),
    [
        ("postgres://ci@db/mail", "default"),
        ("postgresql://ci@db/mail?workspace=team-a", "team-a"),
        ("postgresql://ci@db/mail?sslmode=require&workspace=x.y_z", "x.y_z"),
    ],
)
def test_a_postgres_url_selects_the_backend(location: str, workspace: str) -> None:
    backend = open_backend(location, Path())
    assert isinstance(backend, PostgresBackend)
    assert backend.workspace == workspace
    assert (
        "workspace=" not in backend.describe() and f"(workspace {workspace})" in backend.describe()
    )


@pg_only
def test_postgres_selection_from_env_and_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAILGITOPS_STATE", "postgresql://ci@db/mail?workspace=env")
    backend = open_backend(None, tmp_path)
    assert isinstance(backend, PostgresBackend) and backend.workspace == "env"
    monkeypatch.delenv("MAILGITOPS_STATE")
    (tmp_path / "dsn.txt").write_text("host=db dbname=mail user=ci\n")
    monkeypatch.setenv("PG_PW", "settings-pw-123")
    setting = {"backend": "postgres", "dsn": {"file": "dsn.txt"}, "password": {"env": "PG_PW"}}
    backend = open_backend(None, tmp_path, StateSetting.of({**setting, "workspace": "team-b"}))
    assert isinstance(backend, PostgresBackend) and backend.workspace == "team-b"
    assert "settings-pw-123" not in backend.describe() + repr(backend)
    # A DSN behind a reference is private as a whole: only the reference is named.
    assert "file:dsn.txt" in backend.describe()
    assert not {"db", "mail", "ci"} & set(backend.describe().replace("(", " ").split())
    with pytest.raises(StateError, match=r"state\.dsn must name the database"):
        open_backend(None, tmp_path, StateSetting.of({"backend": "postgres"}))
    monkeypatch.delenv("PG_PW")
    with pytest.raises(StateError, match=r"state\.password: cannot read env:PG_PW"):
        open_backend(None, tmp_path, StateSetting.of(setting))
    with pytest.raises(StateError, match="two workspaces"):
        open_backend(
            None, tmp_path, StateSetting.of({"backend": "postgres",
                             "dsn": "postgresql://h/db?workspace=a", "workspace": "b"})
        )  # fmt: skip
    with pytest.raises(StateError, match="invalid PostgreSQL state workspace"):
        open_backend("postgresql://h/db?workspace=a/b", tmp_path)


@pg_only
def test_malformed_dsn_and_unreachable_server_never_show_the_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(StateError) as caught:
        PostgresBackend("host=x password=pw-in-junk junk")
    assert "pw-in-junk" not in str(caught.value)
    root = standard(tmp_path)
    url = "postgresql://nobody:pw-unreachable@/nodb?host=/nonexistent-dir&connect_timeout=2"
    code = main(["plan", "-C", str(root), "--state", url])
    out, err = capsys.readouterr()
    assert code == 1
    assert "cannot connect to the PostgreSQL state" in err and "user=nobody" in err
    assert "pw-unreachable" not in out + err and "Traceback" not in err


def _password_role(pg: PgServer) -> tuple[str, str]:
    """A role that logs in with a password, owning its own database; returns (url, password)."""
    password = "pw-" + fresh_workspace()
    database = "mailgitops_pw_db"
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (PG_PASSWORD_ROLE,))
        verb = "ALTER" if exists.fetchone() else "CREATE"
        conn.execute(
            sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(PG_PASSWORD_ROLE), sql.Literal(password)
            )
        )
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone():
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(database), sql.Identifier(PG_PASSWORD_ROLE)
                )
            )
    return pg.url_for(user=PG_PASSWORD_ROLE, dbname=database), password


@pg_only
def test_password_from_a_reference_is_used_and_never_shown(
    pg: PgServer, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, secrets_env: None,
) -> None:  # fmt: skip
    url, password = _password_role(pg)
    monkeypatch.setenv("STATE_DB_PW", password)
    root = standard(tmp_path / "config")
    settings = f"state:\n  backend: postgres\n  dsn: {json.dumps(url)}\n"
    settings += "  password: {env: STATE_DB_PW}\n  workspace: pw-test\n"
    tree(root, {"mailgitops.yaml": settings})
    outputs: list[str] = []

    def cli(*argv: str) -> int:
        code = main([*argv, "-C", str(root)])
        outputs.extend(capsys.readouterr())
        return code

    assert cli("apply", "--auto-approve") == 0, outputs
    assert cli("plan") == 0 and outputs[-2].rstrip().endswith("No changes.")
    assert cli("show") == 0
    assert cli("state", "pull", "--to", str(tmp_path / "copy.json")) == 0
    if pg.password_enforced:
        monkeypatch.setenv("STATE_DB_PW", "wrong-pw-value")
        assert cli("plan") == 1
        assert "password authentication failed" in outputs[-1]
        # An inline password in a --state URL is used, and hidden too.
        inline = url.replace(f"{PG_PASSWORD_ROLE}@", f"{PG_PASSWORD_ROLE}:{password}@")
        inline += "&workspace=pw-test"
        assert cli("show", "--state", inline) == 0
        assert "alice@example.com" in outputs[-2]
    text = "\n".join(outputs)
    assert password not in text and "wrong-pw-value" not in text
    assert password not in (tmp_path / "copy.json").read_text()
    with psycopg.connect(pg.url_for(dbname="mailgitops_pw_db")) as conn:
        rows = conn.execute(
            "SELECT row_to_json(w)::text FROM mailgitops_workspace AS w UNION ALL "
            "SELECT entry::text FROM mailgitops_provider UNION ALL "
            "SELECT entry::text FROM mailgitops_mailbox"
        ).fetchall()
    assert rows and not any(password in row[0] for row in rows)


@pg_only
def test_holder_comes_from_pg_stat_activity(pg: PgServer) -> None:
    backend = PostgresBackend.from_location(pg.workspace_url(fresh_workspace()))
    waiting = PostgresBackend.from_location(pg.url, workspace=backend.workspace)
    with backend.lock(0), pytest.raises(StateError) as caught:
        waiting.lock(0).__enter__()
    message = str(caught.value)
    assert f"pid {os.getpid()}" in message and f"on {socket.gethostname()}" in message
    assert "over a local socket" in message or "from " in message
    assert re.search(r"since \d{4}-\d\d-\d\dT", message)
    assert application_name() == f"mailgitops pid={os.getpid()} host={socket.gethostname()}"


@pg_only
@pytest.mark.parametrize(
    ("app", "shown"),
    [("psql-by-hand", "application_name 'psql-by-hand' (not mailgitops?)"),
     ("", "no application_name (not mailgitops?)")],
)  # fmt: skip
def test_a_holder_that_is_not_mailgitops_is_named_as_such(
    pg: PgServer, app: str, shown: str
) -> None:
    backend = PostgresBackend.from_location(pg.workspace_url(fresh_workspace()))
    with psycopg.connect(pg.dsn, autocommit=True, application_name=app) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (workspace_lock_key(backend.workspace),))
        with pytest.raises(LockError) as caught, backend.lock(0):
            pass
    message = str(caught.value)
    # No pid or host is claimed for it: only the session, and when it started.
    assert re.search(r"is locked by since \S+, PostgreSQL session \d+ ", message), message
    assert shown in message
    with backend.lock(0):  # released with the other session
        pass


@pg_only
def test_tables_of_a_newer_mailgitops_are_refused(
    pg: PgServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = "mailgitops_new_" + fresh_workspace().replace("-", "_")
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {database}")
    url = pg.url_for(dbname=database)
    backend = PostgresBackend(url)
    with backend.lock(0):
        backend.write(State("lin", 1), backend.read())
    with psycopg.connect(pg.url_for(dbname=database), autocommit=True) as conn:
        conn.execute("INSERT INTO mailgitops_schema_version (version) VALUES (2)")
    root = standard(tmp_path)
    for argv in (["plan"], ["apply", "--auto-approve"]):
        code = main([*argv, "-C", str(root), "--state", url])
        _out, err = capsys.readouterr()
        assert code == 1, argv
        assert "have schema version 2, newer than this mailgitops knows (1)" in err
        assert "use a newer mailgitops" in err and "Traceback" not in err


@pg_only
def test_tables_are_created_once_when_many_start_at_once(pg: PgServer) -> None:
    database = "mailgitops_mig_" + fresh_workspace().replace("-", "_")
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {database}")
    dsn = pg.url_for(dbname=database)
    assert PostgresBackend(dsn).read() == State(), "a read on an empty database creates nothing"
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT to_regclass('mailgitops_workspace')").fetchone() == (None,)
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def first_use(k: int) -> None:
        try:
            barrier.wait()
            backend = PostgresBackend(dsn, f"w{k}")
            with backend.lock(5):
                backend.write(State(f"lineage-{k}", 1), backend.read())
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=first_use, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT version FROM mailgitops_schema_version").fetchall() == [(1,)]
        assert conn.execute("SELECT count(*) FROM mailgitops_workspace").fetchone() == (6,)


def _mailbox(i: int, sender: str = "S") -> dict[str, Any]:
    return {"managed": True, "provider": "corp", "owner": f"u{i}", "sender_name": sender}


@pg_only
def test_write_touches_only_what_changed(pg: PgServer) -> None:
    backend = PostgresBackend.from_location(pg.workspace_url(fresh_workspace()))
    corp = {"managed": True, "name": "corp"}
    first = State("lin", 1, {"corp": corp}, {f"m{i}@x.org": _mailbox(i) for i in range(1000)})
    with backend.lock(0):
        backend.write(first, backend.read())
    assert backend.rows_written == 1002

    def row_versions() -> dict[str, str]:
        with psycopg.connect(pg.dsn) as conn:
            rows = conn.execute(
                "SELECT address, xmin::text FROM mailgitops_mailbox WHERE workspace = %s",
                (backend.workspace,),
            ).fetchall()
        return dict(rows)

    before = row_versions()
    mailboxes = dict(first.mailboxes)
    for i in range(5):
        mailboxes[f"m{i}@x.org"] = _mailbox(i, "changed")  # 5 updates
    for i in range(5, 8):
        del mailboxes[f"m{i}@x.org"]  # 3 deletes
    mailboxes["new@x.org"] = _mailbox(9999)  # 1 create
    second = State("lin", 2, {"corp": corp}, mailboxes)
    with backend.lock(0):
        backend.write(second, backend.read())
    assert backend.rows_written == 1 + 5 + 3 + 1
    after = row_versions()
    rewritten = {a for a in after if before.get(a) != after[a]}
    assert rewritten == {f"m{i}@x.org" for i in range(5)} | {"new@x.org"}
    assert backend.read() == second


@pg_only
def test_write_refuses_a_change_made_outside_after_the_read(pg: PgServer) -> None:
    store = PgStore(pg)
    backend = store.backend()
    with backend.lock(0):
        backend.write(State("lin", 1, {}, {"a@x.org": _mailbox(1)}), backend.read())
    with backend.lock(0):
        current = backend.read()
        store.put_outside("mailbox", "ui@x.org", {"provider": "corp", "owner": "ui"})
        before = store.snapshot()
        with pytest.raises(StateError, match="changed while this command was running"):
            backend.write(State("lin", 2, {}, {}), current)
        assert store.snapshot() == before
        # A state not read by this backend is compared by content.
        stale = State("lin", 1, {}, {"a@x.org": _mailbox(1)})
        with pytest.raises(StateError, match="changed while"):
            backend.write(State("lin", 2, {}, {}), stale)


# --- state push / pull ---------------------------------------------------------------------


@pytest.fixture
def copy_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    def cli(*argv: str) -> tuple[int, str, str]:
        code = main(["state", *argv])
        out, err = capsys.readouterr()
        return code, out, err

    return cli


@pg_only
def test_push_and_pull_keep_lineage_and_serial(
    pg: PgServer, tmp_path: Path, copy_cli: Callable[..., tuple[int, str, str]],
    capsys: pytest.CaptureFixture[str], secrets_env: None,
) -> None:  # fmt: skip
    source = FileStore(tmp_path / "live.json")
    run = Run(standard(tmp_path / "config"), source, capsys)
    assert run("apply", "--auto-approve")[0] == 0
    tree(run.root, {"providers.d/corp.yaml": CORP + "display_name: Corp\n"})
    assert run("apply", "--auto-approve")[0] == 0
    original = source.stored()
    assert original is not None and original["serial"] == 2
    target = PgStore(pg)
    code, out, err = copy_cli("push", "--from", source.state_arg, "--to", target.state_arg)
    assert code == 0, err
    assert "serial 2" in out and "1 providers, 2 mailboxes" in out
    assert target.stored() == original
    # The pushed state is the live state now: nothing to plan against it.
    assert no_changes(Run(run.root, target, capsys))
    code, out, _ = copy_cli("push", "--from", source.state_arg, "--to", target.state_arg)
    assert code == 0 and "already holds this state" in out
    pulled = tmp_path / "pulled.json"
    code, out, err = copy_cli("pull", "--from", target.state_arg, "--to", str(pulled))
    assert code == 0, err
    assert json.loads(pulled.read_text()) == original
    assert os.stat(pulled).st_mode & 0o777 == 0o600


@pg_only
def test_push_refuses_to_lose_history_without_force(
    pg: PgServer, tmp_path: Path, copy_cli: Callable[..., tuple[int, str, str]]
) -> None:
    target = PgStore(pg)
    newer = target.backend()
    with newer.lock(0):
        newer.write(State("lineage-a", 5, {}, {"a@x.org": _mailbox(1)}), newer.read())
    before = target.snapshot()
    cases = {
        "other-lineage.json": (State("lineage-b", 9), "another lineage"),
        "older.json": (State("lineage-a", 4), "destination is newer"),
        "diverged.json": (State("lineage-a", 5), "diverged"),
    }
    for name, (state, reason) in cases.items():
        (tmp_path / name).write_text(json.dumps(state.to_json()))
        code, _, err = copy_cli("push", "--from", str(tmp_path / name), "--to", target.state_arg)
        assert code == 1 and reason in err and "--force" in err, err
        assert target.snapshot() == before
    code, _, err = copy_cli(
        "push", "--from", str(tmp_path / "other-lineage.json"), "--to", target.state_arg, "--force"
    )
    assert code == 0, err
    stored = target.stored()
    assert stored is not None and stored["lineage"] == "lineage-b" and stored["mailboxes"] == {}
    code, _, err = copy_cli(
        "push", "--from", str(tmp_path / "missing.json"), "--to", target.state_arg
    )
    assert code == 1 and "no state" in err


@pg_only
def test_push_to_the_configured_backend_and_both_sides_locked(
    pg: PgServer, tmp_path: Path, copy_cli: Callable[..., tuple[int, str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    target = PgStore(pg)
    source = tmp_path / "live.json"
    source.write_text(json.dumps(State("lin", 3, {}, {"a@x.org": _mailbox(1)}).to_json()))
    settings = f"state:\n  backend: postgres\n  dsn: {json.dumps(pg.url)}\n"
    root = tree(
        tmp_path / "config", {"mailgitops.yaml": settings + f"  workspace: {target.workspace}\n"}
    )
    with target.backend().lock(0):
        code, _, err = copy_cli("push", "--from", str(source), "-C", str(root))
    assert code == 1 and "is locked by" in err
    with FileStore(source).backend().lock(0):
        code, _, err = copy_cli("push", "--from", str(source), "-C", str(root))
    assert code == 1 and "is locked by" in err
    assert target.stored() is None
    code, _, err = copy_cli("push", "--from", str(source), "-C", str(root))
    assert code == 0, err
    assert target.stored() == json.loads(source.read_text())
    code, _, err = copy_cli("pull", "--from", str(source), "--to", str(source))
    assert code == 1 and "same state" in err


def test_state_command_usage_errors(copy_cli: Callable[..., tuple[int, str, str]]) -> None:
    code, _, err = copy_cli("push")
    assert code == 1 and "--from" in err
    code, _, err = copy_cli("pull", "--from", "x.json")
    assert code == 1 and "--to" in err


# --- state list and state forget (SPEC §8) --------------------------------------------------


def _state_cmd(run: Run, verb: str, *argv: str) -> tuple[int, str, str]:
    code = main(["state", verb, "-C", str(run.root), "--state", run.store.state_arg, *argv])
    out, err = run.capsys.readouterr()
    run.outputs += [out, err]
    return code, out, err


def test_state_list(run: Run, store: Store) -> None:
    code, out, _ = _state_cmd(run, "list")
    assert code == 0 and "No live state yet" in out
    assert run("apply", "--auto-approve")[0] == 0
    store.put_outside("mailbox", "zed@example.com", {"provider": "corp", "owner": "zed"})
    code, out, _ = _state_cmd(run, "list", "--format", "json")
    assert code == 0
    doc = json.loads(out)
    assert doc["serial"] == 1 and doc["entries"] == [
        {"kind": "provider", "id": "corp", "managed": True},
        {"kind": "mailbox", "id": "alice@example.com", "managed": True, "provider": "corp"},
        {"kind": "mailbox", "id": "bob@example.com", "managed": True, "provider": "corp"},
        {"kind": "mailbox", "id": "zed@example.com", "managed": False, "provider": "corp"},
    ]
    code, out, _ = _state_cmd(run, "list")
    assert 'unmanaged  mailbox   "zed@example.com"  (provider "corp")' in out
    assert "4 entries (3 managed)" in out


def test_state_forget_stops_managing_without_deleting(run: Run, store: Store) -> None:
    assert run("apply", "--auto-approve")[0] == 0
    # The config drops bob; forgetting him first means the plan leaves him alone in live.
    tree(run.root, {"mailboxes.d/team.yaml": TEAM.split("  - address: bob")[0]})
    code, out, err = _state_cmd(run, "forget", "BOB@example.com")  # addresses fold case
    assert code == 0, err
    assert 'forgot mailbox "bob@example.com": still live, no longer managed' in out
    live = store.stored()
    assert live is not None and live["serial"] == 2
    bob = live["mailboxes"]["bob@example.com"]
    assert bob["managed"] is False and bob["owner"] == "bob" and bob["password"]
    assert run.plan_actions() == []
    code, out, _ = run("plan")
    assert 'mailbox "bob@example.com" (provider corp)' in out  # listed as unmanaged
    # Forgetting again writes nothing.
    before = store.snapshot()
    code, out, _ = _state_cmd(run, "forget", "bob@example.com")
    assert code == 0 and "not managed already" in out and "nothing was written" in out
    assert store.snapshot() == before


def test_state_forget_unknown_id_writes_nothing(run: Run, store: Store) -> None:
    assert run("apply", "--auto-approve")[0] == 0
    before = store.snapshot()
    code, _, err = _state_cmd(run, "forget", "corp", "nobody@example.com", "corp\n")
    assert code == 1
    assert '"nobody@example.com"' in err and '"corp\\n"' in err  # matched whole, shown escaped
    assert store.snapshot() == before


def test_state_forget_waits_for_the_lock(run: Run, store: Store) -> None:
    assert run("apply", "--auto-approve")[0] == 0
    before = store.snapshot()
    with store.backend().lock(0):
        code, _, err = _state_cmd(run, "forget", "corp")
    assert code == 1 and "is locked by" in err
    assert store.snapshot() == before
