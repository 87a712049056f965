"""End to end through the CLI: every row of SPEC §4's table, the refusals, convergence."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
from helpers import CORP, OTHER, TEAM, Cli, standard, tree


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("ALICE_PW", "alice-secret-value")
    monkeypatch.setenv("BOB_PW", "bob-secret-value")
    return Cli(standard(tmp_path), capsys)


def _apply_with_carl_on_other(cli: Cli) -> None:
    """Live: the standard config plus provider `other` with one mailbox of the config."""
    carl = (
        "mailboxes:\n  - address: carl@other.com\n    owner: carl\n    password: {env: ALICE_PW}\n"
    )
    tree(cli.root, {"providers.d/other.yaml": OTHER, "mailboxes.d/o.yaml": carl})
    assert cli("apply", "--auto-approve")[0] == 0


def _actions(plan: dict[str, object]) -> list[tuple[str, str, str]]:
    return [(c["action"], c["kind"], c["id"]) for c in plan["changes"]]  # type: ignore[index,union-attr]


def test_create_apply_converges(cli: Cli) -> None:
    code, plan = cli.plan_json()
    assert code == 0
    assert _actions(plan) == [
        ("create", "provider", "corp"),
        ("create", "mailbox", "alice@example.com"),
        ("create", "mailbox", "bob@example.com"),
    ]
    assert plan["summary"] == {"create": 3, "update": 0, "delete": 0, "adopt": 0}
    assert not cli.state.exists(), "plan must never create the state"
    code, out, _ = cli("plan")
    assert code == 0
    assert out.rstrip().endswith("Plan: 3 to add, 0 to change, 0 to destroy, 0 to adopt.")
    assert cli("plan", "--detailed-exitcode")[0] == 2
    code, out, err = cli("apply", "--auto-approve")
    assert code == 0, err
    assert "Apply complete!" in out
    live = cli.live()
    assert live["serial"] == 1 and live["lineage"]
    assert live["mailboxes"]["alice@example.com"] == {
        "managed": True,
        "provider": "corp",
        "owner": "alice",
        "login": "alice@example.com",
        "password": {"env": "ALICE_PW"},
        "send_emails": True,
        "default": False,
        "sync": {"enabled": True, "period": "week", "folders": ["INBOX"]},
        "shared_with": [],
    }
    assert live["providers"]["corp"]["imap"] == {
        "host": "imap.example.com",
        "security": "ssl_tls",
        "port": 993,
    }
    assert stat.S_IMODE(os.stat(cli.state).st_mode) == 0o600
    code, out, _ = cli("plan")
    assert code == 0 and out.rstrip().endswith("No changes.")
    assert cli("plan", "--detailed-exitcode")[0] == 0
    code, out, _ = cli("apply", "--auto-approve")
    assert code == 0 and cli.live()["serial"] == 1, "no change, no new serial"


def test_update_has_attribute_diff(cli: Cli) -> None:
    assert cli("apply", "--auto-approve")[0] == 0
    tree(
        cli.root,
        {
            "providers.d/corp.yaml": CORP.replace(
                "imap:\n  host: imap.example.com\n",
                "imap:\n  host: imap.example.com\n  security: starttls\n",
            )
        },
    )
    code, plan = cli.plan_json()
    assert code == 0
    assert _actions(plan) == [("update", "provider", "corp")]
    diff = {d["path"]: (d["before"], d["after"]) for d in plan["changes"][0]["diff"]}
    assert diff == {"imap.security": ("ssl_tls", "starttls"), "imap.port": (993, 143)}
    code, out, _ = cli("plan")
    assert "imap.port" in out and "993" in out and "143" in out and "->" in out
    assert "Plan: 0 to add, 1 to change, 0 to destroy, 0 to adopt." in out
    assert cli("apply", "--auto-approve")[0] == 0
    assert cli("plan")[1].rstrip().endswith("No changes.")


def test_adopt_unmanaged_with_diff_and_owner_change(cli: Cli) -> None:
    cli.write_live(
        providers={},
        mailboxes={"Alice@Example.com": {"provider": "corp", "owner": "mallory"}},
    )
    code, plan = cli.plan_json()
    assert code == 0
    adopt = next(c for c in plan["changes"] if c["action"] == "adopt")
    assert adopt["id"] == "alice@example.com"
    assert adopt["live_key"] == "Alice@Example.com"
    paths = {d["path"] for d in adopt["diff"]}
    assert {"owner", "login", "password"} <= paths
    assert any("owner change: mallory -> alice" in n for n in adopt["notes"])
    assert cli("apply", "--auto-approve")[0] == 0
    live = cli.live()
    assert "Alice@Example.com" not in live["mailboxes"]
    assert live["mailboxes"]["alice@example.com"]["managed"] is True
    assert live["mailboxes"]["alice@example.com"]["owner"] == "alice"
    assert cli("plan")[1].rstrip().endswith("No changes.")


def test_delete_managed_and_leave_unmanaged_alone(cli: Cli) -> None:
    assert cli("apply", "--auto-approve")[0] == 0
    live = cli.live()
    live["mailboxes"]["zed@example.com"] = {"provider": "corp", "owner": "zed"}  # made in the UI
    cli.state.write_text(json.dumps(live))
    tree(cli.root, {"mailboxes.d/team.yaml": TEAM.split("  - address: bob")[0]})
    _code, plan = cli.plan_json()
    assert _actions(plan) == [("delete", "mailbox", "bob@example.com")]
    assert plan["unmanaged"] == [{"kind": "mailbox", "id": "zed@example.com", "provider": "corp"}]
    _code, out, _ = cli("plan")
    assert "zed@example.com" in out
    assert cli("apply", "--auto-approve")[0] == 0
    live = cli.live()
    assert "bob@example.com" not in live["mailboxes"]
    assert live["mailboxes"]["zed@example.com"] == {"provider": "corp", "owner": "zed"}


def test_deletion_rule_outside_mailbox(cli: Cli) -> None:
    tree(cli.root, {"providers.d/other.yaml": OTHER})
    assert cli("apply", "--auto-approve")[0] == 0
    live = cli.live()
    live["mailboxes"]["ui@other.com"] = {"provider": "other", "owner": "ursula"}
    cli.state.write_text(json.dumps(live))
    before = cli.state.read_bytes()
    (cli.root / "providers.d/other.yaml").unlink()
    code, _out, err = cli("plan")
    assert code == 1
    assert "cannot delete provider `other`" in err
    assert "ui@other.com (created outside mailgitops)" in err
    code, plan = cli.plan_json()
    assert code == 1 and plan["refusals"][0]["rule"] == "deletion-rule"
    code, _, err = cli("apply", "--auto-approve")
    assert code == 1 and "ui@other.com" in err
    assert cli.state.read_bytes() == before, "a refused plan applies nothing"


def test_deletion_rule_config_mailbox_names_file_line(cli: Cli) -> None:
    _apply_with_carl_on_other(cli)
    (cli.root / "providers.d/other.yaml").unlink()
    code, _out, err = cli("plan")
    assert code == 1
    assert "cannot delete provider `other`" in err
    assert "carl@other.com (mailboxes.d/o.yaml:2)" in err


def test_move_mailboxes_and_delete_provider_in_one_plan(cli: Cli) -> None:
    _apply_with_carl_on_other(cli)
    (cli.root / "providers.d/other.yaml").unlink()
    tree(
        cli.root,
        {
            "mailboxes.d/o.yaml": "mailboxes:\n  - address: carl@other.com\n"
            "    owner: carl\n    provider: corp\n    password: {env: ALICE_PW}\n"
        },
    )
    code, plan = cli.plan_json()
    assert code == 0, plan["refusals"]
    assert _actions(plan) == [
        ("update", "mailbox", "carl@other.com"),
        ("delete", "provider", "other"),
    ]
    assert cli("apply", "--auto-approve")[0] == 0
    assert "other" not in cli.live()["providers"]
    assert cli("plan")[1].rstrip().endswith("No changes.")


def test_saved_plan_applies_and_stale_plan_is_refused(cli: Cli, tmp_path: Path) -> None:
    planfile = tmp_path / "plan.json"
    assert cli("plan", "--out", str(planfile))[0] == 0
    assert stat.S_IMODE(os.stat(planfile).st_mode) == 0o600
    code, _out, err = cli("apply", str(planfile))
    assert code == 0, err
    assert cli.live()["serial"] == 1
    # replaying the first plan (made against an empty state) is refused (Terraform #24078)
    code, _, err = cli("apply", str(planfile))
    assert code == 1 and "stale plan" in err and "empty state" in err
    # a plan made at serial 1 is stale once someone else applied
    tree(cli.root, {"providers.d/other.yaml": OTHER})
    assert cli("plan", "--out", str(planfile))[0] == 0
    tree(cli.root, {"providers.d/corp.yaml": CORP + "display_name: Corp\n"})
    assert cli("apply", "--auto-approve")[0] == 0
    before = cli.state.read_bytes()
    code, _, err = cli("apply", str(planfile))
    assert code == 1 and "stale plan" in err and "serial 1 to 2" in err
    assert cli.state.read_bytes() == before


def test_plan_stale_after_edit_outside_apply(cli: Cli, tmp_path: Path) -> None:
    assert cli("apply", "--auto-approve")[0] == 0
    tree(cli.root, {"providers.d/other.yaml": OTHER})
    planfile = tmp_path / "p.json"
    assert cli("plan", "--out", str(planfile))[0] == 0
    live = cli.live()
    live["mailboxes"]["ui@example.com"] = {"provider": "corp", "owner": "u"}  # same serial
    cli.state.write_text(json.dumps(live))
    code, _, err = cli("apply", str(planfile))
    assert code == 1 and "content changed" in err


def test_state_checksum_of_a_large_state(cli: Cli, tmp_path: Path) -> None:
    """The checksum a plan records is sha256 of the state's canonical JSON (sorted keys, no
    spaces), even when it is hashed a thousand entries at a time; an edit to one entry of
    thousands makes a saved plan stale."""
    unmanaged = {
        f"u{i:05d}@example.com": {"provider": "corp", "owner": f"o{i}", "sender_name": "Ü"}
        for i in range(2500)
    }
    cli.write_live({}, unmanaged, serial=3)
    code, plan = cli.plan_json()
    live = cli.live()
    canonical = json.dumps(live, sort_keys=True, separators=(",", ":"))
    assert code == 0 and plan["state"]["checksum"] == hashlib.sha256(canonical.encode()).hexdigest()
    planfile = tmp_path / "p.json"
    assert cli("plan", "--out", str(planfile))[0] == 0
    live["mailboxes"]["u01234@example.com"]["owner"] = "someone-else"
    cli.state.write_text(json.dumps(live))
    code, _, err = cli("apply", "--auto-approve", str(planfile))
    assert code == 1 and "content changed" in err


def test_tampered_plan_file_is_refused(cli: Cli, tmp_path: Path) -> None:
    planfile = tmp_path / "p.json"
    assert cli("plan", "--out", str(planfile))[0] == 0
    data = json.loads(planfile.read_text())
    data["changes"][0]["after"]["imap"]["host"] = "evil.example.net"
    planfile.write_text(json.dumps(data))
    code, _, err = cli("apply", str(planfile))
    assert code == 1 and "modified after it was written" in err
    planfile.write_text("{not json")
    code, _, err = cli("apply", str(planfile))
    assert code == 1 and "not a mailgitops plan file" in err
    assert not cli.state.exists()


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{",
        b"[]",
        b'{"format_version": 9}',
        b"\xff\xfe",
        b'{"format_version": 1, "lineage": "x", '
        b'"serial": 1, "providers": {}, "mailboxes": '
        b'{"a@b.c": {"owner": "a"}}}',
    ],
)
def test_corrupt_state_is_an_error_and_never_overwritten(cli: Cli, content: bytes) -> None:
    cli.state.write_bytes(content)
    for argv in (("plan",), ("apply", "--auto-approve"), ("show",)):
        code, _out, err = cli(*argv)
        assert code == 1, argv
        assert str(cli.state) in err or cli.state.name in err
        assert "Traceback" not in err
    assert cli.state.read_bytes() == content


def test_apply_without_tty_needs_auto_approve(cli: Cli) -> None:
    code, _, err = cli("apply")
    assert code == 1 and "--auto-approve" in err
    assert not cli.state.exists()


def test_login_format_change_updates_logins_with_a_note(cli: Cli) -> None:
    assert cli("apply", "--auto-approve")[0] == 0
    tree(cli.root, {"providers.d/corp.yaml": CORP + "login_format: mailbox_name\n"})
    _code, plan = cli.plan_json()
    mailbox_changes = [c for c in plan["changes"] if c["kind"] == "mailbox"]
    assert [c["id"] for c in mailbox_changes] == ["alice@example.com", "bob@example.com"]
    alice = mailbox_changes[0]
    assert alice["diff"] == [{"path": "login", "before": "alice@example.com", "after": "alice"}]
    assert "login_format of provider `corp`" in alice["notes"][0]


def test_secret_rotation_and_missing_secret(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli("apply", "--auto-approve")[0] == 0
    tree(
        cli.root,
        {"mailboxes.d/team.yaml": TEAM.replace("{env: BOB_PW}", "{env: BOB_PW, version: 2}")},
    )
    code, plan = cli.plan_json()
    (change,) = plan["changes"]
    assert change["diff"] == [
        {
            "path": "password",
            "before": {"env": "BOB_PW"},
            "after": {"env": "BOB_PW", "version": "2"},
            "sensitive": True,
        }
    ]
    code, out, _ = cli("plan")
    assert "password" in out and "(sensitive" in out
    monkeypatch.delenv("BOB_PW")
    code, out, err = cli("plan")
    assert code == 0 and "env:BOB_PW" in out, "plan works without secrets and says which"
    before = cli.state.read_bytes()
    code, _, err = cli("apply", "--auto-approve")
    assert code == 1 and "env:BOB_PW" in err and "nothing was written" in err
    assert cli.state.read_bytes() == before


def test_plan_with_invalid_config_fails(cli: Cli) -> None:
    tree(cli.root, {"mailboxes.d/bad.yaml": "mailboxes:\n  - address: x@example.com\n"})
    code, _out, err = cli("plan")
    assert code == 1
    assert "mailboxes.d/bad.yaml:2:5: error: missing required key `owner`" in err
    assert not cli.state.exists()


def test_show_lists_managed_and_unmanaged(cli: Cli) -> None:
    assert cli("apply", "--auto-approve")[0] == 0
    live = cli.live()
    live["mailboxes"]["ui@example.com"] = {"provider": "corp", "owner": "u"}
    cli.state.write_text(json.dumps(live))
    code, out, _ = cli("show")
    assert code == 0 and "ui@example.com (unmanaged)" in out and "alice@example.com" in out
    code, out, _ = cli("show", "--format", "json")
    assert json.loads(out)["mailboxes"]["ui@example.com"] == {"provider": "corp", "owner": "u"}


def test_resolve(cli: Cli) -> None:
    code, out, _ = cli("resolve", "New.Person@Example.com", state=False)
    assert code == 0
    assert "provider corp" in out and "imap.example.com:993" in out
    assert "new.person@example.com" in out
    code, out, err = cli("resolve", "x@nowhere.org", state=False)
    assert code == 1 and "nowhere.org" in err
    code, out, _ = cli("resolve", "a@example.com", "--format", "json", state=False)
    assert json.loads(out)["settings"]["smtp"]["port"] == 465


def test_import_then_adopt_then_nothing(cli: Cli) -> None:
    cli.write_live(
        providers={
            "legacy": {
                "service_type": "imap",
                "domains": ["legacy.net"],
                "imap": {"host": "imap.legacy.net", "security": "starttls", "port": 143},
                "smtp": {"host": "smtp.legacy.net", "security": "starttls", "port": 587},
            }
        },
        mailboxes={"ui@legacy.net": {"provider": "legacy", "owner": "ursula"}},
    )
    code, out, _ = cli("import")
    assert code == 0 and "providers.d/legacy.yaml" in out
    assert (cli.root / "mailboxes.d/imported.yaml").exists()
    assert cli("validate", state=False)[0] == 0
    code, plan = cli.plan_json()
    adopts = {(c["kind"], c["id"]) for c in plan["changes"] if c["action"] == "adopt"}
    assert adopts == {("provider", "legacy"), ("mailbox", "ui@legacy.net")}
    assert all(c["action"] in ("adopt", "create") for c in plan["changes"])
    os.environ["UI_LEGACY_NET_PASSWORD"] = "x"
    try:
        assert cli("apply", "--auto-approve")[0] == 0
    finally:
        del os.environ["UI_LEGACY_NET_PASSWORD"]
    assert cli("plan")[1].rstrip().endswith("No changes.")
    code, out, _ = cli("import")
    assert "Nothing to import" in out


def test_state_location_from_env_and_settings(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    tree(cli.root, {"mailgitops.yaml": "state:\n  backend: file\n  path: state/live.json\n"})
    assert cli("apply", "--auto-approve", state=False)[0] == 0
    assert (cli.root / "state/live.json").exists()
    other = cli.root / "env-state.json"
    monkeypatch.setenv("MAILGITOPS_STATE", str(other))
    assert cli("apply", "--auto-approve", state=False)[0] == 0
    assert other.exists()


def test_failed_json_plan_is_still_one_json_document(cli: Cli) -> None:
    _apply_with_carl_on_other(cli)
    (cli.root / "providers.d/other.yaml").unlink()
    code, out, err = cli("plan", "--format", "json")
    assert code == 1
    doc = json.loads(out)
    assert doc["diagnostics"][0]["rule"] == "no-provider"
    assert doc["refusals"][0]["rule"] == "deletion-rule"
    assert doc["refusals"][0]["details"] == ["carl@other.com (mailboxes.d/o.yaml:2)"]
    assert "cannot delete provider `other`" in err


def test_import_never_overwrites(cli: Cli) -> None:
    cli.write_live(
        providers={"corp-old": {"service_type": "imap"}},
        mailboxes={"ui@example.com": {"provider": "corp", "owner": "ursula"}},
    )
    mine = "# mine\nmailboxes: []\n"
    tree(
        cli.root,
        {"providers.d/corp-old.yaml": "# a file of mine\n", "mailboxes.d/imported.yaml": mine},
    )
    code, out, err = cli("import")
    assert code == 0
    assert "providers.d/corp-old.yaml exists but defines no provider `corp-old`" in err
    assert (cli.root / "providers.d/corp-old.yaml").read_text() == "# a file of mine\n"
    assert (cli.root / "mailboxes.d/imported.yaml").read_text() == mine
    assert "wrote mailboxes.d/imported-2.yaml" in out
    assert "ui@example.com" in (cli.root / "mailboxes.d/imported-2.yaml").read_text()
