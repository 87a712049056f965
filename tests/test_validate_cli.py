"""validate's formats, exit codes and usage errors through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import CORP, tree

from mailgitops.cli import main

REPO = Path(__file__).resolve().parents[1]
BROKEN = {
    "providers.d/corp.yaml": CORP.replace(
        "host: smtp.example.com", "host: smtp.example.com\n  port: 455"
    ),
    "mailboxes.d/team.yaml": "mailboxes:\n  - address: a@example.com\n    owner: a\n"
    "    password: plain-text-value\n",
}


def test_repository_example_config_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "-C", str(REPO), "--strict"]) == 0
    assert "0 error(s), 0 warning(s)" in capsys.readouterr().out


def test_github_annotations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    tree(tmp_path / "config", BROKEN)
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "-C", "config", "--format", "github"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "::error file=config/mailboxes.d/team.yaml,line=4,col=15,title=plaintext-secret::"
        "`password` is a literal secret: write a reference, {env: NAME} or {file: PATH}, and "
        "keep the value out of Git (the value is not shown)",
        "::warning file=config/providers.d/corp.yaml,line=7,col=9,title=port-455::port 455: "
        "did you mean 465 (SMTP over implicit TLS, RFC 8314)? Creatio's documentation prints "
        "465 as 455",
    ]


def test_text_and_json_report_the_same(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree(tmp_path, BROKEN)
    assert main(["validate", "-C", str(tmp_path)]) == 1
    text = capsys.readouterr().out.splitlines()
    assert text[0].startswith("mailboxes.d/team.yaml:4:15: error: ")
    assert text[1].startswith("providers.d/corp.yaml:7:9: warning: ")
    assert text[-1] == "FAILED: 1 provider(s), 1 mailbox(es): 1 error(s), 1 warning(s)"
    assert main(["validate", "-C", str(tmp_path), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False
    assert report["summary"] == {"errors": 1, "warnings": 1, "providers": 1, "mailboxes": 1}
    assert "plain-text-value" not in json.dumps(report)


@pytest.mark.parametrize(
    "argv", [["validate", "--format", "xml"], ["validate", "--bogus"], ["nosuchcommand"], []]
)
def test_usage_errors_exit_1(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Traceback" not in captured.err


def test_missing_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "-C", str(tmp_path / "nope")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_python_dash_m_in_a_real_process(tmp_path: Path) -> None:
    tree(tmp_path, BROKEN)
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mailgitops", "validate", "-C", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 1
    assert "providers.d/corp.yaml:7:9: warning:" in proc.stdout
    assert proc.stderr == ""
    proc = subprocess.run(
        [sys.executable, "-m", "mailgitops", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0 and proc.stdout.startswith("mailgitops ")
