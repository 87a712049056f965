"""The README's quick start, from `init` to a reviewed apply, replayed word for word: the
first ```sh block under `## Quick start`, run by bash with the installed `mailgitops`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import REPO, python_env


def quick_start() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"^```sh\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)
    assert match, "the quick start has no ```sh block"
    return match.group(1)


def test_the_quick_start_works_as_written(tmp_path: Path) -> None:
    script = quick_start()
    assert script.startswith("mailgitops init")
    # `mailgitops` on PATH is this checkout, run by this interpreter (wherever pip put the
    # console script of an installed copy).
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shim = bindir / "mailgitops"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m mailgitops "$@"\n')
    shim.chmod(0o755)
    env = python_env()
    env["PATH"] = f"{bindir}{os.pathsep}{env['PATH']}"
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "OK: 1 provider(s), 1 mailbox(es): 0 error(s), 0 warning(s)" in out
    assert "Plan: 2 to add, 0 to change, 0 to destroy, 0 to adopt." in out
    assert "Apply complete! 2 added" in out
    assert "No changes." in out
    assert 'managed    mailbox   "alice@example.com"  (provider "corp")' in out
    assert "only where apply runs" not in out + proc.stderr
    root = tmp_path / "mail-config"
    state = (root / "mailgitops.state.json").read_text()
    assert '"serial": 1' in state and "only where apply runs" not in state
    assert "mailgitops.state.json" in (root / ".gitignore").read_text()
