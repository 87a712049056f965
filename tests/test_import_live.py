"""`import [ID...]` and adopts without loss (SPEC §5): what a user set in the CRM is never
overwritten by an invented value, attributes the config format does not know survive every
apply, and a pending delete is not brought back unless named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import CORP, Cli, tree

LEGACY = {
    "service_type": "imap",
    "domains": ["legacy.net"],
    "imap": {"host": "imap.legacy.net", "security": "starttls", "port": 143},
    "smtp": {"host": "smtp.legacy.net", "security": "starttls", "port": 587, "timeout_seconds": 40},
    "allow_receiving": True,
    "allow_sending": True,
    "login_format": "email_address",
    "auth": {"method": "basic"},
    "crm_id": "MS-17",
}
URSULA = {
    "provider": "legacy",
    "owner": "ursula",
    "login": "ui@legacy.net",
    "send_emails": True,
    "default": False,
    "sender_name": "Ursula",
    "sync": {"enabled": True, "period": "week", "folders": ["INBOX"]},
    "shared_with": [],
    "crm_id": "MB-99",
    "crm_flags": {"pinned": True},
}


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(
        tree(tmp_path / "repo", {"providers.d/corp.yaml": CORP, "mailboxes.d/.keep": ""}), capsys
    )


def test_import_then_plan_shows_adopts_without_changes_and_keeps_the_password(cli: Cli) -> None:
    cli.write_live(providers={"legacy": LEGACY}, mailboxes={"ui@legacy.net": URSULA})
    code, _, err = cli("import")
    assert code == 0, err
    text = (cli.root / "mailboxes.d/imported.yaml").read_text()
    assert "  password:\n    keep: live\n" in text, "no invented reference"
    assert "_PASSWORD" not in text and "crm_" not in text
    assert "crm_id" not in (cli.root / "providers.d/legacy.yaml").read_text()
    assert cli("validate", state=False)[0] == 0
    code, plan = cli.plan_json()
    assert code == 0
    assert [(c["action"], c["id"], c["diff"]) for c in plan["changes"]] == [
        ("create", "corp", []),
        ("adopt", "legacy", []),
        ("adopt", "ui@legacy.net", []),
    ]
    # No secret is needed: nothing is delivered, the CRM keeps its password.
    code, _out, err = cli("apply", "--auto-approve")
    assert code == 0, err
    live = cli.live()
    assert live["mailboxes"]["ui@legacy.net"] == {"managed": True, **URSULA}
    assert live["providers"]["legacy"] == {"managed": True, **LEGACY}
    assert cli("plan")[1].rstrip().endswith("No changes.")
    assert "Nothing to import" in cli("import")[1]


def test_unknown_attributes_survive_updates(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PW", "x")
    box = "mailboxes:\n  - address: a@example.com\n    owner: a\n    password: {env: PW}\n"
    tree(cli.root, {"mailboxes.d/a.yaml": box})
    assert cli("apply", "--auto-approve")[0] == 0
    live = cli.live()
    live["mailboxes"]["a@example.com"]["crm_id"] = "MB-1"
    live["providers"]["corp"]["crm_id"] = "MS-1"
    cli.state.write_text(json.dumps(live))
    assert cli("plan")[1].rstrip().endswith("No changes."), "unknown attributes are no diff"
    tree(
        cli.root,
        {
            "mailboxes.d/a.yaml": box + "    sender_name: A\n",
            "providers.d/corp.yaml": CORP + "display_name: Corp\n",
        },
    )
    _code, plan = cli.plan_json()
    paths = sorted(d["path"] for c in plan["changes"] for d in c["diff"])
    assert paths == ["display_name", "sender_name"]
    assert cli("apply", "--auto-approve")[0] == 0
    live = cli.live()
    assert live["mailboxes"]["a@example.com"]["crm_id"] == "MB-1"
    assert live["providers"]["corp"]["crm_id"] == "MS-1"
    assert live["mailboxes"]["a@example.com"]["sender_name"] == "A"


def test_a_pending_delete_is_imported_only_when_named(cli: Cli) -> None:
    managed = {"managed": True, **URSULA, "password": {"env": "UI_PW"}}
    cli.write_live(
        providers={"legacy": {"managed": True, **LEGACY}},
        mailboxes={"ui@legacy.net": managed, "vi@example.com": {"provider": "corp", "owner": "v"}},
    )
    code, _, err = cli("import")
    assert code == 0
    assert "`legacy` is managed but not in the config: a pending delete" in err
    assert "`ui@legacy.net` is managed but not in the config" in err
    assert not (cli.root / "providers.d/legacy.yaml").exists()
    text = (cli.root / "mailboxes.d/imported.yaml").read_text()
    assert "vi@example.com" in text and "ui@legacy.net" not in text
    code, _out, err = cli("import", "legacy", "UI@legacy.net")
    assert code == 0, err
    assert (cli.root / "providers.d/legacy.yaml").exists()
    text = (cli.root / "mailboxes.d/imported-2.yaml").read_text()
    assert "ui@legacy.net" in text and "env: UI_PW" in text, "its own reference, not invented"
    code, _, err = cli("import", "nobody@nowhere.example")
    assert code == 1 and "not in the live state: nobody@nowhere.example" in err


def test_a_mailbox_whose_provider_is_a_pending_delete_is_not_half_imported(cli: Cli) -> None:
    cli.write_live(
        providers={"legacy": {"managed": True, **LEGACY}},
        mailboxes={"ui@legacy.net": URSULA},
    )
    code, _out, err = cli("import")
    assert code == 0
    assert "`ui@legacy.net` is not imported: its provider `legacy`" in err
    assert "mailgitops import legacy ui@legacy.net" in err
    assert cli("validate", state=False)[0] == 0


def _keep_box(address: str) -> dict[str, str]:
    return {
        "mailboxes.d/k.yaml": f"mailboxes:\n  - address: {address}\n    owner: k\n"
        "    password: {keep: live}\n"
    }


def test_keep_live_on_a_new_mailbox_is_refused(cli: Cli) -> None:
    tree(cli.root, _keep_box("k@example.com"))
    assert cli("validate", state=False)[0] == 0
    code, _out, err = cli("plan")
    assert code == 1 and "there is no password to keep" in err
    code, _, err = cli("apply", "--auto-approve")
    assert code == 1 and "there is no password to keep" in err
    assert not cli.state.exists()


@pytest.mark.parametrize(
    "bad",
    ["{keep: yes}", "{keep: live, env: X}", "{keep: live, version: 2}", "{keep: }"],
)
def test_keep_takes_only_live(cli: Cli, bad: str) -> None:
    tree(
        cli.root,
        {
            "mailboxes.d/k.yaml": _keep_box("k@example.com")["mailboxes.d/k.yaml"].replace(
                "{keep: live}", bad
            )
        },
    )
    code, out, _ = cli("validate", state=False)
    assert code == 1 and "mailboxes.d/k.yaml:4:" in out


def test_keep_live_on_an_adopt_keeps_the_live_reference(cli: Cli) -> None:
    live_box: dict[str, Any] = {
        "provider": "corp",
        "owner": "k",
        "login": "k@example.com",
        "password": {"env": "OLD_PW", "version": 3},
        "send_emails": True,
        "default": False,
        "sync": {"enabled": True, "period": "week", "folders": ["INBOX"]},
        "shared_with": [],
    }
    cli.write_live(providers={}, mailboxes={"k@example.com": live_box})
    tree(cli.root, _keep_box("k@example.com"))
    code, plan = cli.plan_json()
    assert [(c["action"], c["kind"], c["diff"]) for c in plan["changes"]] == [
        ("create", "provider", plan["changes"][0]["diff"]),
        ("adopt", "mailbox", []),
    ]
    code, _, err = cli("apply", "--auto-approve")
    assert code == 0, err  # OLD_PW is not set: nothing is delivered
    assert cli.live()["mailboxes"]["k@example.com"]["password"] == {"env": "OLD_PW", "version": 3}
