"""Starting a config repository and the guards around it: `init`, `schemas --out`, the
`$schema` headers of the files the tool writes, the not-a-config-root refusal (SPEC §8), and
the defects of issue 16 in `resolve` and the error count."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import CORPUS
from helpers import CORP, TEAM, Cli, standard, tree
from jsonschema import Draft202012Validator

from mailgitops.cli import main

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
SCHEMA_NAMES = sorted(p.name for p in SCHEMAS.glob("*.schema.json"))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- init and schemas ------------------------------------------------------------------------


def test_init_makes_a_config_root_that_validates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "mail-config"
    code, out, err = run(capsys, "init", "-C", str(root))
    assert code == 0, err
    assert (root / "providers.d").is_dir() and (root / "mailboxes.d").is_dir()
    assert sorted(p.name for p in (root / "schemas").iterdir()) == SCHEMA_NAMES
    for name in SCHEMA_NAMES:
        assert (root / "schemas" / name).read_bytes() == (SCHEMAS / name).read_bytes()
    ignored = (root / ".gitignore").read_text().splitlines()
    for entry in (
        "/mailgitops.state.json",
        "/mailgitops.state.json.lock",
        "/mailgitops.state.json.backup",
    ):
        assert entry in ignored
    settings = (root / "mailgitops.yaml").read_text()
    assert settings.startswith("# yaml-language-server: $schema=schemas/settings.schema.json")
    assert "# access:" in settings and "backend: postgres" in settings  # commented examples
    assert "created mailgitops.yaml" in out and "created schemas/plan.schema.json" in out
    code, out, err = run(capsys, "validate", "-C", str(root))
    assert (code, out) == (0, "OK: 0 provider(s), 0 mailbox(es): 0 error(s), 0 warning(s)\n")
    # The state setting init writes is where plan and apply then keep the state.
    code, out, err = run(capsys, "plan", "-C", str(root))
    assert (code, out) == (0, "No changes.\n"), err


def test_init_never_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree(
        tmp_path,
        {
            "mailgitops.yaml": "safety: {min_managed: 3}\n",
            ".gitignore": "node_modules/\n",
            "schemas/plan.schema.json": "{}\n",
        },
    )
    code, out, err = run(capsys, "init", "-C", str(tmp_path))
    assert code == 0, err
    assert (tmp_path / "mailgitops.yaml").read_text() == "safety: {min_managed: 3}\n"
    assert (tmp_path / ".gitignore").read_text() == "node_modules/\n"
    assert (tmp_path / "schemas" / "plan.schema.json").read_text() == "{}\n"
    assert "kept    mailgitops.yaml (exists; not overwritten)" in out
    assert "created schemas/state.schema.json" in out
    # A second run changes nothing at all.
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    code, out, _ = run(capsys, "init", "-C", str(tmp_path))
    assert code == 0 and "created" not in out
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_init_on_a_file_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "f").write_text("x")
    code, _out, err = run(capsys, "init", "-C", str(tmp_path / "f"))
    assert code == 1 and "is not a directory" in err and "Traceback" not in err


def test_schemas_out_writes_and_refreshes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "out"
    code, _out, err = run(capsys, "schemas", "--out", str(target))
    assert code == 0, err
    assert sorted(p.name for p in target.iterdir()) == SCHEMA_NAMES
    (target / "provider.schema.json").write_text("{}")  # an old copy
    assert run(capsys, "schemas", "--out", str(target))[0] == 0
    assert (target / "provider.schema.json").read_bytes() == (
        SCHEMAS / "provider.schema.json"
    ).read_bytes()
    for name in SCHEMA_NAMES:
        Draft202012Validator.check_schema(json.loads((target / name).read_text()))


def _header_schema(path: Path) -> Path:
    """The file that a written file's `# yaml-language-server: $schema=…` names."""
    for line in path.read_text().splitlines():
        if line.startswith("# yaml-language-server: $schema="):
            return (path.parent / line.split("=", 1)[1]).resolve()
    raise AssertionError(f"{path} has no $schema header")


def test_headers_written_by_import_ispdb_resolve(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "providers.d").mkdir()
    code, _, err = run(
        capsys, "import-ispdb", str(CORPUS / "googlemail.com.xml"), "-C", str(tmp_path)
    )
    assert code == 0, err
    written = tmp_path / "providers.d" / "googlemail.com.yaml"
    schema_file = _header_schema(written)
    assert schema_file == (tmp_path / "schemas" / "provider.schema.json").resolve()
    schema = json.loads(schema_file.read_text())
    Draft202012Validator(schema).validate(yaml.safe_load(written.read_text()))


def test_headers_written_by_import_resolve(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli = Cli(tmp_path, capsys)
    (tmp_path / "mailboxes.d").mkdir()
    cli.write_live(
        {"corp": {"managed": False, **yaml.safe_load(CORP.replace("name: corp\n", ""))}},
        {"zed@example.com": {"provider": "corp", "owner": "zed"}},
    )
    code, _out, err = cli("import")
    assert code == 0, err
    for rel, name in (
        ("providers.d/corp.yaml", "provider"),
        ("mailboxes.d/imported.yaml", "mailboxes"),
    ):
        path = tmp_path / rel
        schema_file = _header_schema(path)
        assert schema_file == (tmp_path / "schemas" / f"{name}.schema.json").resolve()
        Draft202012Validator(json.loads(schema_file.read_text())).validate(
            yaml.safe_load(path.read_text())
        )


# --- not a config root -----------------------------------------------------------------------

REFUSING = [
    ["validate"],
    ["plan"],
    ["apply", "--auto-approve"],
    ["resolve", "alice@example.com"],
    ["import"],
    ["import-ispdb", str(CORPUS / "googlemail.com.xml")],
]


@pytest.mark.parametrize("argv", REFUSING, ids=[a[0] for a in REFUSING])
def test_a_directory_that_is_not_a_config_root_is_refused(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "live.json"
    state.write_text(
        json.dumps(
            {
                "format_version": 1,
                "lineage": "11111111-2222-3333-4444-555555555555",
                "serial": 1,
                "providers": {"corp": {"managed": True, "service_type": "imap"}},
                "mailboxes": {},
            }
        )
    )
    before = state.read_bytes()
    empty = tmp_path / "empty"
    empty.mkdir()
    args = [argv[0], "-C", str(empty), *argv[1:]]
    if argv[0] in ("plan", "apply", "import"):
        args += ["--state", str(state)]
    code, out, err = run(capsys, *args)
    assert code == 1
    assert "is not a mailgitops config root" in err and "mailgitops init" in err
    assert "destroy" not in out and "OK" not in out
    assert state.read_bytes() == before
    assert list(empty.iterdir()) == []  # nothing written into it


def test_plan_from_inside_mailboxes_d_destroys_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    standard(tmp_path)
    monkeypatch.setenv("ALICE_PW", "a")
    monkeypatch.setenv("BOB_PW", "b")
    cli = Cli(tmp_path, capsys)
    assert cli("apply", "--auto-approve")[0] == 0
    monkeypatch.chdir(tmp_path / "mailboxes.d")
    code, out, err = run(capsys, "plan", "--state", str(cli.state))
    assert code == 1 and "to destroy" not in out
    assert "is not a mailgitops config root" in err


def test_any_one_marker_makes_a_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for marker in ("providers.d", "mailboxes.d"):
        root = tmp_path / marker.replace(".", "-")
        (root / marker).mkdir(parents=True)
        assert run(capsys, "validate", "-C", str(root))[0] == 0
    root = tmp_path / "settings-only"
    tree(root, {"mailgitops.yaml": "safety: {min_managed: 3}\n"})
    assert run(capsys, "validate", "-C", str(root))[0] == 0


# --- resolve and the error count -------------------------------------------------------------

BROKEN_TEAM = "mailboxes:\n  - address: carol@example.com\n    owner: [carol\n"


def test_resolve_answers_despite_an_error_in_an_unrelated_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    standard(tmp_path, **{"mailboxes.d/broken.yaml": BROKEN_TEAM})
    code, out, err = run(capsys, "resolve", "dave@example.com", "-C", str(tmp_path))
    assert code == 0, err
    assert out.startswith("dave@example.com -> provider corp")
    assert "error(s) in files that do not change this answer" in err
    # Another provider's broken file does not matter either when it was read and does not
    # claim the domain.
    tree(tmp_path, {"providers.d/other.yaml": "name: other\ndomains: [other.com]\nimap: 3\n"})
    code, out, err = run(capsys, "resolve", "dave@example.com", "-C", str(tmp_path))
    assert code == 0 and "provider corp" in out, err


def test_resolve_refuses_when_the_errors_could_change_the_answer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The serving provider's own file has an error.
    standard(tmp_path, **{"providers.d/corp.yaml": CORP + "allow_sending: maybe\n"})
    code, out, err = run(capsys, "resolve", "dave@example.com", "-C", str(tmp_path))
    assert code == 1 and out == ""
    assert "providers.d/corp.yaml" in err and "cannot tell which provider" in err
    # A provider file that cannot be read at all might claim any domain.
    standard(tmp_path, **{"providers.d/zzz.yaml": "name: [zzz\n"})
    code, out, err = run(capsys, "resolve", "x@nowhere.example", "-C", str(tmp_path))
    assert code == 1 and "providers.d/zzz.yaml" in err


def test_plan_and_validate_count_errors_alike(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # One error in `defaults` that every mailbox of the file inherits: one finding, one count.
    team = TEAM.replace("mailboxes:\n", "defaults:\n  provider: nope\nmailboxes:\n")
    standard(tmp_path, **{"mailboxes.d/team.yaml": team})
    cli = Cli(tmp_path, capsys)
    code, out, _ = cli("validate", state=False)
    assert code == 1 and "1 error(s)" in out
    code, _, err = cli("plan")
    assert code == 1 and "the config has 1 error(s)" in err
    code, out, err = cli("validate", "--format", "json", state=False)
    assert json.loads(out)["summary"]["errors"] == 1


def test_init_then_import_ispdb_then_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The first steps of a new repository work together."""
    root = tmp_path / "repo"
    assert run(capsys, "init", "-C", str(root))[0] == 0
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(CORPUS / "googlemail.com.xml", src)
    code, out, err = run(capsys, "import-ispdb", str(src), "-C", str(root))
    assert code == 0, err
    assert "wrote schemas/" not in out  # init wrote them already
    code, out, err = run(capsys, "plan", "-C", str(root))
    assert code == 0 and "Plan: 1 to add" in out, err
