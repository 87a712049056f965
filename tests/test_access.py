"""Access rules end to end through the CLI: each right allowed and refused, the actor from
--actor and MAILGITOPS_ACTOR, mixed plans, saved plans applied by someone else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import CORP, OTHER, TEAM, Cli, standard, tree

ACCESS = "access:\n  administrators: [root]\n  mailbox_managers: [mia]\n"
ALICE = "  - address: alice@example.com\n    owner: alice\n    password: {env: ALICE_PW}\n"


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("ALICE_PW", "alice-secret-value")
    monkeypatch.setenv("BOB_PW", "bob-secret-value")
    return Cli(standard(tmp_path / "repo", **{"mailgitops.yaml": ACCESS}), capsys)


@pytest.fixture
def live(cli: Cli) -> Cli:
    """The standard config applied by an administrator."""
    code, _, err = cli("apply", "--auto-approve", "--actor", "root")
    assert code == 0, err
    return cli


def _edit_alice(cli: Cli, extra: str = "", owner: str = "alice") -> None:
    mailbox = ALICE.replace("owner: alice", f"owner: {owner}") + extra
    tree(cli.root, {"mailboxes.d/team.yaml": TEAM.replace(ALICE, mailbox)})


def _assert_refused(cli: Cli, actor: str, *expected: str) -> str:
    """plan and apply both refuse for `actor`, the message names each expected text, and
    the state is left byte for byte as it was."""
    before = cli.state.read_bytes() if cli.state.exists() else None
    code, out, err = cli("plan", "--actor", actor)
    assert code == 1, out + err
    assert "Refused:" in out
    for text in expected:
        assert text in err, f"{text!r} not in {err!r}"
    code, _, err = cli("apply", "--auto-approve", "--actor", actor)
    assert code == 1 and "the plan is refused" in err
    for text in expected:
        assert text in err
    after = cli.state.read_bytes() if cli.state.exists() else None
    assert after == before, "a refused plan applies nothing"
    return err


def _assert_applies(cli: Cli, actor: str) -> None:
    code, out, err = cli("plan", "--actor", actor)
    assert code == 0, err
    code, out, err = cli("apply", "--auto-approve", "--actor", actor)
    assert code == 0, err
    assert "Apply complete!" in out
    assert cli("plan", "--actor", actor)[1].rstrip().endswith("No changes.")


def test_no_actor_is_refused(cli: Cli) -> None:
    for argv in (("plan",), ("apply", "--auto-approve"), ("plan", "--actor", "  ")):
        code, out, err = cli(*argv)
        assert code == 1, argv
        assert "--actor NAME" in err and "MAILGITOPS_ACTOR" in err
        assert out == ""
    assert not cli.state.exists()


def test_provider_create_needs_an_administrator(cli: Cli) -> None:
    err = _assert_refused(
        cli, "alice", "create provider `corp` (providers.d/corp.yaml:1): needs an administrator"
    )
    assert "actor `alice` (neither administrator nor mailbox manager)" in err
    _assert_applies(cli, "root")


def test_provider_change_by_admin_and_non_admin(live: Cli) -> None:
    tree(live.root, {"providers.d/corp.yaml": CORP + "display_name: Corporate\n"})
    for actor in ("alice", "mia"):  # owners and mailbox managers alike
        _assert_refused(live, actor, "update provider `corp`", "needs an administrator")
    code, plan = live.plan_json("--actor", "mia")
    assert code == 1
    (refusal,) = plan["refusals"]
    assert refusal["rule"] == "access"
    assert refusal["details"] == [
        "update provider `corp` (providers.d/corp.yaml:1): needs an administrator"
    ]
    _assert_applies(live, "root")


def test_provider_delete_needs_an_administrator(live: Cli) -> None:
    tree(live.root, {"providers.d/other.yaml": OTHER})
    assert live("apply", "--auto-approve", "--actor", "root")[0] == 0
    (live.root / "providers.d/other.yaml").unlink()
    _assert_refused(live, "mia", "delete provider `other`: needs an administrator")
    _assert_applies(live, "root")


def test_mailbox_change_by_owner_stranger_and_manager(live: Cli) -> None:
    _edit_alice(live, "    sender_name: Alice Smith\n")
    _assert_refused(
        live,
        "eve",
        "update mailbox `alice@example.com` (mailboxes.d/team.yaml:2): needs an "
        "administrator, a mailbox manager, or its owner `alice`",
    )
    # bob owns another mailbox of the same file: that gives no right over alice's
    _assert_refused(live, "bob", "update mailbox `alice@example.com`")
    _assert_applies(live, "alice")
    _edit_alice(live, "    sender_name: A. Smith\n")
    _assert_applies(live, "mia")
    _edit_alice(live, "    sender_name: Alice\n")
    _assert_applies(live, "ROOT")  # names compare case-insensitively


def test_mailbox_create_and_delete(live: Cli) -> None:
    tree(
        live.root,
        {
            "mailboxes.d/carl.yaml": "mailboxes:\n  - address: carl@example.com\n    owner: carl\n"
            "    password: {env: ALICE_PW}\n"
        },
    )
    _assert_refused(live, "alice", "create mailbox `carl@example.com`", "its owner `carl`")
    _assert_applies(live, "carl")
    (live.root / "mailboxes.d/carl.yaml").unlink()
    _assert_refused(live, "alice", "delete mailbox `carl@example.com`: needs")
    _assert_applies(live, "mia")


def test_change_of_owner_needs_both_owners_or_a_manager(live: Cli) -> None:
    _edit_alice(live, owner="carl")
    needs = (
        "update mailbox `alice@example.com` (mailboxes.d/team.yaml:2): needs an "
        "administrator, a mailbox manager, or both its owner before (`alice`) and after (`carl`)"
    )
    for actor in ("alice", "carl", "eve"):
        _assert_refused(live, actor, needs)
    _assert_applies(live, "mia")
    assert live.live()["mailboxes"]["alice@example.com"]["owner"] == "carl"


def test_adopting_another_users_mailbox_is_an_owner_change(cli: Cli) -> None:
    cli.write_live(
        providers={},
        mailboxes={"alice@example.com": {"provider": "corp", "owner": "mallory"}},
    )
    tree(cli.root, {"providers.d/corp.yaml": CORP})
    code, _, err = cli("plan", "--actor", "alice")
    assert code == 1
    assert "adopt mailbox `alice@example.com`" in err
    assert "both its owner before (`mallory`) and after (`alice`)" in err
    assert "create provider `corp`" in err


def test_sharing_is_the_owners_or_an_administrators_call(live: Cli) -> None:
    _edit_alice(live, "    shared_with:\n      - user: bob\n        rights: [read]\n")
    err = _assert_refused(
        live,
        "mia",
        "update mailbox `alice@example.com` (mailboxes.d/team.yaml:2): its sharing "
        "(shared_with) changes: needs an administrator or its owner `alice`",
    )
    assert "actor `mia` (mailbox manager)" in err
    # the user it is shared with gets no say either
    _assert_refused(live, "bob", "needs an administrator, a mailbox manager, or its owner")
    _assert_applies(live, "alice")
    # withdrawing a share is a change of sharing too
    _edit_alice(live)
    _assert_refused(live, "mia", "its sharing (shared_with) changes")
    _assert_applies(live, "root")


def test_manager_may_change_a_shared_mailbox_without_touching_sharing(live: Cli) -> None:
    shares = "    shared_with:\n      - user: bob\n        rights: [read, send]\n"
    _edit_alice(live, shares)
    _assert_applies(live, "alice")
    reordered = shares.replace("[read, send]", "[send, read]")
    _edit_alice(live, reordered + "    signature: Alice\n")
    _assert_applies(live, "mia")  # the same grants in another order are no change of sharing


def test_actor_from_environment(live: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    tree(live.root, {"providers.d/corp.yaml": CORP + "display_name: Corporate\n"})
    monkeypatch.setenv("MAILGITOPS_ACTOR", "alice")
    code, _, err = live("plan")
    assert code == 1 and "actor `alice`" in err
    assert live("plan", "--actor", "root")[0] == 0, "--actor wins over the environment"
    monkeypatch.setenv("MAILGITOPS_ACTOR", "root")
    assert live("plan")[0] == 0
    assert live("apply", "--auto-approve")[0] == 0
    assert live.live()["providers"]["corp"]["display_name"] == "Corporate"


def test_mixed_plan_applies_nothing(live: Cli) -> None:
    tree(live.root, {"providers.d/corp.yaml": CORP + "display_name: Corporate\n"})
    _edit_alice(live, "    sender_name: Alice Smith\n")
    err = _assert_refused(live, "alice", "update provider `corp`")
    assert "may not make 1 change(s)" in err
    assert "update mailbox `alice@example.com`" not in err, "only refused changes are listed"
    code, plan = live.plan_json("--actor", "alice")
    assert code == 1 and len(plan["changes"]) == 2
    assert len(plan["refusals"][0]["details"]) == 1


def test_saved_plan_is_checked_against_who_applies(live: Cli, tmp_path: Path) -> None:
    tree(live.root, {"providers.d/corp.yaml": CORP + "display_name: Corporate\n"})
    planfile = tmp_path / "plan.json"
    assert live("plan", "--actor", "root", "--out", str(planfile))[0] == 0
    before = live.state.read_bytes()
    code, _, err = live("apply", str(planfile), "--actor", "alice")
    assert code == 1 and "update provider `corp` (providers.d/corp.yaml:1): needs an admin" in err
    code, _, err = live("apply", str(planfile))
    assert code == 1 and "--actor NAME" in err
    assert live.state.read_bytes() == before
    code, out, err = live("apply", str(planfile), "--actor", "root")
    assert code == 0 and "Apply complete!" in out, err


def test_saved_plan_refused_for_its_author_may_be_applied_by_an_administrator(
    live: Cli, tmp_path: Path
) -> None:
    tree(live.root, {"providers.d/corp.yaml": CORP + "display_name: Corporate\n"})
    planfile = tmp_path / "plan.json"
    code, _, _ = live("plan", "--actor", "alice", "--out", str(planfile))
    assert code == 1
    assert json.loads(planfile.read_text())["refusals"][0]["rule"] == "access"
    code, _, err = live("apply", str(planfile), "--actor", "root")
    assert code == 0, err
    assert live.live()["providers"]["corp"]["display_name"] == "Corporate"


def test_saved_plan_is_not_applied_past_a_broken_access_section(live: Cli, tmp_path: Path) -> None:
    tree(live.root, {"providers.d/corp.yaml": CORP + "display_name: Corporate\n"})
    planfile = tmp_path / "plan.json"
    assert live("plan", "--actor", "root", "--out", str(planfile))[0] == 0
    before = live.state.read_bytes()
    tree(live.root, {"mailgitops.yaml": "access:\n  administrators: root\n"})
    code, _, err = live("apply", str(planfile), "--actor", "alice")
    # apply PLANFILE reads the whole config again (its desired entries must match it), so the
    # broken section is reported as config errors, before anything is planned.
    assert code == 1 and "nothing was planned" in err
    assert "mailgitops.yaml:2:" in err
    assert live.state.read_bytes() == before


def test_without_access_rules_nothing_changes(cli: Cli) -> None:
    (cli.root / "mailgitops.yaml").unlink()
    assert cli("plan")[0] == 0
    code, _, err = cli("apply", "--auto-approve", "--actor", "anyone")
    assert code == 0, err
