"""What apply says while it works (issue 16): one line per change in the order of application,
the summary, a progress bar on a terminal for a long apply, and `--format json`."""

from __future__ import annotations

import json
import os
import select
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import PYTHON, python_env
from helpers import CORP, Cli, standard, tree
from jsonschema import Draft202012Validator

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[1] / "schemas" / "apply.schema.json").read_text()
)


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("ALICE_PW", "a")
    monkeypatch.setenv("BOB_PW", "b")
    return Cli(standard(tmp_path), capsys)


def test_one_line_per_change_then_the_summary(cli: Cli) -> None:
    code, out, err = cli("apply", "--auto-approve")
    assert code == 0, err
    tail = out.split("Plan: 3 to add, 0 to change, 0 to destroy, 0 to adopt.\n", 1)[1]
    assert tail.splitlines() == [
        '+ provider "corp": creating',
        '+ mailbox "alice@example.com": creating',
        '+ mailbox "bob@example.com": creating',
        f"Writing the state ({cli.state})...",
        "Apply complete! 3 added, 0 changed, 0 destroyed, 0 adopted. "
        f"State serial 1 ({cli.state}).",
    ]
    assert "Applying [" not in err  # no progress bar without a terminal
    tree(cli.root, {"mailboxes.d/team.yaml": "mailboxes: []\n"})
    code, out, _ = cli("plan", "--out", str(cli.root / "p.json"))
    code, out, err = cli("apply", str(cli.root / "p.json"))
    assert code == 0, err
    assert out.splitlines()[:2] == [
        '- mailbox "alice@example.com": destroying',
        '- mailbox "bob@example.com": destroying',
    ]


def _json(out: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(out)  # exactly one document: json.loads refuses more
    Draft202012Validator(SCHEMA).validate(doc)
    return doc


def test_apply_format_json(cli: Cli) -> None:
    code, out, err = cli("apply", "--auto-approve", "--format", "json")
    assert code == 0, err
    doc = _json(out)
    assert doc["result"] == "applied"
    assert doc["changes"] == [
        {"action": "create", "kind": "provider", "id": "corp"},
        {"action": "create", "kind": "mailbox", "id": "alice@example.com"},
        {"action": "create", "kind": "mailbox", "id": "bob@example.com"},
    ]
    assert doc["summary"] == {"create": 3, "update": 0, "delete": 0, "adopt": 0}
    assert doc["state"]["serial"] == 1 and doc["state"]["location"] == str(cli.state)
    assert doc["state"]["lineage"] == cli.live()["lineage"]

    code, out, _ = cli("apply", "--auto-approve", "--format", "json")
    assert code == 0 and _json(out)["result"] == "no_changes"
    assert _json(out)["state"]["serial"] == 1

    # A failure is one JSON document too, with the reason; the error is on stderr as well.
    code, out, _ = cli("plan", "--out", str(cli.root / "p.json"))
    tree(cli.root, {"providers.d/corp.yaml": CORP.replace("imap.example", "imap2.example")})
    assert cli("apply", "--auto-approve")[0] == 0
    code, out, err = cli("apply", str(cli.root / "p.json"), "--format", "json")
    assert code == 1
    doc = _json(out)
    assert doc["result"] == "failed" and "stale plan" in doc["error"] and "stale plan" in err
    assert doc["changes"] == [] and doc["state"] is None


def test_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    """A long apply draws a bar on stderr when stderr is a terminal (a real pty)."""
    boxes = "".join(
        f"  - {{address: u{i:02d}@example.com, owner: u{i:02d}, password: {{env: PW}}}}\n"
        for i in range(25)
    )
    tree(tmp_path, {"providers.d/corp.yaml": CORP, "mailboxes.d/team.yaml": "mailboxes:\n" + boxes})
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "mailgitops",
            "apply",
            "--auto-approve",
            "-C",
            str(tmp_path),
            "--state",
            str(tmp_path / "live.json"),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        env={**python_env(), "PW": "x"},
    )
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            break
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the pty
            break
        if not data:
            break
        chunks.append(data)
    out, _ = proc.communicate(timeout=60)
    os.close(master)
    err = b"".join(chunks).decode()
    assert proc.returncode == 0, err
    assert "Applying [" in err and "26/26" in err
    assert err.endswith("\r\x1b[K")  # the bar is cleared at the end
    lines = out.decode().splitlines()
    assert sum(1 for line in lines if line.endswith(": creating")) == 26
    assert lines[-1].startswith("Apply complete! 26 added")
