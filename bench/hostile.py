"""What a hostile config costs `mailgitops validate`: time and peak memory (issue 13).

    python bench/hostile.py [--runs 3] [--baseline-rev main] [--baseline-cases dense-1]
                            [--json out.json] [--timeout 600]

Cases, each a config root in bench/_work/hostile/:
  dense-1     one 10 MB file `mailboxes: [1,1,1,…]` (5 million nodes)
  dense-5     five such files
  crafted-16  sixteen files just inside the per-file limits (199,000 nodes at 6 bytes each):
              the most a file can hold without being refused unread; each gives schema
              errors, so the run stops reading after the first

Every case is run by this checkout and, for the cases in --baseline-cases, by the source of
--baseline-rev (`git archive` into bench/_work/, run with PYTHONPATH), each as its own child
process, round-robin; the table shows the median (min-max) of --runs runs. Time is wall time;
memory is the child's own ru_maxrss (bench/run.py's launcher). A refusal is exit code 1.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import tarfile
from pathlib import Path

sys.dont_write_bytecode = True
BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

import run  # noqa: E402  (the launcher that measures one child's own peak RSS)

WORK = BENCH / "_work" / "hostile"
TEN_MB = 10 * 1024 * 1024
PROVIDER = (
    "name: corp\ndomains: [example.com]\nimap: {host: i.example.com}\nsmtp: {host: s.example.com}\n"
)


def _dense() -> str:
    return "mailboxes: [" + "1," * ((TEN_MB - 16) // 2) + "1]\n"


def _crafted() -> str:
    return "mailboxes: [" + "1111, " * 199_000 + "1]\n"


CASES = {"dense-1": (_dense, 1), "dense-5": (_dense, 5), "crafted-16": (_crafted, 16)}


def build(case: str) -> Path:
    make, count = CASES[case]
    root = WORK / case
    if (root / "mailboxes.d").is_dir() and len(list((root / "mailboxes.d").iterdir())) == count:
        return root
    (root / "providers.d").mkdir(parents=True, exist_ok=True)
    (root / "mailboxes.d").mkdir(exist_ok=True)
    (root / "providers.d" / "corp.yaml").write_text(PROVIDER)
    text = make()
    for i in range(count):
        (root / "mailboxes.d" / f"hostile-{i:02d}.yaml").write_text(text)
    return root


def baseline_source(rev: str) -> Path:
    """The package as it is at `rev`, unpacked beside the cases."""
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", rev], capture_output=True, text=True, check=True
    ).stdout.strip()
    target = WORK / f"src-{commit[:12]}"
    if not (target / "mailgitops").is_dir():
        data = subprocess.run(
            ["git", "-C", str(REPO), "archive", commit, "mailgitops", "schemas"],
            capture_output=True,
            check=True,
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            archive.extractall(target, filter="data")
        # The schemas ship inside the package as mailgitops.schemas (pyproject package-dir).
        (target / "mailgitops" / "schemas").symlink_to(target / "schemas")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline-rev", default=None)
    parser.add_argument("--baseline-cases", default="dense-1")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args(argv)
    sources = {"this": REPO}
    if args.baseline_rev:
        sources[f"baseline {args.baseline_rev}"] = baseline_source(args.baseline_rev)
    cases = [c for c in args.cases.split(",") if c]
    jobs = [
        (case, label)
        for case in cases
        for label in sources
        if label == "this" or case in args.baseline_cases.split(",")
    ]
    roots = {case: build(case) for case in cases}
    results: dict[tuple[str, str], list[run.Measurement]] = {job: [] for job in jobs}
    for round_no in range(args.runs):
        for case, label in jobs[round_no % len(jobs) :] + jobs[: round_no % len(jobs)]:
            env = {
                **run.os.environ,
                "PYTHONPATH": str(sources[label]),
                "NO_COLOR": "1",
                "MAILGITOPS_CACHE_DIR": str(WORK / "cache"),
            }
            argv_ = [sys.executable, "-m", "mailgitops", "validate", "-C", str(roots[case])]
            name = f"hostile-{case}-{label.replace(' ', '-')}"
            # `python -m` puts the working directory first on sys.path: run in the source.
            m = run.run_child(argv_, env, sources[label], name, args.timeout)
            results[(case, label)].append(m)
            run.log(
                f"{case:>11} {label:<16} {m.seconds:7.2f} s {m.maxrss_mib:8.0f} MiB "
                f"exit {m.exit_code}"
            )
    rows = []
    print("| case | code | runs | median s (min-max) | median peak MiB (min-max) | exit |")
    print("| --- | --- | --- | --- | --- | --- |")
    for (case, label), ms in results.items():
        secs = [m.seconds for m in ms]
        mibs = [m.maxrss_mib for m in ms]
        codes = sorted({m.exit_code for m in ms})
        rows.append(
            {"case": case, "code": label, "seconds": secs, "maxrss_mib": mibs, "exit": codes}
        )
        print(
            f"| {case} | {label} | {len(ms)} | {statistics.median(secs):.2f} "
            f"({min(secs):.2f}-{max(secs):.2f}) | {statistics.median(mibs):.0f} "
            f"({min(mibs):.0f}-{max(mibs):.0f}) | {','.join(map(str, codes))} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
