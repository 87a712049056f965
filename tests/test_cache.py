"""The cache of parsed files can never change a result: the same cases with and without it,
and corrupt, truncated or foreign entries ignored and rewritten."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers import CORP, Cli, standard, tree
from test_validate_cases import CASES, _parse_case

from mailgitops.cli import main


def _cache_dir() -> Path:
    return Path(os.environ["MAILGITOPS_CACHE_DIR"])


def _entries() -> list[Path]:
    return sorted(_cache_dir().glob("*/*.json"))


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_validate_same_with_and_without_cache(
    case: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _expects, _code, files, args = _parse_case(case.read_bytes())
    for rel, body in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(body)
    runs = []
    for extra in (["--no-cache"], [], []):  # uncached, filling the cache, from the cache
        code = main(["validate", "-C", str(tmp_path), "--format", "json", *args, *extra])
        runs.append((code, capsys.readouterr().out))
    assert runs[0] == runs[1] == runs[2]


@pytest.fixture
def applied(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Cli:
    """The standard config, applied once."""
    monkeypatch.setenv("ALICE_PW", "a")
    monkeypatch.setenv("BOB_PW", "b")
    cli = Cli(standard(tmp_path), capsys)
    assert cli("apply", "--auto-approve")[0] == 0
    return cli


def test_plan_same_with_and_without_cache(applied: Cli, tmp_path: Path) -> None:
    cli = applied
    tree(tmp_path, {"providers.d/corp.yaml": CORP + "display_name: Corp\n"})
    for entry in _entries():
        entry.unlink()
    uncached = cli("plan", "--format", "json", "--no-cache")
    assert not _entries(), "--no-cache writes no cache entry"
    cold = cli("plan", "--format", "json")
    assert _entries()
    warm = cli("plan", "--format", "json")
    assert uncached == cold == warm
    assert json.loads(warm[1])["summary"]["update"] == 1


def test_corrupt_truncated_and_foreign_entries_are_ignored_and_rewritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    standard(tmp_path)
    assert main(["validate", "-C", str(tmp_path)]) == 0
    expected = capsys.readouterr().out
    entries = _entries()
    assert len(entries) == 2  # one per config file
    good = [p.read_bytes() for p in entries]
    entries[0].write_bytes(good[0][: len(good[0]) // 2])  # truncated
    entries[1].write_bytes(good[0])  # another entry's content, with that entry's MAC
    assert main(["validate", "-C", str(tmp_path)]) == 0
    assert capsys.readouterr().out == expected
    assert [p.read_bytes() for p in entries] == good, "bad entries are rewritten"
    for entry in entries:
        value = {"data": 5, "root_mark": [1, 1], "item_marks": []}  # the wrong shape
        entry.write_bytes(b"0" * 64 + b"\n" + json.dumps(value).encode())
    assert main(["validate", "-C", str(tmp_path)]) == 0
    assert capsys.readouterr().out == expected


def test_a_changed_file_is_not_served_from_the_cache(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    standard(tmp_path)
    assert main(["validate", "-C", str(tmp_path)]) == 0
    tree(tmp_path, {"providers.d/corp.yaml": CORP.replace("imap.example.com", "imap@example.com")})
    assert main(["validate", "-C", str(tmp_path)]) == 1
    assert "did you mean `imap.example.com`?" in capsys.readouterr().out


def test_an_unwritable_cache_only_costs_speed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    monkeypatch.setenv("MAILGITOPS_CACHE_DIR", str(blocker))
    standard(tmp_path / "config")
    assert main(["validate", "-C", str(tmp_path / "config")]) == 0
    assert "OK:" in capsys.readouterr().out


def test_state_verdicts_follow_the_bytes(applied: Cli) -> None:
    cli = applied
    assert cli("plan")[0] == 0  # remembers that these state bytes are valid
    live = cli.live()
    live["mailboxes"]["alice@example.com"]["password"] = "now-a-literal"
    cli.state.write_text(json.dumps(live))
    for extra in ([], ["--no-cache"]):
        code, _out, err = cli("plan", *extra)
        assert code == 1 and "does not match schemas/state.schema.json" in err
        assert "now-a-literal" not in err
