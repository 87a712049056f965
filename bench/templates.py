"""What a template costs: N mailboxes rendered from one template and a roster in data/, against
the same N mailboxes written as plain YAML (byte for byte the text the template renders to).

    python bench/templates.py [--mailboxes 10000] [--runs 5]

The template is measured twice, with the roster as YAML (block style) and as JSON (which
loads several times faster). All three are measured in the same run, round-robin (the order
rotates each round), each
command a fresh child process: `validate` with an empty cache, and a cold `plan --no-cache`
against a live state equal to the config (applied once, untimed). Prints the medians, min and
max, and the ratio template/plain of the medians (aim: <= 1.5x). Writes to bench/_work/."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "bench" / "_work"

PROVIDER = """name: corp
domains: [example.com]
imap: {host: imap.example.com}
smtp: {host: smtp.example.com}
"""

MACRO = """{% macro mailbox(person, domain) %}
  - address: {{ person.user }}@{{ domain }}
    owner: {{ person.user }}
    sender_name: {{ person.name | yaml }}
{% if person.folders is defined %}
    sync:
      folders: {{ person.folders | yaml }}
{% endif %}
{% if person.shared is defined %}
    shared_with:
{% for user in person.shared %}
      - {user: {{ user }}, rights: [read]}
{% endfor %}
{% endif %}
{% endmacro %}
"""

TEMPLATE = """{% import 'mailbox.j2' as m %}
defaults:
  provider: corp
  password: {env: MB_PW}
mailboxes:
{% for person in data.roster.people %}
{{ m.mailbox(person, vars.domain) -}}
{% endfor %}
"""


def _people(n: int) -> list[dict[str, Any]]:
    people: list[dict[str, Any]] = []
    for i in range(n):
        person: dict[str, Any] = {"user": f"u{i:05d}", "name": f"User Nr. {i}"}
        if i % 3 == 0:
            person["folders"] = ["INBOX", "Sent"]
        if i % 5 == 0:
            person["shared"] = [f"u{(i + 1) % n:05d}", f"u{(i + 2) % n:05d}"]
        people.append(person)
    return people


def _roster_yaml(people: list[dict[str, Any]]) -> str:
    """Block style, as a person would write it."""
    lines = ["people:"]
    for person in people:
        lines.append(f"  - user: {person['user']}\n    name: {person['name']}")
        for key in ("folders", "shared"):
            if key in person:
                lines.append(f"    {key}: [{', '.join(person[key])}]")
    return "\n".join(lines) + "\n"


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _env(cache: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILGITOPS_")}
    env.update(NO_COLOR="1", MAILGITOPS_CACHE_DIR=cache, PYTHONPATH=str(REPO), MB_PW="bench-secret")
    return env


def _mailgitops(*args: str, cache: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "mailgitops", *args],
        capture_output=True,
        text=True,
        env=_env(cache),
        cwd=REPO,
        check=False,
    )
    return time.perf_counter() - start, done


def prepare(n: int) -> tuple[Path, Path, Path, Path]:
    base = WORK / f"templates-{n}"
    shutil.rmtree(base, ignore_errors=True)
    templated, with_json, plain = base / "template", base / "template-json", base / "plain"
    common = {
        "mailgitops.yaml": "vars:\n  domain: example.com\n",
        "providers.d/corp.yaml": PROVIDER,
        "templates/mailbox.j2": MACRO,
        "mailboxes.d/team.yaml.j2": TEMPLATE,
    }
    people = _people(n)
    _write(templated, {**common, "data/roster.yaml": _roster_yaml(people)})
    _write(with_json, {**common, "data/roster.json": json.dumps({"people": people})})
    with tempfile.TemporaryDirectory() as cache:
        _seconds, rendered = _mailgitops(
            "render", "-C", str(templated), "--no-line-numbers", cache=cache
        )
    if rendered.returncode != 0:
        raise SystemExit(f"render failed: {rendered.stderr}")
    text = rendered.stdout.split("\n", 1)[1]  # after `# rendered from …`
    _write(
        plain,
        {
            "mailgitops.yaml": "vars:\n  domain: example.com\n",
            "providers.d/corp.yaml": PROVIDER,
            "mailboxes.d/team.yaml": text,
        },
    )
    live = base / "live.json"
    with tempfile.TemporaryDirectory() as cache:
        _s, applied = _mailgitops(
            "apply", "-C", str(plain), "--state", str(live), "--auto-approve", cache=cache
        )
    if applied.returncode != 0:
        raise SystemExit(f"apply failed: {applied.stderr}")
    return templated, with_json, plain, live


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mailboxes", type=int, default=10_000, metavar="N")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    templated, with_json, plain, live = prepare(args.mailboxes)
    configs = {"plain": plain, "template": templated, "template-json": with_json}
    commands = {
        "validate": lambda root: ["validate", "-C", str(root)],
        "plan-cold": lambda root: ["plan", "-C", str(root), "--state", str(live), "--no-cache"],
    }
    times: dict[tuple[str, str], list[float]] = {}
    for run in range(args.runs + 1):  # the first round is a warm-up (page cache, .pyc)
        order = list(configs.items())
        order = order[run % 3 :] + order[: run % 3]  # rotated: noise hits every config alike
        for command, argv_of in commands.items():
            for label, root in order:
                with tempfile.TemporaryDirectory() as cache:
                    seconds, done = _mailgitops(*argv_of(root), cache=cache)
                if done.returncode != 0:
                    raise SystemExit(f"{command} on {label} failed: {done.stdout}{done.stderr}")
                if command == "plan-cold" and "No changes." not in done.stdout:
                    raise SystemExit(f"{label}: the plan is not empty:\n{done.stdout[-500:]}")
                if run:
                    times.setdefault((command, label), []).append(seconds)
    print(
        f"N={args.mailboxes:,} mailboxes, {args.runs} runs (median, min-max), Python "
        f"{sys.version.split()[0]}, {os.cpu_count()} CPUs"
    )
    print(
        f"{'command':<10} {'plain YAML':>22} {'template + YAML roster':>30} "
        f"{'template + JSON roster':>30}"
    )
    for command in commands:
        base = statistics.median(times[(command, "plain")])
        cells = []
        for label in configs:
            values = times[(command, label)]
            cell = f"{statistics.median(values):.3f}s ({min(values):.2f}-{max(values):.2f})"
            if label != "plain":
                cell += f" {statistics.median(values) / base:.2f}x"
            cells.append(cell)
        print(f"{command:<10} {cells[0]:>22} {cells[1]:>30} {cells[2]:>30}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
