"""`plan` output end to end, for what only an applied state or a hand-made live entry shows:
attributes an update adds or removes, `plan --check` with no provider to check, and a secret
a live entry holds where the model does not put one."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import TEAM, Cli, standard, tree


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("ALICE_PW", "alice-secret-value")
    monkeypatch.setenv("BOB_PW", "bob-secret-value")
    return Cli(standard(tmp_path / "repo"), capsys)


def _applied_then_names_swapped(cli: Cli) -> None:
    """Live as the standard config; then alice gains a sender name and bob loses his."""
    assert cli("apply", "--auto-approve")[0] == 0
    swapped = TEAM.replace("    sender_name: Bob\n", "").replace(
        "    owner: alice\n", "    owner: alice\n    sender_name: Alice\n"
    )
    tree(cli.root, {"mailboxes.d/team.yaml": swapped})


def test_markdown_shows_both_sides_of_an_added_or_removed_attribute(cli: Cli) -> None:
    _applied_then_names_swapped(cli)
    code, out, err = cli("plan", "--format", "markdown")
    assert code == 0, err
    assert 'sender\\_name: (unset) → "Alice"' in out
    assert 'sender\\_name: "Bob" → (unset)' in out
    code, out, err = cli("plan")
    assert code == 0, err
    assert '+ sender_name = "Alice"' in out and '- sender_name = "Bob"' in out


def test_plan_check_without_a_provider_to_check(cli: Cli) -> None:
    """Only mailboxes change: nothing is connected to, and every format says so."""
    _applied_then_names_swapped(cli)
    no_checks = "Connection checks: the plan creates or changes no provider."
    code, out, err = cli("plan", "--check")
    assert code == 0, err
    assert no_checks in out.splitlines()
    code, out, err = cli("plan", "--check", "--format", "markdown")
    assert code == 0, err
    assert no_checks in out
    code, plan = cli.plan_json("--check")
    assert code == 0 and plan["checks"] == {"failed": 0, "providers": []}


def test_plan_without_check_says_nothing_of_checks(cli: Cli) -> None:
    _applied_then_names_swapped(cli)
    for fmt in ("text", "markdown"):
        code, out, err = cli("plan", "--format", fmt)
        assert code == 0, err
        assert "Connection checks" not in out
    assert "checks" not in cli.plan_json()[1]


def _live_corp() -> dict[str, object]:
    return {
        "managed": True,
        "service_type": "imap",
        "domains": ["example.com"],
        "imap": {"host": "imap.example.com", "security": "ssl_tls", "port": 993},
        "smtp": {"host": "smtp.example.com", "security": "ssl_tls", "port": 465},
    }


def test_a_secret_reference_inside_a_list_of_a_live_entry_is_hidden(cli: Cli) -> None:
    """A managed live mailbox that the config no longer has is deleted, and the plan lists
    what goes; a reference nested in a list of it (no attribute of the model) is still shown
    as `(sensitive)`, its name never."""
    tree(cli.root, {"mailboxes.d/team.yaml": "mailboxes: []\n"})
    old = {
        "managed": True,
        "provider": "corp",
        "owner": "old",
        "login": "old@example.com",
        "tokens": ["plain", {"env": "OLD_TOKEN_NAME"}],
    }
    cli.write_live({"corp": _live_corp()}, {"old@example.com": old})
    for fmt in ("text", "markdown"):
        code, out, err = cli("plan", "--format", fmt)
        assert code == 0, err
        assert "OLD_TOKEN_NAME" not in out + err
        assert "(sensitive)" in out
    code, out, _ = cli("plan")
    assert '- tokens = ["plain", (sensitive)]' in out


def test_adopting_entries_that_already_match_says_so(cli: Cli) -> None:
    """Live made outside mailgitops exactly as the config says: every change is an adopt
    with nothing to show but that sentence, in the text and in the Markdown table."""
    assert cli("apply", "--auto-approve")[0] == 0
    live = cli.live()
    unmanaged = {
        kind: {
            key: {k: v for k, v in entry.items() if k != "managed"} for key, entry in side.items()
        }
        for kind, side in (("providers", live["providers"]), ("mailboxes", live["mailboxes"]))
    }
    cli.write_live(unmanaged["providers"], unmanaged["mailboxes"])
    code, out, err = cli("plan", "--format", "markdown")
    assert code == 0, err
    assert out.count("(the live attributes already match the config)") == 3
    code, out, err = cli("plan")
    assert code == 0, err
    assert out.count("# the live attributes already match the config") == 3
    assert out.rstrip().endswith("Plan: 0 to add, 0 to change, 0 to destroy, 3 to adopt.")
