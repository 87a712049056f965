"""Issue 13: the holes found by probing the installed command as an attacker would (SPEC §9).
Each test is one of them, end to end through the CLI: hangs on secret files, client_id
references, terminal and log injection, Markdown notifications, states that crashed the tool,
`plan --out` and the lock writing where they must not, settings that could be dodged, and the
parse budget."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, python_env
from helpers import CORP, Cli, standard, tree

from mailgitops.config.budget import MAX_FILE_NODES, MAX_RUN_ERRORS
from mailgitops.schemacheck import MAX_ERRORS_PER_FILE

# Everything a terminal would interpret, or a reader would not see.
RAW_CONTROLS = ("\x1b", "\x07", "\x9b", "\u202e", "\u200b", "\r")


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("ALICE_PW", "alice-secret-value")
    monkeypatch.setenv("BOB_PW", "bob-secret-value")
    return Cli(standard(tmp_path / "repo"), capsys)


def _cli_process(root: Path, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The installed command in a process of its own: a hang is a failure, not a stuck run."""
    return subprocess.run(
        [sys.executable, "-m", "mailgitops", argv[0], "-C", str(root), *argv[1:]],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={
            **python_env(),
            "ALICE_PW": "a",
            "BOB_PW": "b",
            "MAILGITOPS_CACHE_DIR": str(root.parent / "cache"),
        },
        check=False,
    )


# -- secret files --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["fifo", "device", "directory"])
def test_a_secret_file_that_is_not_a_regular_file_is_refused_without_hanging(
    tmp_path: Path, kind: str
) -> None:
    root = standard(tmp_path / "repo")
    target = tmp_path / "special"
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "directory":
        target.mkdir()
    else:
        target = Path("/dev/zero")  # a character device that never ends
    team = (root / "mailboxes.d" / "team.yaml").read_text()
    (root / "mailboxes.d" / "team.yaml").write_text(
        team.replace("{env: BOB_PW}", f"{{file: {target}}}")
    )
    state = tmp_path / "live.json"
    plan = _cli_process(root, "plan", "--state", str(state))
    assert plan.returncode == 0, plan.stderr
    assert f"file:{target} (not a regular file" in plan.stdout
    apply = _cli_process(root, "apply", "--state", str(state), "--auto-approve")
    assert apply.returncode == 1
    assert "not a regular file" in apply.stderr and "this is a bug" not in apply.stderr
    assert not state.exists(), "nothing was written"


def test_a_client_id_reference_is_checked_like_every_secret_in_a_saved_plan(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = tmp_path / "shadow"
    outside.write_text("root:x:0:0\n")
    (cli.root / "secrets").mkdir()
    tree(
        cli.root,
        {
            "providers.d/goog.yaml": "name: goog\ndomains: [gmail.example]\n"
            "imap: {host: imap.gmail.example}\nsmtp: {host: smtp.gmail.example}\n"
            f"auth:\n  method: oauth2\n  client_id: {{file: {outside}}}\n"
            "  client_secret: {env: GOOG_SECRET}\n",
        },
    )
    monkeypatch.setenv("GOOG_SECRET", "s")
    planfile = tmp_path / "plan.json"
    assert cli("plan", "--out", str(planfile))[0] == 0
    tree(cli.root, {"mailgitops.yaml": "secrets:\n  file_root: secrets\n"})
    code, out, _ = cli("validate", state=False)
    assert code == 1 and "resolves outside secrets.file_root" in out
    code, _out, err = cli("apply", str(planfile))
    assert code == 1
    assert str(outside) in err and "secrets.file_root" in err
    assert not cli.state.exists()


def test_an_unreadable_client_id_stops_apply(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    tree(
        cli.root,
        {
            "providers.d/goog.yaml": "name: goog\ndomains: [gmail.example]\n"
            "imap: {host: imap.gmail.example}\nsmtp: {host: smtp.gmail.example}\n"
            "auth:\n  method: oauth2\n  client_id: {env: GOOG_ID}\n"
            "  client_secret: {env: GOOG_SECRET}\n",
        },
    )
    monkeypatch.setenv("GOOG_SECRET", "s")
    code, out, _ = cli("plan")
    assert code == 0 and "env:GOOG_ID (environment variable not set)" in out
    code, _, err = cli("apply", "--auto-approve")
    assert code == 1 and "env:GOOG_ID" in err and not cli.state.exists()


# -- terminal and log injection ------------------------------------------------------------


def _assert_clean(text: str) -> None:
    for ch in RAW_CONTROLS:
        assert ch not in text, f"raw {ch!r} in output"


@pytest.mark.parametrize("fmt", ["text", "github"])
def test_a_key_name_cannot_paint_the_terminal_or_forge_a_line(cli: Cli, fmt: str) -> None:
    evil_key = "x\x1b]0;pwned\x07\u202e\nOK: 0 provider(s), 0 mailbox(es): 0 error(s)"
    tree(cli.root, {"mailboxes.d/evil.yaml": f"mailboxes: []\n{json.dumps(evil_key)}: 1\n"})
    code, out, err = cli("validate", "--format", fmt, state=False)
    assert code == 1
    _assert_clean(out + err)
    assert not any(line.startswith("OK:") for line in out.splitlines())
    assert "\\u001b]0;pwned\\u0007\\u202e\\u000aOK:" in out


def test_a_file_name_cannot_paint_the_terminal(cli: Cli) -> None:
    tree(cli.root, {"mailboxes.d/\x1b[2J\x1b]0;title\x07\u202e.yaml": "mailboxes: [1]\n"})
    code, out, err = cli("validate", state=False)
    assert code == 1 and "mailboxes.d/\\u001b[2J" in out
    _assert_clean(out + err)


def test_live_names_are_shown_escaped(cli: Cli) -> None:
    # Identifiers with control characters are refused in a state (issue 12); what is left to
    # escape is text such as the state's own name, and every value in JSON.
    cli.state = cli.root / "live\x1b]0;t\x07\u202e\nOK.json"
    cli.write_live(
        {"p": {"service_type": "imap", "imap": {"host": "imap.example.com", "port": 993}}},
        {"ui@example.com": {"provider": "corp", "owner": "ursula", "signature": "\x1b[2J\x9b"}},
    )
    for argv in (("show",), ("show", "--format", "json"), ("plan",), ("plan", "--format", "json")):
        code, out, err = cli(*argv)
        assert code == 0, err
        _assert_clean(out + err)
    code, out, _ = cli("show")
    assert "live\\u001b]0;t\\u0007\\u202e\\u000aOK.json" in out
    code, out, _ = cli("show", "--format", "json")
    assert json.loads(out)["mailboxes"]["ui@example.com"]["signature"] == "\x1b[2J\x9b"


def test_a_state_path_from_the_settings_cannot_forge_a_line(cli: Cli) -> None:
    name = "x\nOK: 0 error(s)\x1b[2J.json"
    tree(cli.root, {"mailgitops.yaml": f"state:\n  backend: file\n  path: {json.dumps(name)}\n"})
    (cli.root / name).write_text("{")
    code, _, err = cli("plan", state=False)
    assert code == 1
    _assert_clean(err)
    assert not any(line.startswith("OK:") for line in err.splitlines())
    assert "x\\u000aOK: 0 error(s)\\u001b[2J.json: it is not valid JSON" in err


def test_markdown_notifies_no_one_and_links_nowhere(cli: Cli) -> None:
    team = (cli.root / "mailboxes.d" / "team.yaml").read_text()
    (cli.root / "mailboxes.d" / "team.yaml").write_text(
        team.replace("sender_name: Bob", 'sender_name: "@octocat @org/security-team #1 www.x.io"')
    )
    code, md, _ = cli("plan", "--format", "markdown")
    assert code == 0
    for needle in ("@octocat", "@org/security-team", "#1 ", "www.x", "bob@example"):
        assert needle not in md, needle
    assert "@&#8203;octocat" in md


# -- states that read() used to accept -----------------------------------------------------

BASE_LIVE = {
    "format_version": 1,
    "lineage": "11111111-2222-3333-4444-555555555555",
    "serial": 3,
    "providers": {},
    "mailboxes": {"ui@example.com": {"provider": "corp", "owner": "ursula"}},
}
ODD_STATES = {
    "nan-in-an-extra-attribute": json.dumps(BASE_LIVE).replace(
        '"owner": "ursula"', '"owner": "ursula", "extra": {"x": NaN}'
    ),
    "infinity": json.dumps(BASE_LIVE).replace('"owner": "ursula"', '"owner": "u", "x": -Infinity'),
    "lone-surrogate": json.dumps(BASE_LIVE).replace("ursula", "ursula\\ud800"),
    "4300-digit-serial": json.dumps(BASE_LIVE).replace('"serial": 3', '"serial": ' + "9" * 4300),
    "bigger-than-64-bits": json.dumps(BASE_LIVE).replace('"serial": 3', '"serial": ' + "9" * 19),
    "password-nested-in-imap": json.dumps(BASE_LIVE).replace(
        '"owner": "ursula"', '"owner": "u", "imap": {"password": "hunter2"}'
    ),
    "client-secret-in-a-list": json.dumps(BASE_LIVE).replace(
        '"owner": "ursula"', '"owner": "u", "x": [{"client_secret": {"value": "hunter2"}}]'
    ),
}


@pytest.mark.parametrize("case", sorted(ODD_STATES))
def test_a_state_with_values_no_state_holds_is_refused_clearly(cli: Cli, case: str) -> None:
    cli.state.write_text(ODD_STATES[case])
    before = cli.state.read_bytes()
    for argv in (("show",), ("show", "--format", "json"), ("plan",), ("apply", "--auto-approve")):
        code, out, err = cli(*argv)
        assert code == 1, (argv, out)
        assert f"cannot use state {cli.state}" in err
        assert "this is a bug" not in err and "hunter2" not in out + err
    assert cli.state.read_bytes() == before


def test_a_non_utf8_dsn_password_variable_is_a_clear_error(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree(
        cli.root,
        {
            "mailgitops.yaml": "state:\n  backend: postgres\n"
            "  dsn: host=/nonexistent-dir dbname=x\n  password: {env: PGPW}\n"
        },
    )
    monkeypatch.setenv("PGPW", "pw\udcff")  # the byte 0xff, as Python hands it over
    code, _, err = cli("plan", state=False)
    assert code == 1
    assert "not valid UTF-8" in err and "this is a bug" not in err


# -- plan --out and the lock ---------------------------------------------------------------


def test_plan_out_never_writes_over_the_state_a_link_or_a_device(cli: Cli, tmp_path: Path) -> None:
    assert cli("apply", "--auto-approve")[0] == 0
    state = cli.state.read_bytes()
    notes = tmp_path / "notes.txt"
    notes.write_text("mine\n")
    link = tmp_path / "plan.json"
    link.symlink_to(notes)
    for target, reason in (
        (cli.state, "a file of the live state"),
        (Path(f"{cli.state}.lock"), "a file of the live state"),
        (link, "symbolic link"),
        (Path("/dev/null"), "not a regular file"),
    ):
        code, _, err = cli("plan", "--out", str(target))
        assert code == 1 and reason in err, err
    assert cli.state.read_bytes() == state
    assert link.is_symlink() and notes.read_text() == "mine\n"
    assert cli("plan", "--out", str(tmp_path / "ok.json"))[0] == 0


def test_a_state_link_to_a_non_state_leaves_no_lock_beside_its_target(
    cli: Cli, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "etc"
    elsewhere.mkdir()
    passwd = elsewhere / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/sh\n")
    cli.state.symlink_to(passwd)
    code, _, err = cli("apply", "--auto-approve")
    assert code == 1 and "cannot use state" in err
    assert sorted(p.name for p in elsewhere.iterdir()) == ["passwd"]


def test_a_lock_name_that_is_a_link_is_not_followed(cli: Cli, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    Path(f"{cli.state}.lock").symlink_to(victim)
    code, _, err = cli("apply", "--auto-approve")
    assert code == 1 and "lock file" in err
    assert victim.read_text() == "keep\n"


# -- settings that could be dodged ---------------------------------------------------------


@pytest.mark.parametrize("name", ["mailgitops.yml", ".mailgitops.yaml", "Mailgitops.YAML"])
def test_a_settings_file_under_another_name_is_an_error(cli: Cli, name: str) -> None:
    tree(cli.root, {name: "access:\n  administrators: [alice]\n"})
    code, out, _ = cli("validate", state=False)
    assert code == 1 and f"{name}:1:1: error:" in out and "[settings-name]" in out
    code, _, _ = cli("plan")
    assert code == 1
    code, _, _ = cli("plan")  # the cache does not hide it either
    assert code == 1


def test_settings_that_are_not_a_regular_file_are_an_error(cli: Cli) -> None:
    (cli.root / "mailgitops.yaml").mkdir()
    code, out, _ = cli("validate", state=False)
    assert code == 1 and "mailgitops.yaml:1:1: error: not a regular file" in out
    assert cli("plan")[0] == 1


def test_config_files_resolving_outside_the_root_are_errors(cli: Cli, tmp_path: Path) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text(CORP.replace("corp", "other"))
    (cli.root / "providers.d" / "other.yaml").symlink_to(outside)
    (cli.root / "mailboxes.d" / "elsewhere").symlink_to(tmp_path, target_is_directory=True)
    code, out, _ = cli("validate", state=False)
    assert code == 1
    assert "providers.d/other.yaml:1:1: error: the file resolves outside the config root" in out
    inside = cli.root / "providers.d" / "alias.yaml"
    inside.symlink_to(cli.root / "providers.d" / "corp.yaml")
    code, out, _ = cli("validate", state=False)
    assert "alias.yaml:1:1: error: the file resolves outside" not in out


def test_a_fifo_among_the_config_files_does_not_hang(tmp_path: Path) -> None:
    root = standard(tmp_path / "repo")
    os.mkfifo(root / "mailboxes.d" / "pipe.yaml")
    os.mkfifo(root / "mailgitops.yaml")
    done = _cli_process(root, "validate")
    assert done.returncode == 1
    assert "mailgitops.yaml:1:1: error: not a regular file" in done.stdout


# -- the parse budget ----------------------------------------------------------------------


def test_five_dense_hostile_files_are_refused_unread(cli: Cli) -> None:
    dense = "mailboxes: [" + "1," * 100_000 + "1]\n"
    tree(cli.root, {f"mailboxes.d/hostile-{i}.yaml": dense for i in range(5)})
    code, out, _ = cli("validate", state=False)
    assert code == 1
    assert out.count("denser than any config") == 5
    assert "[type]" not in out, "nothing of them was composed or checked"


def test_a_file_past_the_node_limit_is_refused_unread(cli: Cli) -> None:
    big = "mailboxes: [" + "11111," * (MAX_FILE_NODES + 10) + "1]\n"
    tree(cli.root, {"mailboxes.d/big.yaml": big})
    code, out, _ = cli("validate", state=False)
    assert code == 1 and "[too-many-nodes]" in out and "per file" in out


def test_files_after_too_many_errors_are_not_parsed(cli: Cli) -> None:
    errors = "mailboxes: [" + "1111, " * (MAX_ERRORS_PER_FILE * 2) + "1]\n"
    tree(cli.root, {f"mailboxes.d/bad-{i}.yaml": errors for i in range(3)})
    code, out, _ = cli("validate", state=False)
    assert code == 1
    assert MAX_RUN_ERRORS <= MAX_ERRORS_PER_FILE, "one hostile file exhausts the run"
    assert out.count("[too-many-errors]") == 1
    assert "mailboxes.d/bad-1.yaml:1:1: error: not read: the config already has" in out
    assert "mailboxes.d/team.yaml:1:1: error: not read" in out


def test_the_run_node_limit_is_raised_only_by_the_environment(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run's node budget counts every file together; MAILGITOPS_MAX_NODES (set by whoever
    runs CI) raises or lowers it, and a value that is not a number is a usage error."""
    monkeypatch.setenv("MAILGITOPS_MAX_NODES", "10")
    code, out, _ = cli("validate", state=False)
    assert code == 1 and "[parse-budget]" in out and "MAILGITOPS_MAX_NODES" in out
    monkeypatch.setenv("MAILGITOPS_MAX_NODES", "100_000")
    code, out, _ = cli("validate", state=False)
    assert code == 0, out
    monkeypatch.setenv("MAILGITOPS_MAX_NODES", "lots")
    code, _out, err = cli("validate", state=False)
    assert code == 1 and "MAILGITOPS_MAX_NODES must be a positive whole number" in err
