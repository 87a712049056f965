"""Benchmark mailgitops against a parse-only floor and against octoDNS.

    python bench/run.py [--mailboxes 10000] [--runs 5] [--only validate,plan-cold,...]
                        [--json out.json] [--baseline earlier.json]

Generates a config repository with bench/generate.py into bench/_work/, then times every
contender as a separate child process, round-robin (each round runs every contender once, in
an order rotated by one per round, so machine noise hits all of them alike). Wall time is
measured around the child; peak memory is the child's own ru_maxrss from os.wait4 (the
per-child rusage, not the cumulative RUSAGE_CHILDREN), taken by a tiny launcher process.
Everything the script writes goes to bench/_work/ (gitignored), except the --json file you
ask for.

Contenders (see bench/README.md):
  floor       parse every YAML file (CSafeLoader) and the state (json.load), nothing else
  floor-yaml  the YAML alone
  validate    python -m mailgitops validate -C DIR
  plan-cold   python -m mailgitops plan -C DIR --state DIR/live.json [--no-cache], empty cache
  plan-warm   the same without --no-cache, with a cache warmed by one untimed run
  plan-cold-json, plan-warm-json, plan-cold-markdown, plan-warm-markdown
              the same with --format json / --format markdown
  octodns     octodns-sync --config-file ... (dry run) over the same N records
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

sys.dont_write_bytecode = True  # importing generate must not leave bench/__pycache__ behind

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORK = BENCH / "_work"
sys.path.insert(0, str(BENCH))

import generate  # noqa: E402

# Plans in each output format: the text one is `plan-cold`/`plan-warm`, the others carry the
# format's name (`plan-cold-json`).
FORMATS = {"": "text", "-json": "json", "-markdown": "markdown"}
PLANS = tuple(f"plan-{kind}{suffix}" for kind in ("cold", "warm") for suffix in FORMATS)
CONTENDERS = ("floor", "floor-yaml", "validate", *PLANS, "apply", "octodns")

# What each contender is compared with, and the target for that ratio (docs/performance.md,
# issue 18).
RATIO_TO = {
    "validate": "floor-yaml",
    **dict.fromkeys(PLANS, "floor"),
    "apply": "plan-cold",
    "octodns": "plan-cold-json",
}
TARGETS: dict[str, tuple[str, float]] = {  # contender -> (comparison, bound)
    "validate": ("<=", 1.3),
    **{name: ("<=", 1.3 if "cold" in name else 0.4) for name in PLANS},
    "apply": ("<=", 1.0),  # applying the saved plan costs no more than making it
    "octodns": (">=", 5.0),  # octoDNS time / plan-cold-json time: plan at least 5x faster
}
MEMORY_TARGET_MIB = 1024.0  # for the plans at N >= 100,000
MEMORY_TARGET_MILLION_MIB = 4096.0  # for the plans at N >= 1,000,000


def memory_target(n: int) -> float:
    return MEMORY_TARGET_MILLION_MIB if n >= 1_000_000 else MEMORY_TARGET_MIB


# At 10x the mailboxes, a plan may take at most 11x the time; from 100,000 to 1,000,000, 12x.
SCALING_SLACK = 1.1
SCALING_SLACK_MILLION = 1.2

FLOOR_CODE = """\
import json, os, sys
import yaml
root = sys.argv[1]
for sub in ("providers.d", "mailboxes.d"):
    folder = os.path.join(root, sub)
    for name in sorted(os.listdir(folder)):
        if name.endswith(".yaml"):
            with open(os.path.join(folder, name), encoding="utf-8") as fh:
                yaml.load(fh.read(), Loader=yaml.CSafeLoader)
if len(sys.argv) > 2:
    with open(sys.argv[2], encoding="utf-8") as fh:
        json.load(fh)
"""

PLAN_SUMMARY = re.compile(
    r"Plan: (\d+) to add, (\d+) to change, (\d+) to destroy, (\d+) to adopt\."
)
OCTODNS_SUMMARY = re.compile(r"Summary: Creates=(\d+), Updates=(\d+), Deletes=(\d+)")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Running one child


@dataclass
class Measurement:
    seconds: float
    maxrss_mib: float
    exit_code: int
    timed_out: bool
    stdout_path: Path
    stderr_path: Path

    def failure(self) -> str | None:
        """None on success, else 'failed: <first line of stderr>' (or of stdout when stderr is
        empty; for a traceback, its last line, which names the exception)."""
        if self.exit_code == 0 and not self.timed_out:
            return None
        if self.timed_out:
            return f"failed: timed out after {self.seconds:.0f}s"
        for path in (self.stderr_path, self.stdout_path):
            lines = [ln.strip() for ln in _read(path).splitlines() if ln.strip()]
            if lines:
                line = lines[-1] if lines[0].startswith("Traceback") else lines[0]
                return f"failed (exit {self.exit_code}): {line[:200]}"
        return f"failed (exit {self.exit_code}), no output"


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


# The measured command is started by this tiny launcher (python -S, only os/sys/time), which
# forks, execs it and reports the wall time and the ru_maxrss that os.wait4 returns for exactly
# that child. Why not wait4 on a child of run.py itself: Linux starts a child's ru_maxrss at
# the RSS of the process it was forked from (the old image's high-water mark is kept across
# exec), so a child of a large parent (run.py after generating 100,000 mailboxes in-process)
# would report at least the parent's size. The launcher is smaller than any measured child.
LAUNCHER = """\
import os, sys, time
report, argv = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        os.write(2, f"cannot run {argv[0]}: {exc}\\n".encode())
    os._exit(127)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - start
with open(report, "w") as fh:
    fh.write(f"{seconds!r} {usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}\\n")
"""


def run_child(
    argv: list[str], env: dict[str, str], cwd: Path, name: str, timeout: float
) -> Measurement:
    """Runs argv to completion with stdout/stderr in bench/_work/logs/NAME.*; returns its
    wall time and its own peak RSS."""
    logs = WORK / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    out_path, err_path = logs / f"{name}.stdout", logs / f"{name}.stderr"
    report = logs / f"{name}.rusage"
    report.unlink(missing_ok=True)
    timed_out = False
    with out_path.open("wb") as out, err_path.open("wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-S", "-c", LAUNCHER, str(report), *argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)  # the launcher and the measured command
            proc.wait()
        outer = time.perf_counter() - start
    try:
        seconds_s, maxrss_kib, code_s = report.read_text().split()
        seconds, maxrss, code = float(seconds_s), int(maxrss_kib) / 1024.0, int(code_s)
    except (OSError, ValueError):  # killed, or the launcher itself failed
        seconds, maxrss, code = outer, 0.0, proc.returncode or 1
    return Measurement(
        seconds=seconds,
        maxrss_mib=maxrss,
        exit_code=code,
        timed_out=timed_out,
        stdout_path=out_path,
        stderr_path=err_path,
    )


# --------------------------------------------------------------------------------------------
# Contenders


@dataclass
class Contender:
    name: str
    argv: list[str]
    cwd: Path
    env: dict[str, str]
    before_each: Callable[[dict[str, str]], None] | None = None  # may adjust env per run
    after_each: Callable[[dict[str, str]], None] | None = None
    times: list[float] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)
    error: str | None = None
    check: str | None = None  # what the output said, compared with what was generated

    def run(self, timeout: float) -> Measurement:
        env = dict(self.env)
        if self.before_each:
            self.before_each(env)
        try:
            return run_child(self.argv, env, self.cwd, self.name, timeout)
        finally:
            if self.after_each:
                self.after_each(env)


class CacheDirs:
    """MAILGITOPS_CACHE_DIR for mailgitops children: a fresh empty dir under bench/_work for
    every cold run (removed after it), one persistent dir for the warm runs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.counter = 0
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)

    def fresh(self, env: dict[str, str]) -> None:
        self.counter += 1
        path = self.root / f"cold-{self.counter}"
        path.mkdir()
        env["MAILGITOPS_CACHE_DIR"] = str(path)

    def drop(self, env: dict[str, str]) -> None:
        shutil.rmtree(env["MAILGITOPS_CACHE_DIR"], ignore_errors=True)

    def warm(self) -> str:
        path = self.root / "warm"
        path.mkdir(exist_ok=True)
        return str(path)


def supports_no_cache(env: dict[str, str]) -> tuple[bool, str]:
    """Whether `mailgitops plan --help` lists --no-cache (asked once)."""
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "mailgitops", "plan", "--help"],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"could not run `mailgitops plan --help`: {exc}"
    if proc.returncode != 0:
        return False, "`mailgitops plan --help` failed; plan-cold runs without --no-cache"
    if "--no-cache" in proc.stdout:
        return True, ""
    return False, "`mailgitops plan` has no --no-cache yet; plan-cold relies on the empty cache dir"


def ensure_octodns() -> tuple[Path | None, str]:
    """octodns-sync from bench/_work/venv-octodns, installed there on first use."""
    venv = WORK / "venv-octodns"
    exe = venv / "bin" / "octodns-sync"
    if exe.exists():
        return exe, ""
    install_log = WORK / "venv-octodns-install.log"
    log(f"installing octoDNS into {venv} (log: {install_log}) ...")
    try:
        with install_log.open("w") as fh:
            subprocess.run(
                [sys.executable, "-m", "venv", str(venv)],
                stdout=fh,
                stderr=subprocess.STDOUT,
                check=True,
                timeout=600,
            )
            subprocess.run(
                [
                    str(venv / "bin" / "python"),
                    "-m",
                    "pip",
                    "install",
                    "--no-cache-dir",
                    "--disable-pip-version-check",
                    "octodns>=1.0",
                ],
                stdout=fh,
                stderr=subprocess.STDOUT,
                check=True,
                timeout=1800,
            )
    except (OSError, subprocess.SubprocessError) as exc:
        tail = _read(install_log).strip().splitlines()[-1:] or [""]
        return None, f"octoDNS install failed ({exc}): {tail[0][:200]}; see {install_log}"
    if not exe.exists():
        return None, f"octoDNS installed but {exe} is missing; see {install_log}"
    return exe, ""


def octodns_version(exe: Path) -> str:
    try:
        proc = subprocess.run(
            [str(exe.parent / "python"), "-c", "import octodns; print(octodns.__version__)"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return proc.stdout.strip() or "?"


# --------------------------------------------------------------------------------------------
# Reporting


def machine_info() -> dict[str, Any]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib: float | None = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    commit = "no commit"
    try:
        proc = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if proc.returncode == 0:
            commit = proc.stdout.strip()
            dirty = subprocess.run(
                ["git", "-C", str(REPO), "status", "--porcelain", "--", "mailgitops", "schemas"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            if dirty.stdout.strip():
                commit += " + uncommitted changes"
    except (OSError, subprocess.TimeoutExpired):
        pass
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "memory_gib": mem_gib,
        "os": platform.platform(),
        "python": platform.python_version(),
        "pyyaml": f"{yaml.__version__} (libyaml: {yaml.__with_libyaml__})",
        "mailgitops_commit": commit,
    }


def summarize(
    contenders: dict[str, Contender], n: int, baseline: dict[str, Any] | None
) -> list[dict[str, Any]]:
    medians = {
        name: statistics.median(c.times)
        for name, c in contenders.items()
        if c.times and c.error is None
    }
    rows: list[dict[str, Any]] = []
    for name, c in contenders.items():
        row: dict[str, Any] = {"contender": name, "command": " ".join(c.argv)}
        if c.error is not None:
            row["status"] = c.error
            rows.append(row)
            continue
        median = medians.get(name)
        row.update(
            status="ok",
            runs=len(c.times),
            times=[round(t, 4) for t in c.times],
            median=median,
            min=min(c.times),
            max=max(c.times),
            peak_rss_mib=round(max(c.rss), 1),
        )
        ref = RATIO_TO.get(name)
        if ref is not None:
            row["ratio_to"] = f"octodns/{ref}" if name == "octodns" else ref
            if median is not None and ref in medians:
                ratio = median / medians[ref]
                row["ratio"] = round(ratio, 3)
                op, bound = TARGETS[name]
                row["target"] = f"{op} {bound}"
                row["target_met"] = ratio <= bound if op == "<=" else ratio >= bound
        if name == "octodns" and median is not None and "floor" in medians:
            row["ratio_to_floor"] = round(median / medians["floor"], 3)  # for information
        if name.startswith("plan") and n >= 100_000:
            row["memory_target_mib"] = memory_target(n)
            row["memory_target_met"] = max(c.rss) <= memory_target(n)
        if baseline and median is not None:
            base = {r["contender"]: r for r in baseline.get("results", [])}.get(name)
            base_n = baseline.get("params", {}).get("mailboxes")
            if base and base.get("median") and base_n and base_n != n:
                scale = median / base["median"]
                row["scaling"] = {
                    "baseline_mailboxes": base_n,
                    "baseline_median": base["median"],
                    "time_ratio": round(scale, 3),
                    "bound": round(
                        (SCALING_SLACK_MILLION if n >= 1_000_000 else SCALING_SLACK) * n / base_n,
                        2,
                    ),
                }
                row["scaling"]["met"] = scale <= row["scaling"]["bound"]
        if c.check:
            row["check"] = c.check
        rows.append(row)
    return rows


def render_table(rows: list[dict[str, Any]]) -> str:
    header = ("contender", "median s", "min s", "max s", "ratio", "target", "peak RSS MiB")
    body: list[tuple[str, ...]] = []
    failures: list[str] = []
    for row in rows:
        if row["status"] != "ok":
            body.append((row["contender"], "failed", "-", "-", "-", "-", "-"))
            failures.append(f"{row['contender']}: {row['status']}")
            continue
        ratio = "-"
        if "ratio" in row:
            ratio = f"{row['ratio']:.2f}x {row['ratio_to']}"
        elif "ratio_to_floor" in row:
            ratio = f"{row['ratio_to_floor']:.2f}x floor (plan-cold n/a)"
        elif "ratio_to" in row:
            ratio = f"n/a ({row['ratio_to']} not measured)"
        target = "-"
        if "target_met" in row:
            target = f"{row['target']}: {'met' if row['target_met'] else 'MISSED'}"
        body.append(
            (
                row["contender"],
                f"{row['median']:.3f}",
                f"{row['min']:.3f}",
                f"{row['max']:.3f}",
                ratio,
                target,
                f"{row['peak_rss_mib']:.1f}",
            )
        )
    widths = [max(len(r[i]) for r in (header, *body)) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
        for r in (header, tuple("-" * w for w in widths), *body)
    ]
    lines += [f"  {f}" for f in failures]
    for row in rows:
        if "scaling" in row and row["contender"].startswith("plan"):
            s = row["scaling"]
            lines.append(
                f"  scaling {row['contender']}: {row['median']:.3f}s vs "
                f"{s['baseline_median']:.3f}s at N={s['baseline_mailboxes']}: "
                f"{s['time_ratio']:.2f}x (bound {s['bound']}x: "
                f"{'met' if s['met'] else 'MISSED'})"
            )
        if "memory_target_met" in row:
            lines.append(
                f"  memory {row['contender']}: {row['peak_rss_mib']:.0f} MiB "
                f"(<= {row['memory_target_mib']:.0f} MiB: "
                f"{'met' if row['memory_target_met'] else 'MISSED'})"
            )
        if "check" in row:
            lines.append(f"  check {row['contender']}: {row['check']}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------


def build_contenders(
    selected: list[str], cfg: Path, oct_dir: Path | None, notes: list[str], mailboxes: int
) -> dict[str, Contender]:
    base_env = {
        k: v for k, v in os.environ.items() if k not in ("MAILGITOPS_STATE", "MAILGITOPS_CACHE_DIR")
    }
    base_env["NO_COLOR"] = "1"
    # The parse budget (3,000,000 nodes a run, docs/reliability.md) is sized for real configs;
    # a generated config has about 15 nodes per mailbox. Raised, as CI would, for N > 100,000.
    base_env.setdefault("MAILGITOPS_MAX_NODES", str(max(3_000_000, 20 * mailboxes)))
    state = cfg / "live.json"
    py = sys.executable
    caches = CacheDirs(WORK / "cache")
    out: dict[str, Contender] = {}
    for name in selected:
        if name == "floor":
            out[name] = Contender(
                name, [py, "-c", FLOOR_CODE, str(cfg), str(state)], WORK, base_env
            )
        elif name == "floor-yaml":
            out[name] = Contender(name, [py, "-c", FLOOR_CODE, str(cfg)], WORK, base_env)
        elif name == "validate":
            out[name] = Contender(
                name,
                [py, "-m", "mailgitops", "validate", "-C", str(cfg)],
                REPO,
                base_env,
                caches.fresh,
                caches.drop,
            )
        elif name.startswith("plan-"):
            fmt = FORMATS[name.removeprefix("plan-cold").removeprefix("plan-warm")]
            argv = [py, "-m", "mailgitops", "plan", "-C", str(cfg), "--state", str(state)]
            argv += ["--format", fmt]
            if name.startswith("plan-cold"):
                ok, note = supports_no_cache(base_env)
                if ok:
                    argv.append("--no-cache")
                if note and note not in notes:
                    notes.append(note)
                out[name] = Contender(name, argv, REPO, base_env, caches.fresh, caches.drop)
            else:
                env = dict(base_env, MAILGITOPS_CACHE_DIR=caches.warm())
                out[name] = Contender(name, argv, REPO, env)
        elif name == "apply":
            scratch = WORK / "apply-state.json"
            planfile = WORK / "apply-plan.json"
            secrets_env = dict(
                base_env,
                MB_PW="bench-password",
                **{
                    f"{p.stem.upper()}_SECRET": "bench-secret"
                    for p in (cfg / "providers.d").glob("*.yaml")
                },
            )

            def prepare(
                env: dict[str, str], scratch: Path = scratch, planfile: Path = planfile
            ) -> None:
                # Untimed: a fresh copy of live and the reviewed plan of its 3% difference.
                shutil.copyfile(state, scratch)
                for suffix in (".backup", ".lock"):
                    scratch.with_name(scratch.name + suffix).unlink(missing_ok=True)
                subprocess.run(
                    [
                        py,
                        "-m",
                        "mailgitops",
                        "plan",
                        "-C",
                        str(cfg),
                        "--state",
                        str(scratch),
                        "--no-cache",
                        "--out",
                        str(planfile),
                    ],
                    cwd=REPO,
                    env=env,
                    check=True,
                    capture_output=True,
                )

            out[name] = Contender(
                name,
                [
                    py,
                    "-m",
                    "mailgitops",
                    "apply",
                    "-C",
                    str(cfg),
                    "--state",
                    str(scratch),
                    str(planfile),
                ],
                REPO,
                secrets_env,
                prepare,
            )
        elif name == "octodns":
            exe, problem = ensure_octodns()
            contender = Contender(
                name,
                [
                    str(exe or "octodns-sync"),
                    "--config-file",
                    str((oct_dir or WORK) / "octodns.yaml"),
                ],
                oct_dir or WORK,
                base_env,
            )
            if exe is None:
                contender.error = f"failed: {problem}"
                notes.append(problem)
            else:
                notes.append(f"octoDNS {octodns_version(exe)} from {exe.parent.parent}")
            out[name] = contender
    return out


def check_output(c: Contender, m: Measurement, expected: dict[str, Any]) -> None:
    """Compare what the plans said with what the generator built in (first run only)."""
    if c.check is not None or m.failure():
        return
    plan = expected.get("plan", {})
    if c.name.endswith("-json"):
        try:
            got = json.loads(_read(m.stdout_path))["summary"]
        except (ValueError, KeyError, TypeError) as exc:
            c.check = f"not a plan JSON document: {exc}"
            return
    elif c.name.startswith("plan"):
        found = PLAN_SUMMARY.search(_read(m.stdout_path))
        if not found:
            c.check = "no 'Plan: ...' summary line found in the output"
            return
        got = dict(
            zip(("create", "update", "delete", "adopt"), map(int, found.groups()), strict=True)
        )
    elif c.name == "octodns":
        found = OCTODNS_SUMMARY.search(_read(m.stderr_path) + _read(m.stdout_path))
        if not found:
            c.check = "no 'Summary: ...' line found in the octoDNS output"
            return
        got = dict(zip(("create", "update", "delete"), map(int, found.groups()), strict=True))
    else:
        return
    want = {k: plan[k] for k in got if k in plan}
    c.check = (
        f"as generated: {got}"
        if got == want
        else f"DIFFERS from what was generated: got {got}, expected {want}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Time mailgitops validate/plan against a parse-only floor and octoDNS."
    )
    parser.add_argument("--mailboxes", type=int, default=10_000, metavar="N")
    parser.add_argument("--runs", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="untimed rounds first (default 1; plan-warm always gets one)",
    )
    parser.add_argument(
        "--only",
        default=",".join(CONTENDERS),
        help=f"comma-separated subset of {','.join(CONTENDERS)}",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write results here")
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="FILE",
        help="a --json file from a smaller N: report how the times scale",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=1800.0,
        help="seconds before a child is killed and counted as failed",
    )
    args = parser.parse_args(argv)

    selected = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in selected if s not in CONTENDERS]
    if unknown or not selected:
        parser.error(f"unknown contender(s) {unknown}; choose from {', '.join(CONTENDERS)}")
    selected = [c for c in CONTENDERS if c in selected]  # canonical order, no duplicates
    if args.runs < 1 or args.mailboxes < 1:
        parser.error("--runs and --mailboxes must be at least 1")
    baseline = json.loads(args.baseline.read_text()) if args.baseline else None

    WORK.mkdir(parents=True, exist_ok=True)
    n, seed = args.mailboxes, args.seed
    cfg = WORK / f"n{n}-s{seed}"
    log(f"generating {n} mailboxes into {cfg} ...")
    generate.write_config(cfg, n, seed)
    expected = json.loads((cfg / "expected.json").read_text())
    oct_dir: Path | None = None
    if "octodns" in selected:
        oct_dir = WORK / f"n{n}-s{seed}-octodns"
        generate.write_octodns(oct_dir, n, seed)

    notes: list[str] = []
    # Bytecode once, untimed, as pip does on install: with PYTHONDONTWRITEBYTECODE set (as in
    # some CI images) every mailgitops child would otherwise compile its modules again.
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(REPO / "mailgitops")],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    contenders = build_contenders(selected, cfg, oct_dir, notes, n)
    active = [c for c in contenders.values() if c.error is None]

    def record_failure(c: Contender, m: Measurement) -> bool:
        failure = m.failure()
        if failure:
            c.error = failure
            log(f"  {c.name}: {failure} (logs: {m.stderr_path.parent})")
            return True
        return False

    warm = [name for name in contenders if name.startswith("plan-warm")]
    for r in range(max(args.warmup, 1 if warm else 0)):
        log(f"warm-up round {r + 1}")
        for c in active:
            if c.error is None and (r < args.warmup or c.name in warm):
                m = c.run(args.timeout)
                if not record_failure(c, m):
                    check_output(c, m, expected)
                    log(f"  {c.name}: {m.seconds:.3f}s (untimed)")
    for r in range(args.runs):
        log(f"round {r + 1}/{args.runs}")
        live = [c for c in active if c.error is None]
        if not live:
            break
        shift = r % len(live)
        for c in live[shift:] + live[:shift]:
            m = c.run(args.timeout)
            if record_failure(c, m):
                continue
            check_output(c, m, expected)
            c.times.append(m.seconds)
            c.rss.append(m.maxrss_mib)
            log(f"  {c.name}: {m.seconds:.3f}s, {m.maxrss_mib:.1f} MiB")

    machine = machine_info()
    rows = summarize(contenders, n, baseline)
    result = {
        "machine": machine,
        "params": {
            "mailboxes": n,
            "providers": expected["providers"],
            "mailbox_files": expected["mailbox_files"],
            "seed": seed,
            "runs": args.runs,
            "warmup": args.warmup,
            "expected_plan": expected["plan"],
        },
        "results": rows,
        "notes": notes,
    }
    print(
        f"mailgitops benchmark: N={n} mailboxes, {expected['providers']} providers, "
        f"{expected['mailbox_files']} mailbox files, {args.runs} runs (medians)"
    )
    print(
        f"machine: {machine['cpu']}, {machine['cores']} cores "
        f"({machine['cores_usable']} usable), {machine['memory_gib']} GiB; "
        f"Python {machine['python']}; PyYAML {machine['pyyaml']}; {machine['date']}; "
        f"mailgitops {machine['mailgitops_commit']}"
    )
    print(render_table(rows))
    for note in notes:
        print(f"note: {note}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
