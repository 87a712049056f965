"""Element-level diffs of list attributes (issue 16): one user added to a `shared_with` of
thirty is one line, not two lists of thirty; `domains`, `shared_with` and `rights` ignore
order, `sync.folders` keeps it; deepdiff is imported only when such a list differs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import PYTHON, python_env
from helpers import CORP, Cli, tree
from jsonschema import Draft202012Validator

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[1] / "schemas" / "plan.schema.json").read_text()
)


def mailbox_file(users: list[str], rights: str = "[read]", folders: str = "[INBOX]") -> str:
    shares = "".join(f"      - {{user: {u}, rights: {rights}}}\n" for u in users)
    return (
        "mailboxes:\n"
        "  - address: team@example.com\n"
        "    owner: alice\n"
        "    password: {env: TEAM_PW}\n"
        f"    sync: {{folders: {folders}}}\n"
        f"    shared_with:\n{shares}"
    )


USERS = [f"user{i:02d}" for i in range(30)]


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("TEAM_PW", "x")
    tree(
        tmp_path,
        {"providers.d/corp.yaml": CORP, "mailboxes.d/team.yaml": mailbox_file(USERS)},
    )
    c = Cli(tmp_path, capsys)
    assert c("apply", "--auto-approve")[0] == 0
    return c


def diff_of(cli: Cli) -> list[dict[str, Any]]:
    code, plan = cli.plan_json()
    assert code == 0
    Draft202012Validator(SCHEMA).validate(plan)
    assert len(plan["changes"]) == 1
    diff: list[dict[str, Any]] = plan["changes"][0]["diff"]
    return diff


def test_one_user_added_to_thirty_is_one_entry(cli: Cli) -> None:
    tree(cli.root, {"mailboxes.d/team.yaml": mailbox_file([*USERS[:10], "zoe", *USERS[10:]])})
    assert diff_of(cli) == [
        {
            "path": 'shared_with["zoe"]',
            "before": None,
            "after": {"user": "zoe", "rights": ["read"]},
        }
    ]
    code, out, _ = cli("plan")
    assert code == 0
    assert '+ shared_with["zoe"] = {"user": "zoe", "rights": ["read"]}' in out
    assert "user05" not in out  # the other twenty-nine are not shown
    code, out, _ = cli("plan", "--format", "markdown")
    assert "zoe" in out and "user05" not in out


def test_removed_user_and_changed_rights(cli: Cli) -> None:
    text = mailbox_file(USERS[1:]).replace(
        "{user: user07, rights: [read]}", "{user: user07, rights: [send, read]}"
    )
    tree(cli.root, {"mailboxes.d/team.yaml": text})
    assert diff_of(cli) == [
        {
            "path": 'shared_with["user00"]',
            "before": {"user": "user00", "rights": ["read"]},
            "after": None,
        },
        {"path": 'shared_with["user07"].rights["send"]', "before": None, "after": "send"},
    ]


def test_order_of_sets_is_no_change_of_elements(cli: Cli) -> None:
    # The same users in another order: no element changed, so the plan says what changed
    # as a whole (the live order), not thirty removals and additions.
    tree(cli.root, {"mailboxes.d/team.yaml": mailbox_file(list(reversed(USERS)))})
    diff = diff_of(cli)
    assert [d["path"] for d in diff] == ["shared_with"]


def test_domains_ignore_order(cli: Cli) -> None:
    tree(
        cli.root,
        {"providers.d/corp.yaml": CORP.replace("[example.com]", "[example.org, example.com]")},
    )
    assert diff_of(cli) == [
        {"path": 'domains["example.org"]', "before": None, "after": "example.org"}
    ]


def test_folders_keep_their_order(cli: Cli) -> None:
    tree(cli.root, {"mailboxes.d/team.yaml": mailbox_file(USERS, folders="[INBOX, Sent]")})
    assert diff_of(cli) == [{"path": "sync.folders[1]", "before": None, "after": "Sent"}]
    assert cli("apply", "--auto-approve")[0] == 0
    tree(cli.root, {"mailboxes.d/team.yaml": mailbox_file(USERS, folders="[Sent, INBOX]")})
    paths = [d["path"] for d in diff_of(cli)]
    assert paths and all(p.startswith("sync.folders[") for p in paths)


def test_a_hostile_user_name_cannot_pass_for_another_path(cli: Cli) -> None:
    """An entry made outside mailgitops may hold any visible user name: the element is named
    as JSON, so `bob"].rights["send` stays one name. (Control and invisible characters in a
    user name make the whole state unreadable: tests/test_trust.py.)"""
    live = cli.live()
    shares = live["mailboxes"]["team@example.com"]["shared_with"]
    shares.append({"user": 'bob"].rights["send', "rights": []})
    live["mailboxes"]["team@example.com"]["managed"] = False
    cli.state.write_text(json.dumps(live))
    code, plan = cli.plan_json()
    paths = [d["path"] for d in plan["changes"][0]["diff"]]
    assert paths == ['shared_with["bob\\"].rights[\\"send"]']
    code, out, _ = cli("plan")
    assert code == 0 and 'shared_with["bob\\"].rights[\\"send"]' in out


def _imports_deepdiff(cli: Cli) -> bool:
    script = (
        "import sys\n"
        "from mailgitops.cli import main\n"
        f"code = main(['plan', '-C', {str(cli.root)!r}, '--state', {str(cli.state)!r}])\n"
        "print('DEEPDIFF', 'deepdiff' in sys.modules, code)\n"
    )
    env = {**python_env(), "TEAM_PW": "x"}
    proc = subprocess.run(
        [PYTHON, "-c", script], capture_output=True, text=True, env=env, check=False, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last.endswith(" 0"), proc.stdout
    return "True" in last


def test_deepdiff_is_imported_only_when_a_list_differs(cli: Cli) -> None:
    tree(cli.root, {"providers.d/corp.yaml": CORP.replace("imap.example.com", "imap2.example.com")})
    assert not _imports_deepdiff(cli)  # a plan with changes, none in a list
    tree(cli.root, {"mailboxes.d/team.yaml": mailbox_file(USERS[1:])})
    assert _imports_deepdiff(cli)
