from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "data" / "ispdb"


@pytest.fixture(autouse=True)
def _clean_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Each test starts without the variables that change where state and cache live, and
    with a cache of its own (never the user's ~/.cache)."""
    for name in list(os.environ):
        if name.startswith("MAILGITOPS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MAILGITOPS_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    # The cache's key lives outside the cache (mailgitops/cache.py): never the user's.
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state-home")))
    monkeypatch.setenv("NO_COLOR", "1")
    yield


def write_tree(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


def python_env() -> dict[str, str]:
    """Environment for child processes that run mailgitops from this checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILGITOPS_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["NO_COLOR"] = "1"
    return env


PYTHON = sys.executable


# --- PostgreSQL for the state backend tests --------------------------------------------------
#
# MAILGITOPS_TEST_PG_DSN (a role that may create roles and databases) is used when set; else a
# throwaway cluster is started for the session: initdb into a temporary directory, listening
# only on a Unix socket in that directory, stopped and removed at the end. PostgreSQL refuses
# to run as root, so root runs it as the unprivileged system user `mailgitops-test`. When no
# server can be had, every test that needs one FAILS with the reason: a CI machine without
# PostgreSQL must not pass by skipping the backend it ships.

# Read at import time: the autouse fixture above removes MAILGITOPS_* from each test's
# environment, and the session fixture may first be set up inside a test.
_EXTERNAL_PG_DSN = os.environ.get("MAILGITOPS_TEST_PG_DSN")
PG_TEST_USER = "mailgitops-test"
PG_PASSWORD_ROLE = "mailgitops_pw"  # a role that must authenticate with a password


@dataclass(frozen=True)
class PgServer:
    """A PostgreSQL server the tests may use freely."""

    dsn: str  # a libpq key=value string or URL for a role that may create roles and databases
    url: str  # the same as a postgresql:// URL, for `--state` (may carry ?workspace=)
    password_enforced: bool  # False on an external server whose pg_hba.conf we do not know

    def workspace_url(self, workspace: str) -> str:
        sep = "&" if "?" in self.url else "?"
        return f"{self.url}{sep}workspace={workspace}"

    def url_for(self, user: str | None = None, dbname: str | None = None) -> str:
        """A postgresql:// URL for this server as another role and/or database, without a
        password; every connection parameter but those three goes into the query."""
        from urllib.parse import quote, urlencode

        from psycopg.conninfo import conninfo_to_dict

        params = {k: str(v) for k, v in conninfo_to_dict(self.dsn).items() if v is not None}
        params.pop("password", None)
        role = user or params.pop("user", "")
        params.pop("user", None)
        database = dbname or params.pop("dbname", "postgres")
        params.pop("dbname", None)
        userinfo = f"{quote(role)}@" if role else ""
        return f"postgresql://{userinfo}/{quote(database)}?{urlencode(params)}"


def find_pg_bin(name: str) -> str | None:
    """Debian keeps the server binaries out of PATH, in /usr/lib/postgresql/<major>/bin."""
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
    )
    return candidates[-1] if candidates else shutil.which(name)


def _run(cmd: list[str], cwd: str, as_user: str | None) -> None:
    if as_user is not None:
        cmd = ["runuser", "-u", as_user, "--", *cmd]
    done = subprocess.run(cmd, check=False, cwd=cwd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} exited {done.returncode}: {(done.stderr or done.stdout).strip()}"
        )


def start_cluster(durable: bool = False) -> tuple[PgServer, Callable[[], None]]:
    """Starts a throwaway cluster; returns it and the function that stops and removes it.
    Raises RuntimeError with the reason when it cannot. Tests run it without fsync (nothing
    in it must survive a crash); `durable` keeps PostgreSQL's defaults, for benchmarks that
    compare it with the file backend, which fsyncs."""
    initdb, pg_ctl = find_pg_bin("initdb"), find_pg_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise RuntimeError(
            "initdb/pg_ctl not found (not in PATH, nor in /usr/lib/postgresql/*/bin): install "
            "the server (Debian: apt-get install postgresql) or set MAILGITOPS_TEST_PG_DSN"
        )
    # Directly under /tmp: a Unix socket path must stay under ~107 bytes.
    base = tempfile.mkdtemp(prefix="mailgitops-pg-", dir="/tmp")
    as_user: str | None = None
    if os.geteuid() == 0:
        as_user = PG_TEST_USER
        try:
            pwd.getpwnam(as_user)
        except KeyError:
            _run(
                [
                    "useradd",
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    as_user,
                ],
                base,
                None,
            )
        shutil.chown(base, user=as_user, group=None)
    data, log = os.path.join(base, "data"), os.path.join(base, "server.log")
    superuser = "postgres"

    def stop() -> None:
        if os.path.exists(os.path.join(data, "postmaster.pid")):
            with suppress(Exception):
                _run([pg_ctl, "stop", "-D", data, "-m", "immediate", "-w"], base, as_user)
        shutil.rmtree(base, ignore_errors=True)

    try:
        _run(
            [
                initdb,
                "-D",
                data,
                "-U",
                superuser,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            base,
            as_user,
        )
        with open(os.path.join(data, "pg_hba.conf"), "w") as hba:
            # One role must give its password, so that tests see a real password in use.
            hba.write(f"local all {PG_PASSWORD_ROLE} scram-sha-256\nlocal all all trust\n")
        if as_user is not None:
            shutil.chown(os.path.join(data, "pg_hba.conf"), user=as_user, group=None)
        options = f"-c listen_addresses='' -c unix_socket_directories='{base}'"
        if not durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        _run(
            [pg_ctl, "start", "-D", data, "-l", log, "-w", "-t", "60", "-o", options], base, as_user
        )
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        detail = ""
        with suppress(OSError), open(log) as fh:
            detail = "\n" + fh.read()[-2000:]
        stop()
        raise RuntimeError(f"{exc}{detail}") from None
    dsn = f"host={base} port=5432 user={superuser} dbname=postgres"
    url = f"postgresql://{superuser}@/postgres?host={base}&port=5432"
    return PgServer(dsn, url, password_enforced=True), stop


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PgServer | str]:
    """The server, or the reason there is none (the `pg` fixture turns it into a failure)."""
    if _EXTERNAL_PG_DSN:
        dsn = _EXTERNAL_PG_DSN
        url = dsn if dsn.startswith(("postgres://", "postgresql://")) else ""
        if not url:
            yield "MAILGITOPS_TEST_PG_DSN must be a postgresql:// URL"
            return
        yield PgServer(dsn, url, password_enforced=False)
        return
    try:
        server, stop = start_cluster()
    except RuntimeError as exc:
        yield f"cannot start a throwaway PostgreSQL cluster: {exc}"
        return
    try:
        yield server
    finally:
        stop()


@pytest.fixture
def pg(postgres_server: PgServer | str) -> PgServer:
    if isinstance(postgres_server, str):
        pytest.fail(f"PostgreSQL is needed and not available: {postgres_server}", pytrace=False)
    return postgres_server


def fresh_workspace() -> str:
    return f"t-{uuid.uuid4().hex[:16]}"
