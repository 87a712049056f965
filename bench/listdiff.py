"""What element-level list diffs (deepdiff, imported lazily) cost `plan`, against a baseline
revision measured in the same run (issue 16).

    python bench/listdiff.py [--mailboxes 10000] [--runs 7] [--baseline REV]

A config from bench/generate.py (its live state differs in sender names and sync periods:
no list changes) is planned with `--no-cache` in child processes, alternating between the
baseline revision (exported with `git archive` into bench/_work/) and the working tree, so
both see the same machine load. Then ~1% of the live mailboxes get a `shared_with` user
removed, so that deepdiff is imported and used; the three are timed in turn, round after
round. Prints the median wall time of each, in seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORK = HERE / "_work"


def export(rev: str) -> Path:
    target = WORK / f"rev-{rev}"
    if not target.exists():
        WORK.mkdir(exist_ok=True)
        archive = WORK / f"rev-{rev}.tar"
        with archive.open("wb") as fh:
            subprocess.run(["git", "-C", str(REPO), "archive", rev], stdout=fh, check=True)
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
        archive.unlink()
    return target


def plan_seconds(code: Path, root: Path, state: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of one plan in a child process. CPU time (user + system) is far
    less disturbed than wall time when other jobs share the machine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILGITOPS_")}
    env.update(PYTHONPATH=str(code), NO_COLOR="1", MB_PW="x")
    argv = [sys.executable, "-m", "mailgitops", "plan", "--no-cache", "-C", str(root)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        [*argv, "--state", str(state)], env=env, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"plan failed ({code}):\n{proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mailboxes", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--baseline", default="main", help="git revision (default main)")
    args = parser.parse_args()
    root = WORK / f"listdiff-{args.mailboxes}"
    subprocess.run(
        [
            sys.executable,
            str(HERE / "generate.py"),
            "--mailboxes",
            str(args.mailboxes),
            "--out",
            str(root),
        ],
        check=True,
        capture_output=True,
    )
    state = root / "live.json"
    baseline = export(args.baseline)
    times: dict[str, list[tuple[float, float]]] = {
        "baseline": [],
        "this tree": [],
        "this tree, lists": [],
    }
    for code in (baseline, REPO):  # warm-up: the OS file cache, .pyc files
        plan_seconds(code, root, state)
    live = json.loads(state.read_text())
    changed = 0
    for i, entry in enumerate(live["mailboxes"].values()):
        if i % 100 == 0 and entry.get("shared_with"):
            entry["shared_with"] = entry["shared_with"][1:]
            changed += 1
    lists = root / "live-lists.json"
    lists.write_text(json.dumps(live))
    # Interleaved, so that all three see the same load of a shared machine.
    for _ in range(args.runs):
        times["baseline"].append(plan_seconds(baseline, root, state))
        times["this tree"].append(plan_seconds(REPO, root, state))
        times["this tree, lists"].append(plan_seconds(REPO, root, lists))
    print(f"plan --no-cache, {args.mailboxes} mailboxes, median of {args.runs} runs")
    print(f"  (lists: {changed} mailboxes with one shared_with user removed)")
    for name, values in times.items():
        wall = statistics.median(v[0] for v in values)
        cpu = statistics.median(v[1] for v in values)
        print(f"  {name:<18} wall {wall:.3f} s, CPU {cpu:.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
