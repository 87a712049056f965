"""Run the property tests of tests/test_properties.py with many more examples than CI does.

    python bench/properties.py                       # 10,000 examples per property, random
    python bench/properties.py --examples 50000 --seed 7
    python bench/properties.py -k saved_plan         # one property (a pytest -k expression)

CI runs a few hundred derandomized examples (the same ones every time); this script runs the
same properties and strategies with fresh random examples, so a long run explores configs and
live states CI never sees. A failure prints the falsifying example and a
`@reproduce_failure(...)` blob; keep the smallest such case as a regression test. The run
writes nothing but a temporary directory per example (under /dev/shm when it exists).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--examples", type=int, default=10_000, help="per property")
    parser.add_argument("--seed", type=int, help="a fixed seed (default: random)")
    parser.add_argument("-k", dest="select", help="only the properties matching this expression")
    args = parser.parse_args(argv)
    env = {**os.environ, "MAILGITOPS_PROPERTY_EXAMPLES": str(args.examples)}
    if args.seed is not None:
        env["MAILGITOPS_PROPERTY_SEED"] = str(args.seed)
    command = [
        sys.executable,
        "-m",
        "pytest",
        str(REPO / "tests" / "test_properties.py"),
        "-p",
        "no:cacheprovider",
        "-q",
        "--durations=0",
        "--hypothesis-show-statistics",
    ]
    if args.select:
        command += ["-k", args.select]
    started = time.perf_counter()
    code = subprocess.call(command, cwd=REPO, env=env)
    elapsed = time.perf_counter() - started
    print(f"{args.examples:,} examples per property in {elapsed:.0f}s: exit {code}")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
