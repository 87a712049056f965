"""SPEC §9 end to end: nothing a pull request controls (a plan file, the config on its branch,
the cache its job wrote) widens what apply does. Each attack of issue 12 and its variants is
refused with a clear message, and the state is left byte for byte as it was."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import CORP, OTHER, TEAM, Cli, standard, tree
from hypothesis import event, given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from test_properties import APPLY, ConfigSpec, budget, config_specs, project

ACCESS = "access:\n  administrators: [root]\n  mailbox_managers: [mia]\n"
ON_OTHER = (
    "mailboxes:\n"
    "  - address: carl@other.com\n    owner: carl\n    password: {env: ALICE_PW}\n"
    "  - address: dora@other.com\n    owner: dora\n    password: {env: ALICE_PW}\n"
)
Doc = dict[str, Any]


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """Live: corp with alice and bob, other with carl and dora; all applied."""
    monkeypatch.setenv("ALICE_PW", "alice-secret-value")
    monkeypatch.setenv("BOB_PW", "bob-secret-value")
    c = Cli(
        standard(
            tmp_path / "repo",
            **{"providers.d/other.yaml": OTHER, "mailboxes.d/other.yaml": ON_OTHER},
        ),
        capsys,
    )
    code, _, err = c("apply", "--auto-approve")
    assert code == 0, err
    return c


def _checksum(doc: Doc) -> str:
    """What anyone can compute: the plain sha256 of the body (planfile.py)."""
    body = {k: v for k, v in doc.items() if k not in ("checksum", "signature")}
    blob = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def _save(cli: Cli, path: Path, *extra: str) -> Doc:
    code, _, err = cli("plan", "--out", str(path), *extra)
    assert code in (0, 1), err
    doc: Doc = json.loads(path.read_text())
    return doc


def _forge(path: Path, doc: Doc, edit: Callable[[Doc], None]) -> None:
    """Edit a plan document as an attacker would, and re-sign its checksum."""
    forged = copy.deepcopy(doc)
    edit(forged)
    forged.pop("signature", None)
    forged["checksum"] = _checksum(forged)
    path.write_text(json.dumps(forged))


def _refused(cli: Cli, path: Path, *expected: str, extra: tuple[str, ...] = ()) -> str:
    before = cli.state.read_bytes()
    code, out, err = cli("apply", str(path), *extra)
    assert code == 1, out + err
    for text in expected:
        assert text in err, f"{text!r} not in {err!r}"
    assert "Apply complete" not in out
    assert cli.state.read_bytes() == before, "a refused plan writes nothing"
    return err


def _corp_display_name(cli: Cli) -> None:
    tree(cli.root, {"providers.d/corp.yaml": CORP + "display_name: Corp\n"})


def _change(doc: Doc, kind: str, id_: str) -> Doc:
    change: Doc = next(c for c in doc["changes"] if c["kind"] == kind and c["id"] == id_)
    return change


# -- a re-signed plan file -----------------------------------------------------------------------


def test_forged_live_key_cannot_delete_a_provider_in_use(cli: Cli, tmp_path: Path) -> None:
    _corp_display_name(cli)
    path = tmp_path / "p.json"
    doc = _save(cli, path)
    update = _change(doc, "provider", "corp")

    def edit(d: Doc) -> None:
        d["changes"].append({**update, "id": "zzz", "live_key": "other"})

    _forge(path, doc, edit)
    err = _refused(cli, path, "does not match what its desired entries make of the live state")
    assert "`update provider zzz`" in err
    assert "other" in cli.live()["providers"]


def test_forged_before_owner_cannot_take_over_a_mailbox(cli: Cli, tmp_path: Path) -> None:
    tree(
        cli.root,
        {"mailboxes.d/team.yaml": TEAM.replace("owner: alice", "owner: mallory")},
    )
    path = tmp_path / "p.json"
    doc = _save(cli, path)

    def edit(d: Doc) -> None:
        _change(d, "mailbox", "alice@example.com")["before"]["owner"] = "mallory"
        for c in d["changes"]:
            c["diff"] = [x for x in c["diff"] if x["path"] != "owner"]

    _forge(path, doc, edit)
    _refused(cli, path, "does not match what its desired entries make")
    assert cli.live()["mailboxes"]["alice@example.com"]["owner"] == "alice"


def test_thirteen_forged_updates_do_not_pass_the_mass_deletion_guard(
    cli: Cli, tmp_path: Path
) -> None:
    _corp_display_name(cli)
    path = tmp_path / "p.json"
    doc = _save(cli, path)
    update = _change(doc, "provider", "corp")
    victims = ["alice@example.com", "bob@example.com", "carl@other.com", "dora@other.com"]

    def edit(d: Doc) -> None:
        for n, victim in enumerate(victims * 3 + ["ui@example.com"]):
            d["changes"].append({**update, "kind": "mailbox", "id": f"x{n}", "live_key": victim})
        d["summary"] = {"create": 0, "update": 14, "delete": 0, "adopt": 0}

    _forge(path, doc, edit)
    _refused(cli, path, "does not match what its desired entries make")
    assert sorted(cli.live()["mailboxes"]) == sorted(victims)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("kind", "mailbox"),
        ("action", "delete"),
        ("action", "adopt"),
        ("action", "create"),
        ("id", "other"),
        ("after", None),
    ],
)
def test_forged_kind_action_id_or_after_is_refused(
    cli: Cli, tmp_path: Path, field: str, value: Any
) -> None:
    _corp_display_name(cli)
    path = tmp_path / "p.json"
    doc = _save(cli, path)
    _forge(path, doc, lambda d: _change(d, "provider", "corp").__setitem__(field, value))
    _refused(cli, path, "does not match what its desired entries make", "edited")


def test_dropped_changes_and_forged_summary_are_refused(cli: Cli, tmp_path: Path) -> None:
    (cli.root / "mailboxes.d/other.yaml").unlink()
    path = tmp_path / "p.json"
    doc = _save(cli, path)
    assert doc["summary"]["delete"] == 2

    def edit(d: Doc) -> None:
        d["changes"] = []
        d["summary"] = {"create": 0, "update": 0, "delete": 0, "adopt": 0}

    _forge(path, doc, edit)
    _refused(cli, path, "the file lists 0 change(s), the desired entries give 2")


def test_a_desired_entry_the_config_does_not_produce_is_refused(cli: Cli, tmp_path: Path) -> None:
    _corp_display_name(cli)
    path = tmp_path / "p.json"
    doc = _save(cli, path)
    evil = {**doc["desired"]["mailboxes"]["alice@example.com"], "owner": "mallory"}

    def edit(d: Doc) -> None:
        d["desired"]["mailboxes"]["mallory@example.com"] = evil
        d["desired"]["providers"]["corp"]["imap"]["host"] = "imap.evil.example"

    _forge(path, doc, edit)
    err = _refused(cli, path, "does not match the config in", "provider `corp`")
    assert "mailbox `mallory@example.com`" in err


def test_a_plan_made_from_another_branch_is_refused(cli: Cli, tmp_path: Path) -> None:
    """The pull request's branch had a mailbox the merged config does not."""
    tree(
        cli.root,
        {
            "mailboxes.d/x.yaml": "mailboxes:\n  - address: x@example.com\n    owner: x\n"
            "    password: {env: ALICE_PW}\n"
        },
    )
    path = tmp_path / "p.json"
    _save(cli, path)
    (cli.root / "mailboxes.d/x.yaml").unlink()
    _refused(cli, path, "does not match the config", "mailbox `x@example.com`")


def test_replaying_an_applied_plan_is_stale(cli: Cli, tmp_path: Path) -> None:
    _corp_display_name(cli)
    path = tmp_path / "p.json"
    _save(cli, path)
    assert cli("apply", str(path))[0] == 0
    _refused(cli, path, "stale plan", "serial")


def test_a_refused_saved_plan_prints_the_deletion_refusal_once(cli: Cli, tmp_path: Path) -> None:
    # The config drops `other` while a mailbox made outside mailgitops still uses it.
    live = cli.live()
    live["mailboxes"]["ui@other.com"] = {"provider": "other", "owner": "ursula"}
    cli.state.write_text(json.dumps(live))
    (cli.root / "providers.d/other.yaml").unlink()
    (cli.root / "mailboxes.d/other.yaml").unlink()
    path = tmp_path / "p.json"
    code, _, err = cli("plan", "--out", str(path))
    assert code == 1 and err.count("cannot delete provider `other`") == 1
    err = _refused(cli, path, "cannot delete provider `other`", "ui@other.com")
    assert err.count("cannot delete provider `other`") == 1


# -- which state a plan is for -------------------------------------------------------------------


def test_a_plan_for_another_state_file_is_its_own_error(cli: Cli, tmp_path: Path) -> None:
    _corp_display_name(cli)
    path = tmp_path / "p.json"
    _save(cli, path)
    other = tmp_path / "copy.json"
    other.write_bytes(cli.state.read_bytes())  # same lineage, serial and content
    before = other.read_bytes()
    code, _, err = cli("apply", str(path), state=False)
    assert code == 0, "without --state, apply uses the state the plan was made against"
    tree(cli.root, {"providers.d/corp.yaml": CORP + "display_name: Corp2\n"})
    _save(cli, path)
    from mailgitops.cli import main

    code = main(["apply", "-C", str(cli.root), "--state", str(other), str(path)])
    err = cli.capsys.readouterr().err
    assert code == 1 and "was made against the file state live.json" in err
    assert "stale" not in err and str(other) in err
    assert other.read_bytes() == before


def test_the_state_location_comes_from_the_plan_and_env_must_agree(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _corp_display_name(cli)
    path = tmp_path / "p.json"
    doc = _save(cli, path)
    assert doc["state"]["location"] == {
        "backend": "file",
        "where": "live.json",
        "chosen_by": "--state",
    }
    assert "password" not in json.dumps(doc["state"])
    monkeypatch.setenv("MAILGITOPS_STATE", str(tmp_path / "elsewhere.json"))
    code, _, err = cli("apply", str(path), state=False)
    assert code == 1 and "from MAILGITOPS_STATE" in err
    monkeypatch.delenv("MAILGITOPS_STATE")
    code, out, err = cli("apply", str(path), state=False)
    assert code == 0 and "Apply complete" in out, err


def test_a_recorded_state_outside_the_root_is_not_chosen_by_the_plan_file(
    cli: Cli, tmp_path: Path
) -> None:
    """The plan file is the pull request's: a recorded file location outside the config root
    (or `..` out of it) does not make apply write there; only --state could."""
    _corp_display_name(cli)
    path = tmp_path / "p.json"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for where in (str(elsewhere / "state.json"), "../elsewhere/state.json"):
        _forge(
            path,
            _save(cli, path),
            lambda doc, where=where: doc["state"]["location"].update(where=where),
        )
        code, _, err = cli("apply", str(path), state=False)
        assert code == 1 and "outside the config root" in err and "--state" in err
        assert not any(elsewhere.iterdir()), "nothing created outside the root"


def test_the_hint_after_plan_out_is_the_command_that_works(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _corp_display_name(cli)
    monkeypatch.chdir(cli.root)
    from mailgitops.cli import main

    assert main(["plan", "--state", "live.json", "--out", "plan.json"]) == 0
    err = cli.capsys.readouterr().err
    assert "apply it with `mailgitops apply plan.json`" in err
    assert main(["apply", "plan.json"]) == 0
    assert "Apply complete" in cli.capsys.readouterr().out


# -- signing ---------------------------------------------------------------------------------------


def test_signed_plans(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _corp_display_name(cli)
    unsigned = tmp_path / "unsigned.json"
    _save(cli, unsigned)
    monkeypatch.setenv("MAILGITOPS_PLAN_KEY", "k" * 32)
    signed = tmp_path / "signed.json"
    doc = _save(cli, signed)
    assert doc["signature"].startswith("hmac-sha256:")
    schema = json.loads((Path(__file__).parents[1] / "schemas/plan.schema.json").read_text())
    Draft202012Validator(schema).validate(doc)  # the saved form is documented
    _refused(cli, unsigned, "not signed", "MAILGITOPS_PLAN_KEY")
    forged = tmp_path / "forged.json"
    _forge(forged, doc, lambda d: None)  # re-signed checksum, signature dropped
    _refused(cli, forged, "not signed")
    tampered = copy.deepcopy(doc)
    tampered["state"]["location"]["where"] = "other.json"
    tampered["checksum"] = _checksum(tampered)
    forged.write_text(json.dumps(tampered))
    _refused(cli, forged, "signature does not match")
    monkeypatch.setenv("MAILGITOPS_PLAN_KEY", "another key, at least as long")
    _refused(cli, signed, "signature does not match")
    monkeypatch.setenv("MAILGITOPS_PLAN_KEY", "k" * 32)
    code, out, err = cli("apply", str(signed))
    assert code == 0 and "Apply complete" in out, err


# -- the cache -------------------------------------------------------------------------------------


def _cache_entries() -> list[Path]:
    return sorted(Path(os.environ["MAILGITOPS_CACHE_DIR"]).glob("*/*.json"))


def _poison(value: Any) -> Any:
    """A forged value for an entry of any kind: what would change a result if it were used."""
    if isinstance(value, dict) and "desired" in value:  # the whole config
        forged = copy.deepcopy(value)
        forged["desired"]["mailboxes"] = {}
        forged["settings"] = {}
        forged["warnings"] = []
        return forged
    if isinstance(value, dict) and "data" in value:  # one parsed file
        return {**value, "data": {"name": "evil", "mailboxes": []}}
    return True  # a state verdict: "these bytes are valid"


def test_every_forged_cache_entry_is_ignored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALICE_PW", "a")
    monkeypatch.setenv("BOB_PW", "b")
    c = Cli(standard(tmp_path / "repo", **{"mailgitops.yaml": ACCESS}), capsys)
    assert c("apply", "--auto-approve", "--actor", "root")[0] == 0
    tree(c.root, {"providers.d/corp.yaml": CORP + "display_name: Corp\n"})
    expected = [c("plan", "--actor", who, "--no-cache") for who in ("root", "alice")]
    assert [c("plan", "--actor", who) for who in ("root", "alice")] == expected
    entries = _cache_entries()
    kinds = set()
    for entry in entries:
        raw = entry.read_bytes()
        value = json.loads(raw[65:])
        shape = value if isinstance(value, dict) else {}
        kinds.add("config" if "desired" in shape else "file" if "data" in shape else "verdict")
        forged = json.dumps(_poison(value)).encode()
        entry.write_bytes(raw[:65] + forged)  # the old MAC over new content
    assert kinds == {"config", "file", "verdict"}, "every kind of entry was poisoned"
    assert [c("plan", "--actor", who) for who in ("root", "alice")] == expected
    # The attack of the issue: the whole-config entry with `settings: {}` in the old format.
    for entry in _cache_entries():
        entry.write_text(
            json.dumps(
                {
                    "key": entry.stem,
                    "value": _poison({"desired": {"providers": {}, "mailboxes": {}}}),
                }
            )
        )
    before = c.state.read_bytes()
    code, _, err = c("apply", "--auto-approve", "--actor", "alice")
    assert code == 1 and "may not make" in err
    assert c.state.read_bytes() == before


def test_even_a_validly_signed_cache_entry_does_not_decide(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the cache key leaked, a forged entry can make `plan` slower or wrong for the one who
    forged it, but access decisions and apply read the files."""
    from mailgitops import cache

    monkeypatch.setenv("MAILGITOPS_CACHE_KEY", "leaked-key-leaked-key-leaked-key")
    monkeypatch.setenv("ALICE_PW", "a")
    monkeypatch.setenv("BOB_PW", "b")
    c = Cli(standard(tmp_path / "repo", **{"mailgitops.yaml": ACCESS}), capsys)
    assert c("apply", "--auto-approve", "--actor", "root")[0] == 0
    tree(c.root, {"providers.d/corp.yaml": CORP + "display_name: Corp\n"})
    assert c("plan", "--actor", "root")[0] == 0
    store = cache.open_cache(disabled=False)
    assert store is not None
    for entry in _cache_entries():
        key = entry.stem
        value = store.get(key)
        assert value is not None
        if isinstance(value, dict) and "desired" in value:
            forged = copy.deepcopy(value)
            forged["settings"] = {}  # an old cache carried settings: never read now
            store.put(key, forged)
    before = c.state.read_bytes()
    code, _, err = c("plan", "--actor", "alice")
    assert code == 1 and "may not make" in err
    code, _, err = c("apply", "--auto-approve", "--actor", "alice")
    assert code == 1 and "may not make" in err
    assert c.state.read_bytes() == before


def test_cache_is_private(cli: Cli) -> None:
    _corp_display_name(cli)
    assert cli("plan")[0] == 0
    directory = Path(os.environ["MAILGITOPS_CACHE_DIR"])
    entries = _cache_entries()
    assert entries
    for path in [directory, *{p.parent for p in entries}]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    for path in entries:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    key = Path(os.environ["XDG_STATE_HOME"]) / "mailgitops" / "cache.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert not key.is_relative_to(directory), "the key is not in what CI restores"


# -- identifiers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "shown"),
    [
        ("address", '"alice@example.com\\n"', "U+000A"),
        ("address", '"alice\\u200b@example.com"', "U+200B ZERO WIDTH SPACE"),
        ("owner", '"bob\\u202e"', "U+202E RIGHT-TO-LEFT OVERRIDE"),
        ("owner", '"bob\\n"', "U+000A LINE FEED"),
        ("owner", '"bo\\u3164b"', "U+3164 HANGUL FILLER"),
    ],
)
def test_invisible_characters_in_mailbox_identifiers_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str, value: str, shown: str
) -> None:
    values = {"address": '"x@example.com"', "owner": "x"} | {field: value}
    box = (
        f"mailboxes:\n  - address: {values['address']}\n    owner: {values['owner']}\n"
        "    provider: corp\n    password: {env: PW}\n"
    )
    c = Cli(tree(tmp_path, {"providers.d/corp.yaml": CORP, "mailboxes.d/x.yaml": box}), capsys)
    code, out, _ = c("validate", state=False)
    assert code == 1 and shown in out and "[invisible-character]" in out
    assert "mailboxes.d/x.yaml:2:" in out or "mailboxes.d/x.yaml:3:" in out


def test_invisible_characters_in_shares_access_and_domains_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    box = (
        "mailboxes:\n  - address: x@example.com\n    owner: x\n    password: {env: PW}\n"
        '    shared_with:\n      - user: "bob\\u2060"\n        rights: [read]\n'
    )
    files = {
        "providers.d/corp.yaml": CORP.replace(
            "[example.com]", '[example.com, "ex\\u200dample.org"]'
        ),
        "mailboxes.d/x.yaml": box,
        "mailgitops.yaml": 'access:\n  administrators: ["root\\u00ad"]\n',
    }
    c = Cli(tree(tmp_path, files), capsys)
    code, out, _ = c("validate", state=False)
    assert code == 1
    assert "U+2060 WORD JOINER" in out and "U+00AD SOFT HYPHEN" in out
    assert "providers.d/corp.yaml:2:" in out


def test_identifiers_in_the_state_are_matched_whole(cli: Cli) -> None:
    live = cli.live()
    for key, bad in (("alice@example.com\n", None), ("eve@example.com", "bob\u200b")):
        broken = copy.deepcopy(live)
        broken["mailboxes"][key] = {"provider": "corp", "owner": bad or "alice"}
        cli.state.write_text(json.dumps(broken))
        before = cli.state.read_bytes()
        for argv in (("plan",), ("apply", "--auto-approve")):
            code, _, err = cli(*argv)
            assert code == 1, argv
            assert "schemas/state.schema.json" in err or "invisible" in err
        assert cli.state.read_bytes() == before


# -- the property ----------------------------------------------------------------------------------

_FIELDS = ("action", "kind", "id", "live_key", "before", "after", "diff")
_VALUES = st.one_of(
    st.sampled_from(["create", "update", "delete", "adopt", "provider", "mailbox", None, {}, []]),
    st.sampled_from(["corp", "legacy", "gone-a", "ui-made", "alice@example.com"]),
    st.builds(
        lambda owner: {"owner": owner, "provider": "corp"}, st.sampled_from(["mallory", "bob"])
    ),
)


@st.composite
def _tamperings(draw: st.DrawFn) -> list[tuple[str, Any, Any, Any]]:
    """Edits an attacker could make to a plan document: (what, index, field, value)."""
    kinds = st.sampled_from(
        [
            "change-field",
            "drop-change",
            "copy-change",
            "desired-edit",
            "desired-drop",
            "serial",
            "location",
            "refusals",
        ]
    )
    return draw(
        st.lists(
            st.tuples(kinds, st.integers(0, 30), st.sampled_from(_FIELDS), _VALUES), max_size=3
        )
    )


def _tamper(doc: Doc, edits: list[tuple[str, Any, Any, Any]]) -> None:
    changes = doc["changes"]
    boxes = doc["desired"]["mailboxes"]
    for what, index, field, value in edits:
        if what == "change-field" and changes:
            changes[index % len(changes)][field] = value
        elif what == "drop-change" and changes:
            del changes[index % len(changes)]
        elif what == "copy-change" and changes:
            changes.append({**changes[index % len(changes)], field: value})
        elif what == "desired-edit" and boxes:
            key = sorted(boxes)[index % len(boxes)]
            boxes[key] = {**boxes[key], **(value if isinstance(value, dict) else {})}
        elif what == "desired-drop" and boxes:
            del boxes[sorted(boxes)[index % len(boxes)]]
        elif what == "serial":
            doc["state"]["serial"] += index
        elif what == "location":
            doc["state"]["location"]["where"] = f"state/other-{index}.json"
        elif what == "refusals":
            doc["refusals"] = []


@budget(40)
@given(spec=config_specs(), data=st.data(), edits=_tamperings())
def test_any_plan_file_changes_live_only_as_config_and_live_justify(
    spec: ConfigSpec, data: st.DataObject, edits: list[tuple[str, Any, Any, Any]]
) -> None:
    with project(spec, data) as p:
        planfile = p.root / "saved.plan.json"
        p.run("plan", "--out", str(planfile))
        doc = json.loads(planfile.read_bytes())
        _tamper(doc, edits)
        doc["checksum"] = _checksum(doc)
        planfile.write_text(json.dumps(doc))
        code, _out, err = p.run("apply", str(planfile), *APPLY)
        if code != 0:
            event("refused")
            p.assert_untouched()
            return
        event("applied" if edits else "applied, untampered")
        got = p.live()
        # What the config on disk and the live state justify: apply without a plan file.
        if p.before is None:
            p.state.unlink(missing_ok=True)
        else:
            p.state.write_bytes(p.before)
        code, _out, err = p.run("apply", "--auto-approve", *APPLY)
        assert code == 0, err
        reference = p.live()
        assert (got["providers"], got["mailboxes"]) == (
            reference["providers"],
            reference["mailboxes"],
        )


def test_both_schema_validators_match_patterns_whole() -> None:
    """jsonschema (Python's re: `$` matches before a final newline) and fastjsonschema agree."""
    from mailgitops import schema

    for name, doc in (
        ("mailboxes", {"mailboxes": [{"address": "a@example.com\n", "owner": "a"}]}),
        ("provider", {"name": "corp\n", "imap": {"host": "h"}, "smtp": {"host": "h"}}),
        (
            "state",
            {
                "format_version": 1,
                "lineage": "l",
                "serial": 1,
                "providers": {},
                "mailboxes": {"a@example.com\n": {"provider": "p", "owner": "a"}},
            },
        ),
    ):
        assert not schema.is_valid(name, doc), name
        assert list(schema.validator(name).iter_errors(doc)), name
        fixed = json.loads(json.dumps(doc).replace("\\n", ""))
        assert schema.is_valid(name, fixed) and not list(schema.validator(name).iter_errors(fixed))


def test_the_readme_workflow_in_another_checkout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's CI flow: plan in the pull request's checkout, apply the artifact in another
    checkout of the merged config, with the state named by mailgitops.yaml."""
    import shutil

    from mailgitops.cli import main

    monkeypatch.setenv("ALICE_PW", "a")
    monkeypatch.setenv("BOB_PW", "b")
    settings = ACCESS + "state:\n  backend: file\n  path: ../state-dir/live.json\n"
    pr = standard(tmp_path / "pr", **{"mailgitops.yaml": settings})
    monkeypatch.chdir(pr)
    assert main(["plan", "--format", "markdown", "--out", "plan.json", "--actor", "root"]) == 0
    out, err = capsys.readouterr()
    assert "Plan: 3 to add" in out and "`mailgitops apply plan.json`" in err
    merged = tmp_path / "main"
    shutil.copytree(pr, merged)
    monkeypatch.chdir(merged)
    code = main(["apply", "plan.json", "--actor", "root", "--lock-timeout", "300"])
    out, err = capsys.readouterr()
    assert code == 0 and "Apply complete" in out, err
    assert (tmp_path / "state-dir/live.json").exists()


def test_a_plan_file_is_not_applied_outside_a_config_root(cli: Cli, tmp_path: Path) -> None:
    """An empty directory would be an empty config: every managed entry a delete."""
    from mailgitops.cli import main

    _corp_display_name(cli)
    path = tmp_path / "p.json"
    _save(cli, path)
    empty = tmp_path / "empty"
    empty.mkdir()
    before = cli.state.read_bytes()
    code = main(["apply", "-C", str(empty), "--state", str(cli.state), str(path)])
    err = cli.capsys.readouterr().err
    assert code == 1 and "is not a mailgitops config root" in err
    assert cli.state.read_bytes() == before
