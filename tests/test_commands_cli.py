"""The command layer end to end: `main([...])` on real files, for the branches of
mailgitops/commands/*.py that the feature tests do not reach (usage errors, refusals,
the first step of a command that fails)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import CORP, standard, tree

from mailgitops.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_no_command_prints_the_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys)
    assert code == 1 and out == ""
    assert err.startswith("usage: mailgitops [-h] [--version] [--debug] COMMAND ...")
    assert "    validate    check the config (schema and semantic rules)\n" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["check", "--jobs", "0"], "argument --jobs: must be between 1 and 256"),
        (["check", "--jobs", "x"], "argument --jobs: not a number: 'x'"),
        (
            ["plan", "--timeout", "0"],
            "argument --timeout: must be more than 0 and at most 600 seconds",
        ),
        (["apply", "--lock-timeout", "-1"], "argument --lock-timeout: must be 0 or more seconds"),
        (["apply", "--lock-timeout", "x"], "argument --lock-timeout: not a number of seconds: 'x'"),
        (
            ["state", "forget", "--lock-timeout", "nan", "a"],
            "argument --lock-timeout: must be 0 or more seconds",
        ),
    ],
)
def test_bad_numbers_are_usage_errors(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 1 and out == ""
    assert err.startswith(f"error: {message}\nusage: mailgitops {argv[0]}")


def test_schemas_refuses_a_file_as_its_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "taken"
    target.write_text("mine\n")
    code, out, err = run(capsys, "schemas", "--out", str(target))
    assert (code, out) == (1, "")
    assert err == f"error: {target} exists and is not a directory\n"
    assert target.read_text() == "mine\n"


def test_init_refuses_a_file_as_root_or_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    code, out, err = run(capsys, "init", "-C", str(afile))
    assert (code, out, err) == (1, "", f"error: {afile} exists and is not a directory\n")
    root = tree(tmp_path / "root", {"providers.d": "not a folder\n"})
    code, out, err = run(capsys, "init", "-C", str(root))
    assert (code, out) == (1, "")
    assert err == f"error: {root / 'providers.d'} exists and is not a directory\n"
    assert not (root / "mailboxes.d").exists()


def test_init_refuses_a_settings_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "mailgitops.yaml").mkdir()
    code, out, err = run(capsys, "init", "-C", str(tmp_path))
    assert (code, out) == (1, "")
    assert err == (
        "mailgitops.yaml:1:1: error: not a regular file [not-a-file]\n"
        f"error: {tmp_path} was not initialised: fix its settings file first (nothing was "
        "written)\n"
    )
    assert not (tmp_path / "providers.d").exists()


def test_check_mailbox_needs_login(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "check", "-C", str(tmp_path), "--mailbox", "a@example.com")
    assert (code, out) == (1, "")
    assert err == "error: --mailbox selects the mailboxes of --login; add --login\n"


def test_check_of_an_invalid_config_reports_its_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    standard(tmp_path, **{"providers.d/corp.yaml": CORP + "bogus: 1\n"})
    code, out, err = run(capsys, "check", "-C", str(tmp_path), "--format", "json")
    assert code == 1
    document = json.loads(out)
    assert document["ok"] is False
    assert document["error"] == "the config has 1 error(s); nothing was checked"
    assert [d["rule"] for d in document["diagnostics"]] == ["unknown-key"]
    lines = err.splitlines()
    assert lines[0].startswith("providers.d/corp.yaml:7:1: error: ")
    assert lines[0].endswith(" [unknown-key]")
    assert lines[1] == "error: the config has 1 error(s); nothing was checked"


def test_apply_without_terminal_needs_auto_approve(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    standard(tmp_path)
    code, out, err = run(capsys, "apply", "-C", str(tmp_path))
    assert (code, out) == (1, "")
    assert err == (
        "error: apply without a PLANFILE asks for confirmation, and there is no terminal: "
        "pass --auto-approve, or apply a reviewed plan file\n"
    )
    assert not (tmp_path / "mailgitops.state.json").exists()


@pytest.mark.parametrize(
    ("out_file", "why"),
    [
        (
            "providers.d/plan.json",
            "it is in providers.d/ of the config root, which is read as config",
        ),
        ("mailgitops.state.json", "a file of the live state"),
    ],
)
def test_plan_refuses_to_write_where_config_or_state_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], out_file: str, why: str
) -> None:
    standard(tmp_path)
    target = tmp_path / out_file
    code, out, err = run(capsys, "plan", "-C", str(tmp_path), "--no-cache", "--out", str(target))
    assert (code, out) == (1, "")
    assert err.startswith(f"error: refusing to write the plan to {target}: ")
    assert err.rstrip().endswith(why)
    assert not target.exists()


def test_plan_json_of_broken_settings_is_one_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    standard(tmp_path, **{"mailgitops.yaml": "access: 5\n"})
    code, out, err = run(capsys, "plan", "-C", str(tmp_path), "--no-cache", "--format", "json")
    assert code == 1
    assert json.loads(out) == {
        "format_version": 1,
        "error": "the config has 1 error(s); nothing was planned",
        "diagnostics": [
            {
                "file": "mailgitops.yaml",
                "line": 1,
                "col": 9,
                "severity": "error",
                "message": "`access` must be a mapping, not an integer",
                "rule": "type",
            }
        ],
        "refusals": [],
    }
    assert err == (
        "mailgitops.yaml:1:9: error: `access` must be a mapping, not an integer [type]\n"
        "error: the config has 1 error(s); nothing was planned\n"
    )


def test_state_copy_refuses_an_empty_location(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "a.json"
    code, out, err = run(capsys, "state", "push", "--from", str(source), "--to", "")
    assert (code, out) == (1, "")
    assert err == "error: --from and --to need a path or a postgresql:// URL\n"


def test_resolve_refuses_what_is_not_an_address(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    standard(tmp_path)
    code, out, err = run(capsys, "resolve", "-C", str(tmp_path), "example.com")
    assert (code, out) == (1, "")
    assert err == "error: `example.com` is not an email address (local@domain)\n"


def test_validate_github_names_files_from_the_checkout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    standard(tmp_path / "cfg", **{"providers.d/corp.yaml": CORP + "bogus: 1\n"})
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "validate", "-C", "cfg", "--format", "github")
    assert (code, err) == (1, "")
    assert out.startswith("::error file=cfg/providers.d/corp.yaml,line=7,col=1,title=unknown-key::")
    assert out.count("\n") == 1


# A provider whose servers refuse every connection at once: checks fail without a network.
CLOSED = """name: local
domains: [local.test]
imap:
  host: 127.0.0.1
  port: 1
smtp:
  host: 127.0.0.1
  port: 2
"""


def closed_root(root: Path) -> Path:
    return tree(root, {"providers.d/local.yaml": CLOSED, "mailboxes.d/.gitkeep": ""})


def test_check_reports_refused_connections_as_text_and_github(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    closed_root(tmp_path / "k")
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "check", "-C", "k", "--timeout", "5")
    assert (code, err) == (1, "")
    assert out.splitlines()[0] == "local (providers.d/local.yaml:1)"
    assert "  FAIL    imap 127.0.0.1:1 tcp: cannot connect: " in out
    assert out.endswith(
        "FAILED: 1 provider(s) failed a check; 1 provider(s) checked: 2 ok, 0 warning(s), "
        "2 failed\n"
    )
    code, out, err = run(capsys, "check", "-C", "k", "--timeout", "5", "--format", "github")
    assert (code, err) == (1, "")
    lines = out.splitlines()
    assert lines[0].startswith(
        "::error file=k/providers.d/local.yaml,line=3,title=check local imap tcp::127.0.0.1:1: "
    )
    assert lines[1].startswith("::error file=k/providers.d/local.yaml,line=6,")
    assert lines[2].startswith("::notice title=mailgitops check::FAILED: 1 provider(s) failed")


def test_apply_refuses_a_plan_whose_checks_failed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    closed_root(tmp_path / "k")
    monkeypatch.chdir(tmp_path)
    argv = ("plan", "-C", "k", "--check", "--timeout", "5", "--out", "k.plan.json")
    code, out, err = run(capsys, *argv)
    assert code == 0 and "+ provider" in out
    assert (
        err == "Saved the plan to k.plan.json; apply it with `mailgitops apply -C k k.plan.json`.\n"
    )
    code, out, err = run(capsys, "apply", "-C", "k", "k.plan.json")
    assert (code, out) == (1, "")
    assert err.startswith(
        "error: the plan is refused: k.plan.json records 2 failed connection check(s) (plan "
        "--check); fix the provider or pass --allow-failed-check:\n"
        "  - local: imap 127.0.0.1:1 tcp: cannot connect: "
    )
    assert not (tmp_path / "k" / "mailgitops.state.json").exists()
    code, out, err = run(capsys, "apply", "-C", "k", "k.plan.json", "--allow-failed-check")
    assert code == 0 and err == ""
    assert out.splitlines()[-1].startswith("Apply complete! 1 added, 0 changed, 0 destroyed")


def test_apply_refuses_a_plan_of_another_lineage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = closed_root(tmp_path / "k")
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "apply", "-C", "k", "--auto-approve")[0] == 0
    (root / "providers.d/other.yaml").write_text(CORP)
    assert run(capsys, "plan", "-C", "k", "--no-cache", "--out", "k.plan.json")[0] == 0
    (root / "mailgitops.state.json").unlink()
    assert run(capsys, "apply", "-C", "k", "--auto-approve")[0] == 0  # a new lineage
    state = (root / "mailgitops.state.json").read_bytes()
    code, out, err = run(capsys, "apply", "-C", "k", "k.plan.json")
    assert (code, out) == (1, "")
    assert err == (
        "error: stale plan k.plan.json: the state has another lineage (a different live "
        "system). Make a new plan and review it.\n"
    )
    assert (root / "mailgitops.state.json").read_bytes() == state


def test_state_list_pull_forget_and_push_of_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    closed_root(tmp_path / "k")
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "apply", "-C", "k", "--auto-approve")[0] == 0
    code, out, err = run(capsys, "state", "list", "-C", "k")
    assert (code, err) == (0, "")
    assert out == (
        'managed    provider  "local"\n'
        "1 entries (1 managed) in k/mailgitops.state.json, serial 1.\n"
    )
    code, out, err = run(capsys, "state", "pull", "-C", "k", "--to", "copy.json")
    assert (code, err) == (0, "")
    assert out.startswith("Copied state lineage ")
    assert out.endswith(
        ", serial 1 (1 providers, 0 mailboxes) from k/mailgitops.state.json to copy.json.\n"
    )
    code, out, err = run(capsys, "state", "pull", "-C", "k", "--to", "copy.json")
    assert (code, err) == (0, "")
    assert out.startswith("copy.json already holds this state (lineage ")
    code, out, err = run(capsys, "state", "forget", "-C", "k", "nobody")
    assert (code, out) == (1, "")
    assert err == (
        'error: not in the live state at k/mailgitops.state.json: "nobody"; nothing was '
        "written (see `mailgitops state list`)\n"
    )
    code, out, err = run(capsys, "state", "forget", "-C", "k", "local")
    assert (code, err) == (0, "")
    assert out.startswith('forgot provider "local": still live, no longer managed\n')
    code, out, err = run(capsys, "state", "push", "-C", "k", "--from", "copy.json")
    assert (code, out) == (1, "")
    assert err == (
        "error: refusing to overwrite k/mailgitops.state.json: the destination is newer "
        "(serial 2, the source has 1): copying would undo applies. Nothing was written; pass "
        "--force to overwrite it anyway.\n"
    )
    code, out, err = run(capsys, "state", "push", "-C", "k", "--from", "copy.json", "--force")
    assert (code, err) == (0, "")
    code, out, err = run(capsys, "state", "list", "-C", "k", "--format", "json")
    assert code == 0
    document = json.loads(out)
    assert (document["serial"], document["entries"][0]["managed"]) == (1, True)


def test_show_of_no_state_and_resolve_of_an_unserved_domain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    standard(tmp_path)
    code, out, err = run(capsys, "show", "-C", str(tmp_path))
    assert (code, err) == (0, "")
    state = tmp_path / "mailgitops.state.json"
    assert out == f"No live state yet at {state} (an empty live system).\n"
    code, out, err = run(
        capsys, "resolve", "-C", str(tmp_path), "a@nowhere.test", "--format", "json"
    )
    assert code == 1
    assert json.loads(out) == {"address": "a@nowhere.test", "provider": None}
    assert err == "error: no provider serves `nowhere.test`: no provider lists it in `domains`\n"


def test_resolve_json_of_a_served_address(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    standard(tmp_path)
    code, out, err = run(
        capsys, "resolve", "-C", str(tmp_path), " Alice@Example.com ", "--format", "json"
    )
    assert (code, err) == (0, "")
    document = json.loads(out)
    assert (document["address"], document["provider"], document["login"]) == (
        "alice@example.com",
        "corp",
        "alice@example.com",
    )
    assert document["settings"]["imap"]["host"] == "imap.example.com"


def test_render_refuses_what_is_not_a_template(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    standard(tmp_path)
    code, out, err = run(capsys, "render", "-C", str(tmp_path), "providers.d/corp.yaml")
    assert (code, out) == (1, "")
    assert err == (
        "error: providers.d/corp.yaml is not a template of the config: templates are "
        "providers.d/*.yaml.j2 and mailboxes.d/*.yaml.j2\n"
    )
    gone = tmp_path / "providers.d/gone.yaml.j2"
    code, out, err = run(capsys, "render", "-C", str(tmp_path), str(gone))
    assert (code, out) == (1, "")
    assert err == f"error: {gone}: no such template in {tmp_path}\n"


def test_import_ispdb_refuses_a_file_as_providers_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tree(tmp_path / "root", {"providers.d": "a file\n"})
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, err = run(capsys, "import-ispdb", "-C", str(root), str(empty))
    assert (code, out) == (1, "")
    assert err == (
        f"warning: {empty} has no *.xml files\n"
        f"error: {root / 'providers.d'} exists and is not a directory\n"
    )


def test_resolve_shows_the_login_each_login_format_gives(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    servers = "imap:\n  host: imap.{0}.test\nsmtp:\n  host: smtp.{0}.test\n"
    tree(
        tmp_path,
        {
            "providers.d/ex.yaml": "name: ex\nservice_type: exchange\ndomains: [ex.test]\n"
            "exchange:\n  autodiscover: true\n",
            "providers.d/mb.yaml": "name: mb\ndomains: [mb.test]\nlogin_format: mailbox_name\n"
            + servers.format("mb"),
            "providers.d/man.yaml": "name: man\ndomains: [man.test]\nlogin_format: manual\n"
            + servers.format("man"),
        },
    )
    code, out, err = run(capsys, "resolve", "-C", str(tmp_path), "a@ex.test")
    assert (code, err) == (0, "")
    assert out == (
        "a@ex.test -> provider ex\n"
        "  defined in   providers.d/ex.yaml:1\n"
        "  exchange     (autodiscover)\n"
        "  auth         basic\n"
        "  login        a@ex.test\n"
    )
    code, out, err = run(capsys, "resolve", "-C", str(tmp_path), "b@mb.test")
    assert (code, err) == (0, "")
    assert out == (
        "b@mb.test -> provider mb\n"
        "  defined in   providers.d/mb.yaml:1\n"
        "  imap         imap.mb.test:993 (ssl_tls)\n"
        "  smtp         smtp.mb.test:465 (ssl_tls, timeout 40s)\n"
        "  auth         basic\n"
        "  login        b\n"
    )
    code, out, err = run(capsys, "resolve", "-C", str(tmp_path), "c@man.test")
    assert (code, err) == (0, "")
    assert out.endswith("  login        manual: the mailbox must set `login`\n")
    code, out, err = run(capsys, "resolve", "-C", str(tmp_path), "x@none.test")
    assert (code, out) == (1, "")
    assert err == "error: no provider serves `none.test`: no provider lists it in `domains`\n"


def test_resolve_serves_no_address_whose_domain_ends_in_a_dot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`a@example.com.` is not an address (validate says so of such a mailbox): no provider
    serves it, although a provider's own `domains: [example.com.]` means example.com."""
    standard(tmp_path)
    code, out, err = run(capsys, "resolve", "-C", str(tmp_path), "x@example.com.")
    assert (code, out) == (1, "")
    assert err == "error: no provider serves `example.com.`: no provider lists it in `domains`\n"
    code, out, err = run(
        capsys, "resolve", "-C", str(tmp_path), "x@Example.com.", "--format", "json"
    )
    assert (code, json.loads(out)) == (1, {"address": "x@example.com.", "provider": None})


def test_resolve_json_is_one_document_when_it_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    standard(tmp_path, **{"providers.d/corp.yaml": CORP + "bogus: 1\n"})
    code, out, err = run(
        capsys, "resolve", "-C", str(tmp_path), "a@example.com", "--format", "json"
    )
    document = json.loads(out)
    assert (code, document["address"], document["provider"]) == (1, "a@example.com", None)
    assert document["error"].startswith("cannot tell which provider serves `example.com`")
    assert "providers.d/corp.yaml:7:1: error: unknown key `bogus`" in err
    code, out, err = run(capsys, "resolve", "-C", str(tmp_path), "nobody", "--format", "json")
    assert (code, json.loads(out)["error"]) == (
        1,
        "`nobody` is not an email address (local@domain)",
    )
