"""Shared helpers for end-to-end tests: config trees on disk and the CLI run in-process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mailgitops.cli import main

CORP = """name: corp
domains: [example.com]
imap:
  host: imap.example.com
smtp:
  host: smtp.example.com
"""

OTHER = """name: other
domains: [other.com]
imap:
  host: imap.other.com
  security: starttls
smtp:
  host: smtp.other.com
  security: starttls
"""

TEAM = """mailboxes:
  - address: alice@example.com
    owner: alice
    password: {env: ALICE_PW}
  - address: bob@example.com
    owner: bob
    password: {env: BOB_PW}
    sender_name: Bob
"""


def tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def standard(root: Path, **extra: str) -> Path:
    files = {"providers.d/corp.yaml": CORP, "mailboxes.d/team.yaml": TEAM}
    files.update(extra)
    return tree(root, files)


class Cli:
    """Runs `main([...])` in-process against one config root and one state file."""

    def __init__(self, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.root = root
        self.state = root / "live.json"
        self.capsys = capsys

    def __call__(self, *argv: str, state: bool = True) -> tuple[int, str, str]:
        args = [argv[0], "-C", str(self.root)]
        if state:
            args += ["--state", str(self.state)]
        code = main([*args, *argv[1:]])
        out, err = self.capsys.readouterr()
        return code, out, err

    def plan_json(self, *extra: str) -> tuple[int, dict[str, Any]]:
        code, out, _err = self("plan", "--format", "json", *extra)
        return code, json.loads(out)

    def live(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.state.read_text())
        return data

    def write_live(
        self, providers: dict[str, Any], mailboxes: dict[str, Any], serial: int = 3
    ) -> None:
        self.state.write_text(
            json.dumps(
                {
                    "format_version": 1,
                    "lineage": "11111111-2222-3333-4444-555555555555",
                    "serial": serial,
                    "providers": providers,
                    "mailboxes": mailboxes,
                }
            )
        )
