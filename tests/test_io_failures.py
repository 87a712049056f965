"""Output and input that the system refuses: a full disk or a closed standard output, and a
plan "file" that is a FIFO. Real processes, because what matters is what the process prints
and returns when its file descriptors fail — and that it does not hang."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers import standard


def _mailgitops(
    *args: str, cwd: Path, stdout: int | None = subprocess.PIPE, close_stdout: bool = False
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mailgitops", *args]
    if close_stdout:
        # The descriptor is closed in the child before Python starts: `mailgitops plan >&-`.
        command = ["sh", "-c", '"$@" >&-', "sh", *command]
    return subprocess.run(
        command,
        check=False,
        cwd=cwd,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        env={**os.environ, "NO_COLOR": "1", "MAILGITOPS_CACHE_DIR": str(cwd / ".cache")},
    )


def test_a_full_disk_under_stdout_is_an_io_error_not_a_bug(tmp_path: Path) -> None:
    standard(tmp_path)
    with open("/dev/full", "w") as full:
        for command in (["validate"], ["plan", "--no-cache"], ["show"]):
            result = _mailgitops(*command, cwd=tmp_path, stdout=full.fileno())
            assert result.returncode == 1, command
            assert result.stderr == "error: I/O error: No space left on device\n", command


def test_a_closed_stdout_is_an_io_error_not_a_bug(tmp_path: Path) -> None:
    standard(tmp_path)
    result = _mailgitops("plan", cwd=tmp_path, close_stdout=True)
    assert (result.returncode, result.stderr) == (
        1,
        "error: I/O error: standard output is closed\n",
    )


def test_a_fifo_nobody_writes_to_is_an_empty_plan_file_not_a_wait(tmp_path: Path) -> None:
    standard(tmp_path)
    fifo = tmp_path / "plan.json"
    os.mkfifo(fifo)
    result = _mailgitops("apply", str(fifo), cwd=tmp_path)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"error: {fifo}: not a mailgitops plan file (not JSON)\n"
    assert not (tmp_path / "mailgitops.state.json").exists()


def test_a_device_is_no_plan_file(tmp_path: Path) -> None:
    standard(tmp_path)
    result = _mailgitops("apply", "/dev/zero", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "error: cannot read plan file /dev/zero: not a regular file or a pipe\n"


def test_a_plan_is_applied_from_a_pipe(tmp_path: Path) -> None:
    """`mailgitops plan --out /dev/stdout | mailgitops apply /dev/stdin`: a plan file may
    come through a pipe (or `apply <(…)`); only opening one never waits."""
    standard(tmp_path)
    saved = _mailgitops("plan", "--out", "plan.json", cwd=tmp_path)
    assert saved.returncode == 0, saved.stderr
    plan = (tmp_path / "plan.json").read_text()
    (tmp_path / "plan.json").unlink()
    result = subprocess.run(
        [sys.executable, "-m", "mailgitops", "apply", "/dev/stdin"],
        input=plan,
        cwd=tmp_path,
        env={**os.environ, "ALICE_PW": "a", "BOB_PW": "b", "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Apply complete! 3 added" in result.stdout
    assert (tmp_path / "mailgitops.state.json").exists()
