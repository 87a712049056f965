"""`apply PLANFILE` on files that are not plan files this version can apply: each is refused
with a message that says why, exit 1, no traceback, and the state is left as it was."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import Cli, standard

Doc = dict[str, Any]


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("ALICE_PW", "alice-secret-value")
    monkeypatch.setenv("BOB_PW", "bob-secret-value")
    return Cli(standard(tmp_path / "repo"), capsys)


def _saved(cli: Cli, path: Path) -> Doc:
    code, _, err = cli("plan", "--out", str(path))
    assert code == 0, err
    doc: Doc = json.loads(path.read_text())
    return doc


def _rewrite(path: Path, doc: Doc, edit: Callable[[Doc], None]) -> None:
    """Edit the document and give it a matching checksum, as anyone can."""
    edit(doc)
    body = {k: v for k, v in doc.items() if k != "checksum"}
    blob = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    doc["checksum"] = hashlib.sha256(blob).hexdigest()
    path.write_text(json.dumps(doc))


def _refused(cli: Cli, path: Path, expected: str) -> None:
    code, out, err = cli("apply", str(path))
    assert code == 1, out + err
    assert expected in err and "Traceback" not in err, err
    assert not cli.state.exists(), "a refused plan file must write nothing"


def test_a_missing_plan_file(cli: Cli, tmp_path: Path) -> None:
    _refused(cli, tmp_path / "nowhere.json", "cannot read plan file")


def test_json_that_is_not_an_object(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "list.json"
    path.write_text("[1, 2]")
    _refused(cli, path, f"{path}: not a mailgitops plan file")


def test_another_format_version(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    _rewrite(path, _saved(cli, path), lambda d: d.update(format_version=2))
    _refused(cli, path, "unsupported plan format_version 2")


@pytest.mark.parametrize(
    "desired",
    [None, {"providers": {}}, {"providers": {}, "mailboxes": {"a@example.com": "x"}}],
)
def test_a_plan_file_without_desired_entries(cli: Cli, tmp_path: Path, desired: Any) -> None:
    path = tmp_path / "p.json"

    def edit(doc: Doc) -> None:
        if desired is None:
            del doc["desired"]
        else:
            doc["desired"] = desired

    _rewrite(path, _saved(cli, path), edit)
    _refused(cli, path, "the plan file has no desired entries")


def test_a_malformed_state_location(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    _rewrite(path, _saved(cli, path), lambda d: d["state"].update(location={"backend": 1}))
    _refused(cli, path, "not a mailgitops plan file (state.location)")


def test_a_plan_file_without_a_location_is_applied_to_the_state_given(
    cli: Cli, tmp_path: Path
) -> None:
    """The counterpart: the location is optional, and the plan applies where --state says."""
    path = tmp_path / "p.json"
    _rewrite(path, _saved(cli, path), lambda d: d["state"].pop("location"))
    code, out, err = cli("apply", str(path))
    assert code == 0, out + err
    assert sorted(cli.live()["mailboxes"]) == ["alice@example.com", "bob@example.com"]
