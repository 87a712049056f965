"""Benchmark the state backends: `plan` and `apply` of N mailboxes (default 10,000) with 1% of
them changed, on the file backend and on PostgreSQL, in the same run, round-robin.

    python bench/pg.py [--mailboxes 10000] [--runs 5] [--dsn postgresql://…] [--json out.json]

Setup (untimed): bench/generate.py writes the config repository to bench/_work/pg-n<N>-s<S>;
one apply makes a state that matches it exactly (S0), and S1 is S0 with the sender_name of
every 100th managed mailbox changed, so that a plan against S1 has exactly N/100 updates.

Each round, for each backend (the order rotates per round): the state is reset to S1 (file:
S1 written afresh; PostgreSQL: a `state push` of S1, which rewrites just the rows that
differ), then `python -m mailgitops plan` and `python -m mailgitops apply --auto-approve` run
as child processes and are timed end to end (interpreter start included, as a CI job sees
them). Both use one warm parse cache (MAILGITOPS_CACHE_DIR under bench/_work), so that the
numbers show the state backend rather than YAML parsing.

What an apply wrote:
- PostgreSQL: rows inserted + updated + deleted in the mailgitops tables during the apply,
  from pg_stat_user_tables (the apply's own counters, flushed when its session ends), split
  into entry rows and workspace-row updates (the serial, and the revision bumps of the
  statement triggers);
- file: the bytes of the two files rewritten (the state and its backup).

PostgreSQL is `--dsn`, else $MAILGITOPS_BENCH_PG_DSN, else a throwaway cluster started like
the tests' one (tests/conftest.py) but with PostgreSQL's durable defaults (fsync on), since
the file backend fsyncs too. Everything goes to bench/_work/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.dont_write_bytecode = True  # importing generate must not leave bench/__pycache__ behind

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORK = BENCH / "_work"
sys.path[:0] = [str(BENCH), str(REPO), str(REPO / "tests")]

import generate  # noqa: E402
import psycopg  # noqa: E402

from mailgitops.state.base import State  # noqa: E402
from mailgitops.state.postgres import PostgresBackend  # noqa: E402

TABLES = ("mailgitops_workspace", "mailgitops_provider", "mailgitops_mailbox")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def child_env(secrets: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILGITOPS_")}
    env.update(secrets)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["NO_COLOR"] = "1"
    env["MAILGITOPS_CACHE_DIR"] = str(WORK / "pg-bench-cache")
    return env


def mailgitops(argv: list[str], env: dict[str, str], name: str) -> float:
    """Runs `python -m mailgitops ARGV`; returns its wall time. Output goes to bench/_work/logs."""
    logs = WORK / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with (
        (logs / f"pg-{name}.stdout").open("wb") as out,
        (logs / f"pg-{name}.stderr").open("wb") as err,
    ):
        start = time.perf_counter()
        code = subprocess.call(
            [sys.executable, "-m", "mailgitops", *argv], env=env, cwd=REPO, stdout=out, stderr=err
        )
        elapsed = time.perf_counter() - start
    if code != 0:
        raise SystemExit(
            f"error: mailgitops {' '.join(argv[:1])} exited {code}; see {logs}/pg-{name}.stderr"
        )
    return elapsed


def secret_env(state: dict[str, Any]) -> dict[str, str]:
    """A value for every {env: NAME} the generated config refers to (apply reads them)."""
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if set(node) <= {"env", "version"} and isinstance(node.get("env"), str):
                names.add(node["env"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(state)
    return {name: f"bench-{name.lower()}" for name in names}


def one_percent_changed(converged: dict[str, Any]) -> tuple[dict[str, Any], int]:
    state = json.loads(json.dumps(converged))
    managed = [a for a, e in sorted(state["mailboxes"].items()) if e.get("managed") is True]
    changed = managed[::100]
    for address in changed:
        entry = state["mailboxes"][address]
        entry["sender_name"] = f"{entry.get('sender_name', 'Someone')} (before)"
    return state, len(changed)


def to_state(document: dict[str, Any]) -> State:
    return State(
        document["lineage"], document["serial"], document["providers"], document["mailboxes"]
    )


def pg_counters(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        rows = conn.execute(
            "SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables "
            "WHERE relname = ANY(%s)",
            (list(TABLES),),
        ).fetchall()
    return {name: int(count) for name, count in rows}


def pg_rows_written(dsn: str, before: dict[str, int]) -> dict[str, int]:
    # A session's counters reach the shared statistics when it ends; wait until they settle.
    previous: dict[str, int] = {}
    for _ in range(50):
        now = pg_counters(dsn)
        if now == previous and now != before:
            break
        previous = now
        time.sleep(0.1)
    return {t: previous.get(t, 0) - before.get(t, 0) for t in TABLES}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mailboxes", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dsn", default=os.environ.get("MAILGITOPS_BENCH_PG_DSN"))
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    stop: Callable[[], None] = lambda: None  # noqa: E731
    dsn = args.dsn
    if not dsn:
        from conftest import start_cluster

        log("starting a throwaway PostgreSQL cluster (durable defaults) ...")
        server, stop = start_cluster(durable=True)
        dsn = server.url
    try:
        return run(args, dsn)
    finally:
        stop()


def run(args: argparse.Namespace, dsn: str) -> int:
    n = args.mailboxes
    root = WORK / f"pg-n{n}-s{args.seed}"
    log(f"generating {n} mailboxes into {root} ...")
    generate.write_config(root, n, args.seed)
    generated = json.loads((root / "live.json").read_text())
    env = child_env(secret_env(generated))
    state_dir = WORK / f"pg-n{n}-state"
    shutil.rmtree(state_dir, ignore_errors=True)
    state_dir.mkdir(parents=True)
    file_state = state_dir / "live.json"

    log("making the converged state (one untimed apply, which also warms the cache) ...")
    shutil.copy(root / "live.json", file_state)
    mailgitops(
        ["apply", "-C", str(root), "--state", str(file_state), "--auto-approve"], env, "setup"
    )
    converged = json.loads(file_state.read_text())
    changed_doc, changed = one_percent_changed(converged)
    changed_state = to_state(changed_doc)
    managed = sum(1 for e in converged["mailboxes"].values() if e.get("managed") is True)
    log(f"{managed} managed mailboxes; {changed} changed ({changed / managed:.1%})")

    workspace = f"bench-{uuid.uuid4().hex[:8]}"
    url = dsn + ("&" if "?" in dsn else "?") + f"workspace={workspace}"
    pg_backend = PostgresBackend.from_location(url)

    def reset_file() -> None:
        for leftover in state_dir.glob("live.json*"):
            leftover.unlink()
        file_state.write_text(json.dumps(changed_doc, indent=2, sort_keys=True) + "\n")

    def reset_pg() -> None:
        with pg_backend.lock(0):
            pg_backend.write(changed_state, pg_backend.read())

    locations = {"file": str(file_state), "postgres": url}
    resets = {"file": reset_file, "postgres": reset_pg}
    times: dict[str, dict[str, list[float]]] = {b: {"plan": [], "apply": []} for b in locations}
    written: dict[str, list[dict[str, int]]] = {b: [] for b in locations}
    for r in range(args.runs):
        order = list(locations)
        if r % 2:
            order.reverse()
        for backend in order:
            resets[backend]()
            loc = locations[backend]
            times[backend]["plan"].append(
                mailgitops(["plan", "-C", str(root), "--state", loc], env, f"{backend}-plan")
            )
            before = pg_counters(dsn) if backend == "postgres" else {}
            times[backend]["apply"].append(
                mailgitops(
                    ["apply", "-C", str(root), "--state", loc, "--auto-approve"],
                    env,
                    f"{backend}-apply",
                )
            )
            if backend == "postgres":
                written[backend].append(pg_rows_written(dsn, before))
            else:
                sizes = [p.stat().st_size for p in (file_state, state_dir / "live.json.backup")]
                written[backend].append({"files": len(sizes), "bytes": sum(sizes)})
            log(
                f"round {r + 1}/{args.runs} {backend}: plan {times[backend]['plan'][-1]:.2f}s, "
                f"apply {times[backend]['apply'][-1]:.2f}s, wrote {written[backend][-1]}"
            )
    for backend, loc in locations.items():
        code = subprocess.call(
            [sys.executable, "-m", "mailgitops", "plan", "-C", str(root), "--state", loc,
             "--detailed-exitcode"],
            env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        if code != 0:
            raise SystemExit(f"error: {backend}: plan after apply is not `No changes.` ({code})")

    report(args, managed, changed, times, written)
    return 0


def report(
    args: argparse.Namespace,
    managed: int,
    changed: int,
    times: dict[str, dict[str, list[float]]],
    written: dict[str, list[dict[str, int]]],
) -> None:
    pg_rows = written["postgres"][-1]
    entries = pg_rows["mailgitops_provider"] + pg_rows["mailgitops_mailbox"]
    file_bytes = written["file"][-1]["bytes"]
    wrote = {
        "file": f"2 files, {file_bytes / 1e6:.1f} MB (state + backup)",
        "postgres": f"{entries} entry rows + {pg_rows['mailgitops_workspace']} workspace-row "
        "updates",
    }
    print(
        f"\nState backends: {managed} managed mailboxes, {changed} changed "
        f"({changed / managed:.1%}); median of {args.runs} runs, wall time of the CLI process\n"
    )
    print(f"{'backend':<10} {'plan':>8} {'apply':>8}  written by one apply")
    for backend in times:
        plan = statistics.median(times[backend]["plan"])
        apply = statistics.median(times[backend]["apply"])
        print(f"{backend:<10} {plan:>7.2f}s {apply:>7.2f}s  {wrote[backend]}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "mailboxes": managed,
                    "changed": changed,
                    "runs": args.runs,
                    "times": times,
                    "written": written,
                },
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    raise SystemExit(main())
