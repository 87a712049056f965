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
