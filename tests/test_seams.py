"""Where the features of issues 12-16 meet: templates x render x the root guard, the state's
location x the config folders x saved plans, apply --format json x confirmation."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import python_env
from helpers import Cli, standard, tree
from mailservers import Hostile

from mailgitops.cli import main

MAILGITOPS = [sys.executable, "-m", "mailgitops"]


def test_render_refuses_a_template_that_links_out_of_the_root(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """validate refuses a config file that resolves outside the root; render must not print
    it either (a pull request's link to a file of the CI machine)."""
    root = standard(tmp_path / "repo")
    secret = tmp_path / "host-file"
    secret.write_text("ci-machine-secret-line\n")
    (root / "mailboxes.d" / "leak.yaml.j2").symlink_to(secret)
    for argv in (["render"], ["render", "mailboxes.d/leak.yaml.j2"]):
        code = main([argv[0], "-C", str(root), *argv[1:]])
        out, err = capsys.readouterr()
        assert code == 1
        assert "ci-machine-secret-line" not in out + err
        assert "mailboxes.d/leak.yaml.j2:1:1: error: the file resolves outside the config root" in (
            out + err
        )


def _settings_state(root: Path, path: str) -> None:
    (root / "mailgitops.yaml").write_text(f"state:\n  backend: file\n  path: {path}\n")


@pytest.mark.parametrize(
    "path", ["mailboxes.d/live.yaml", "providers.d/state.yaml", "data/state.json"]
)
def test_a_state_file_in_a_config_folder_is_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """A state at mailboxes.d/live.yaml was written by the first apply and then read as a
    mailboxes file: every later validate/plan failed on `format_version`, `serial`, ..."""
    monkeypatch.setenv("ALICE_PW", "a")
    monkeypatch.setenv("BOB_PW", "b")
    root = standard(tmp_path)
    (root / "data").mkdir()
    _settings_state(root, path)
    cli = Cli(root, capsys)
    for argv in (["apply", "--auto-approve"], ["plan"], ["state", "list"]):
        code = main([*argv, "-C", str(root)])
        out, err = capsys.readouterr()
        assert code == 1, out
        assert f"/{path} is inside {path.split('/', maxsplit=1)[0]}/ of the config root" in err
    assert not (root / path).exists() and not (root / f"{path}.lock").exists()
    code, out, _ = cli("validate", state=False)
    assert code == 0, out


def test_a_saved_plan_cannot_point_apply_at_a_state_in_a_config_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """apply PLANFILE takes the state's place from the plan file when nothing else names one;
    a pull request's plan artifact must not make it write the state where the config is."""
    monkeypatch.setenv("ALICE_PW", "a")
    monkeypatch.setenv("BOB_PW", "b")
    monkeypatch.chdir(tmp_path)
    root = standard(tmp_path / "repo")
    assert main(["plan", "-C", str(root), "--out", "p.json"]) == 0
    data = json.loads(Path("p.json").read_text())
    data["state"]["location"]["where"] = "providers.d/zz.yaml"
    body = {k: v for k, v in data.items() if k != "checksum"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    data["checksum"] = hashlib.sha256(canonical).hexdigest()
    Path("p.json").write_text(json.dumps(data))
    capsys.readouterr()
    assert main(["apply", "-C", str(root), "p.json"]) == 1
    _, err = capsys.readouterr()
    assert "repo/providers.d/zz.yaml is inside providers.d/" in err
    assert sorted(p.name for p in (root / "providers.d").iterdir()) == ["corp.yaml"]


def test_apply_format_json_on_a_terminal_shows_what_it_asks_to_confirm(tmp_path: Path) -> None:
    """With --format json, stdout is the result document; the confirmation on a terminal
    must still show the plan (on stderr), never ask for a blind "yes"."""
    standard(tmp_path)
    state = tmp_path / "live.json"
    master, slave = os.openpty()
    env = {**python_env(), "ALICE_PW": "a", "BOB_PW": "b"}
    proc = subprocess.Popen(
        [*MAILGITOPS, "apply", "-C", str(tmp_path), "--state", str(state), "--format", "json"],
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    os.close(slave)
    os.write(master, b"yes\n")
    out, err = proc.communicate(timeout=60)
    os.close(master)
    assert proc.returncode == 0, err
    assert b'+ mailbox "alice@example.com"' in err
    assert b"Plan: 3 to add" in err
    assert err.index(b"Plan: 3 to add") < err.index(b"Only 'yes' will be accepted")
    assert json.loads(out)["result"] == "applied"


@pytest.mark.parametrize("name", ["mailgitops.yml", ".mailgitops.yaml", "Mailgitops.yaml"])
def test_init_does_not_make_a_root_that_validate_refuses_for_its_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """init beside a settings file under another name used to report success and write
    mailgitops.yaml next to it; the fresh root then failed validate (settings-name)."""
    (tmp_path / name).write_text("vars: {company: x}\n")
    assert main(["init", "-C", str(tmp_path)]) == 1
    _out, err = capsys.readouterr()
    assert f"{name}:1:1: error: a settings file must be named mailgitops.yaml" in err
    assert "nothing was written" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    (tmp_path / name).unlink()
    assert main(["init", "-C", str(tmp_path)]) == 0
    assert main(["validate", "-C", str(tmp_path)]) == 0


def test_init_does_not_keep_a_settings_name_that_is_not_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "mailgitops.yaml").mkdir()
    assert main(["init", "-C", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert "mailgitops.yaml:1:1: error: not a regular file [not-a-file]" in err
    assert "kept" not in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mailgitops.yaml"]


def _imap_plain(conn: socket.socket) -> None:
    """A cleartext IMAP server that offers AUTH=PLAIN and accepts any login."""
    reader = conn.makefile("rb")
    conn.sendall(b"* OK IMAP4rev1 ready\r\n")
    for raw in reader:
        tag, _, command = raw.rstrip(b"\r\n").partition(b" ")
        if command.upper() == b"CAPABILITY":
            conn.sendall(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n" + tag + b" OK\r\n")
        elif command.upper().startswith(b"AUTHENTICATE"):
            conn.sendall(b"+ \r\n")
            reader.readline()
            conn.sendall(tag + b" OK logged in\r\n")
        else:
            conn.sendall(b"* BYE\r\n" + tag + b" OK\r\n")
            return


def test_check_login_skips_a_password_kept_live(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`import` writes `password: {keep: live}`; `check --login` reported it as a failure,
    "cannot read the password: file:None: not a secret reference". The CRM holds that
    password: the login cannot be checked, and says so."""
    monkeypatch.setenv("CAROL_PW", "carol-password")
    server = Hostile(_imap_plain)
    try:
        port = server.port
        root = tree(
            tmp_path,
            {
                "providers.d/p.yaml": f"name: p\ndomains: [example.com]\n"
                f"imap: {{host: 127.0.0.1, port: {port}, security: none}}\n"
                f"smtp: {{host: 127.0.0.1, port: {port}, security: none}}\n",
                "mailboxes.d/m.yaml": "mailboxes:\n"
                "  - {address: kept@example.com, owner: k, password: {keep: live}}\n"
                "  - {address: carol@example.com, owner: c, password: {env: CAROL_PW}}\n",
            },
        )
        main(["check", "-C", str(root), "--login", "--format", "json", "--timeout", "5"])
    finally:
        server.close()
    out, _err = capsys.readouterr()
    logins = {
        c["mailbox"]: c
        for c in json.loads(out)["providers"][0]["checks"]
        if c["server"] == "imap" and c["step"] == "login"
    }
    assert logins["carol@example.com"]["status"] == "ok", logins
    kept = logins["kept@example.com"]
    assert kept["status"] == "skipped", kept
    assert "{keep: live}" in kept["message"] and "file:None" not in kept["message"]


def test_render_does_not_print_a_literal_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """validate reports a template's literal secret "(the value is not shown)" and points at
    `mailgitops render FILE`, which printed the value. It shows `(sensitive)` instead, with
    the line numbers validate cites unchanged."""
    root = standard(
        tmp_path,
        **{
            "mailgitops.yaml": "vars: {pw: Hunter2-in-vars, pw2: Second-Secret}\n",
            "mailboxes.d/x.yaml.j2": "mailboxes:\n"
            "  - address: x@example.com\n"
            "    owner: &o x\n"
            "    password: |\n"
            "      {{ vars.pw }}\n"
            "      more\n"
            "  - {address: y@example.com, owner: y, password: '{{ vars.pw2 }}'}\n"
            "  - {address: z@example.com, owner: z, password: {env: Z_PW}}\n",
            # Not YAML: the secret key's line is masked all the same.
            "mailboxes.d/y.yaml.j2": "mailboxes:\n"
            "  - address: w@example.com\n"
            "    password: {{ vars.pw }}: broken\n",
            # Too dense to be composed (the parse budget): masked line by line too.
            "mailboxes.d/z.yaml.j2": "mailboxes:\n"
            "  - password: {{ vars.pw2 }}\n"
            '    sync: {folders: [{{ "1," * 5000 }}1]}\n',
        },
    )
    assert main(["validate", "-C", str(root)]) == 1
    out, _ = capsys.readouterr()
    assert "mailboxes.d/x.yaml.j2:4:15: error: `password` is a literal secret" in out
    assert "mailboxes.d/y.yaml.j2:3:" in out
    for argv in (["render"], ["render", "--no-line-numbers"]):
        assert main([argv[0], "-C", str(root), *argv[1:]]) == 0
        out, _ = capsys.readouterr()
        assert "Hunter2" not in out and "Second-Secret" not in out
        assert "{env: Z_PW}" in out
    main(["render", "-C", str(root)])
    lines = capsys.readouterr()[0].splitlines()
    assert lines[4] == "   4      password: (sensitive)"
    assert lines[7] == "   7    - {address: y@example.com, owner: y, password: (sensitive)}"
    assert lines[8] == "   8    - {address: z@example.com, owner: z, password: {env: Z_PW}}"
    assert lines[12] == "   3      password: (sensitive)"
    assert lines[15] == "   2    - password: (sensitive)"


def test_an_empty_plan_key_does_not_switch_signature_checks_off(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """In CI a missing secret expands to "" (`MAILGITOPS_PLAN_KEY: ${{ secrets.X }}`): apply
    then took an unsigned plan from a pull request's artifact as if no key were wanted."""
    monkeypatch.setenv("ALICE_PW", "a")
    monkeypatch.setenv("BOB_PW", "b")
    root = standard(tmp_path / "repo")
    state = tmp_path / "live.json"
    plan_file = tmp_path / "unsigned.plan.json"
    assert main(["plan", "-C", str(root), "--state", str(state), "--out", str(plan_file)]) == 0
    monkeypatch.setenv("MAILGITOPS_PLAN_KEY", "")
    capsys.readouterr()
    assert main(["apply", "-C", str(root), "--state", str(state), str(plan_file)]) == 1
    _, err = capsys.readouterr()
    assert "MAILGITOPS_PLAN_KEY is set but empty" in err
    assert not state.exists()
    other = tmp_path / "other.plan.json"
    assert main(["plan", "-C", str(root), "--state", str(state), "--out", str(other)]) == 1
    _, err = capsys.readouterr()
    assert "MAILGITOPS_PLAN_KEY is set but empty" in err
    assert not other.exists()


def test_a_file_name_cannot_forge_a_line_of_the_plan_or_of_render(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A pull request names its files: a line break and a colour code in a template's name
    (or a provider file's) reached the text plan's `# FILE:LINE` comment and render's
    `# rendered from FILE` raw, forging lines a reviewer reads, and painting the terminal."""
    evil = "a\nFORGED: line \x1b[31mred"
    root = tree(
        tmp_path,
        {
            f"providers.d/{evil}.yaml": "name: corp\ndomains: [example.com]\n"
            "imap: {host: imap.example.com}\nsmtp: {host: smtp.example.com}\n",
            f"mailboxes.d/{evil}.yaml.j2": "mailboxes:\n"
            "  - {address: a@example.com, owner: a, password: {env: A_PW}}\n",
        },
    )
    assert main(["plan", "-C", str(root), "--state", str(tmp_path / "live.json")]) == 0
    plan, _ = capsys.readouterr()
    # Text the template makes is the pull request's too (YAML refuses it, render shows it).
    (root / "mailboxes.d" / "c.yaml.j2").write_text('x: "{{ "\\x1b[32mB" }}"\n')
    main(["render", "-C", str(root)])
    rendered, _ = capsys.readouterr()
    for out in (plan, rendered):
        assert "\x1b" not in out
        assert not any(line.startswith("FORGED") for line in out.splitlines()), out
    assert '  + provider "corp"  # providers.d/a\\u000aFORGED: line \\u001b[31mred.yaml:1' in plan
    assert "# rendered from mailboxes.d/a\\u000aFORGED: line \\u001b[31mred.yaml.j2" in rendered


def test_resolve_shows_the_config_s_text_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """resolve printed the provider's file name and display name raw: a line break forged a
    line of its answer, a colour code painted it."""
    root = tree(
        tmp_path,
        {
            "providers.d/a\nFORGED: \x1b[31mred.yaml": "name: corp\n"
            'display_name: "Corp\\nFORGED: \\e[32mgreen"\n'
            "domains: [example.com]\nimap: {host: imap.example.com}\n"
            "smtp: {host: smtp.example.com}\n",
        },
    )
    assert main(["resolve", "-C", str(root), "alice@example.com"]) == 0
    out, _ = capsys.readouterr()
    assert "\x1b" not in out
    assert not any(line.startswith("FORGED") for line in out.splitlines()), out
    assert "provider corp (Corp\\u000aFORGED: \\u001b[32mgreen)" in out
    assert "defined in   providers.d/a\\u000aFORGED: \\u001b[31mred.yaml:1" in out


def test_config_errors_of_plan_and_render_keep_a_file_name_on_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """validate escaped the file names of its findings; plan, apply, check, resolve and render
    print theirs through pipeline.report_findings, which printed the name raw."""
    root = tree(
        tmp_path,
        {
            "providers.d/corp.yaml": "name: corp\ndomains: [example.com]\n"
            "imap: {host: imap.example.com}\nsmtp: {host: smtp.example.com}\n",
            "mailboxes.d/c\nFORGED.yaml:1:1: error: fine [x]\n.yaml": "mailboxes:\n"
            "  - {address: 1}\n",
            "mailboxes.d/t\nFORGED.yaml.j2": "{{ nothing }}\n",
        },
    )
    for argv in (["plan", "--state", str(tmp_path / "live.json")], ["render"]):
        assert main([argv[0], "-C", str(root), *argv[1:]]) == 1
        _, err = capsys.readouterr()
        assert not any(line.startswith("FORGED") for line in err.splitlines()), err
    assert "mailboxes.d/t\\u000aFORGED.yaml.j2:1:4: error:" in err


@pytest.mark.parametrize(
    "out", ["mailboxes.d/plan.yaml", "providers.d/p.json", "mailgitops.yaml", "data/plan.json"]
)
def test_plan_out_never_writes_where_config_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, out: str
) -> None:
    """A plan file written into a config folder (or over the settings) would be read as config
    by the next run, or replace what the reviewers approved."""
    monkeypatch.setenv("ALICE_PW", "a")
    monkeypatch.setenv("BOB_PW", "b")
    root = standard(tmp_path / "repo", **{"mailgitops.yaml": "vars: {}\n"})
    (root / "data").mkdir()
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    code = main(
        ["plan", "-C", str(root), "--state", str(tmp_path / "live.json"), "--out", str(root / out)]
    )
    err = capsys.readouterr().err
    assert code == 1 and "of the config root, which is read as config" in err
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
