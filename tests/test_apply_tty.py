"""apply without a plan file asks on a terminal: a real process whose stdin is a pty."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import standard


@pytest.mark.parametrize(("answer", "applied"), [(b"yes\n", True), (b"no\n", False)])
def test_confirmation_on_a_terminal(tmp_path: Path, answer: bytes, applied: bool) -> None:
    standard(tmp_path)
    state = tmp_path / "live.json"
    master, slave = os.openpty()
    env = {**os.environ, "ALICE_PW": "a", "BOB_PW": "b", "NO_COLOR": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailgitops", "apply", "-C", str(tmp_path), "--state", str(state)],
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    os.close(slave)
    os.write(master, answer)
    out, err = proc.communicate(timeout=60)
    os.close(master)
    assert b"Only 'yes' will be accepted" in err
    assert b"Plan: 3 to add" in out
    if applied:
        assert proc.returncode == 0, err
        assert json.loads(state.read_text())["serial"] == 1
    else:
        assert proc.returncode == 1
        assert b"Apply cancelled; nothing was written." in out
        assert not state.exists()
