"""The plan formats (SPEC §5): text, json and markdown over real Plan objects."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from mailgitops.diagnostics import Place
from mailgitops.model import (
    Auth,
    ImapServer,
    Mailbox,
    Provider,
    SecretRef,
    SmtpServer,
    Sync,
)
from mailgitops.plan.changes import Change, Unmanaged
from mailgitops.plan.diff import attribute_diff
from mailgitops.plan.result import Plan, Refusal, StateRef
from mailgitops.render import markdown, text
from mailgitops.render.plans import RENDERERS, render
from mailgitops.state.base import State

SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "plan.schema.json"
LEAK = "LEAKCHECK_VAR"
LEAK_VALUE = "hunter2-value-that-must-never-show"
ROW = re.compile(r"^\| (create|update|delete|adopt) \|", re.MULTILINE)


def provider(name: str = "corp", **kw: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "name": name,
        "service_type": "imap",
        "domains": ("example.com", "example.org"),
        "imap": ImapServer("imap.example.com", "ssl_tls", 993),
        "smtp": SmtpServer("smtp.example.com", "ssl_tls", 465),
        "exchange": None,
        "allow_receiving": True,
        "allow_sending": True,
        "login_format": "email_address",
        "auth": Auth(),
    }
    fields.update(kw)
    return Provider(**fields).attrs()


def mailbox(address: str = "alice@example.com", **kw: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "address": address,
        "owner": address.split("@", maxsplit=1)[0],
        "provider": "corp",
        "login": address,
        "password": SecretRef("env", LEAK),
    }
    fields.update(kw)
    return Mailbox(**fields).attrs()


def update(kind: Any, id: str, before: dict[str, Any], after: dict[str, Any]) -> Change:
    return Change("update", kind, id, before, after, attribute_diff(before, after))


def make_plan(*changes: Change, **kw: Any) -> Plan:
    return Plan(changes, kw.pop("unmanaged", ()), StateRef.of(State()), **kw)


def oauth_provider() -> dict[str, Any]:
    return provider(auth=Auth("oauth2", "1234.apps", SecretRef("env", LEAK)))


def everything() -> Plan:
    """Each action, secrets everywhere they can be, notes, unmanaged, refusals, warnings."""
    alice = mailbox()
    alice_new = mailbox(
        password=SecretRef("env", LEAK, "2"), signature="Best | Alice", sync=Sync(period="all")
    )
    adopted_live = {"provider": "corp", "owner": "bob"}
    adopted = mailbox("x@example.com", owner="carol")
    legacy_live = {"service_type": "imap", "domains": []}
    return make_plan(
        Change("create", "provider", "corp", None, oauth_provider(), source=Place("p.yaml", 1, 1)),
        Change(
            "adopt",
            "provider",
            "legacy",
            legacy_live,
            oauth_provider(),
            attribute_diff(legacy_live, oauth_provider()),
        ),
        update("mailbox", "alice@example.com", alice, alice_new),
        Change(
            "adopt",
            "mailbox",
            "x@example.com",
            adopted_live,
            adopted,
            attribute_diff(adopted_live, adopted),
            Place("m.yaml", 3, 5),
            "X@example.com",
            ("owner change: bob -> carol (the live mailbox belongs to another user)",),
        ),
        Change("delete", "mailbox", "old@example.com", mailbox("old@example.com"), None),
        unmanaged=(Unmanaged("mailbox", "ui@example.com", "corp"), Unmanaged("provider", "ui")),
        refusals=(Refusal("deletion-rule", "provider `ui` is still used", ("ui@example.com",)),),
        warnings=("p.yaml:5:9: port 455: did you mean 465?",),
        unreadable_secrets=("env:OTHER_PW",),
    )


# --- text -------------------------------------------------------------------------------------


def test_text_create_lists_every_attribute_flattened() -> None:
    out = text.render(
        make_plan(
            Change(
                "create",
                "provider",
                "corp",
                None,
                provider(),
                source=Place("providers.d/corp.yaml", 1, 1),
            )
        ),
        False,
    )
    assert '  + provider "corp"  # providers.d/corp.yaml:1\n' in out
    for line in (
        '+ imap.host = "imap.example.com"',
        "+ imap.port = 993",
        "+ smtp.timeout_seconds = 40",
        '+ domains = ["example.com", "example.org"]',
        "+ allow_sending = true",
        '+ auth.method = "basic"',
    ):
        assert f"      {line}\n" in out


def test_text_update_shows_changed_added_and_removed_attributes() -> None:
    before = provider(imap=ImapServer("imap.example.com", "starttls", 143))
    after = provider(display_name="Corporate")
    mb_before = mailbox(signature="Old | sig")
    out = text.render(
        make_plan(
            update("provider", "corp", before, after),
            update("mailbox", "alice@example.com", mb_before, mailbox(sender_name="Alice")),
        ),
        False,
    )
    assert '  ~ provider "corp"\n' in out
    assert "      ~ imap.port = 143 -> 993\n" in out
    assert '      ~ imap.security = "starttls" -> "ssl_tls"\n' in out
    assert '      + display_name = "Corporate"\n' in out
    assert '      - signature = "Old | sig"\n' in out
    assert '      + sender_name = "Alice"\n' in out


def test_text_delete_shows_what_is_gone() -> None:
    out = text.render(
        make_plan(Change("delete", "mailbox", "old@example.com", mailbox("old@example.com"), None)),
        False,
    )
    assert '  - mailbox "old@example.com"\n' in out
    assert '      - owner = "old"\n' in out
    assert "      - password = (sensitive)\n" in out
    assert out.endswith("Plan: 0 to add, 0 to change, 1 to destroy, 0 to adopt.\n")


def test_text_adopt_header_notes_and_rename() -> None:
    out = text.render(everything(), False)
    assert (
        '  <= mailbox "x@example.com" (adopt: made outside mailgitops, becomes managed)'
        "  # m.yaml:3\n" in out
    )
    assert '      ~ owner = "bob" -> "carol"\n' in out
    assert '      + login = "x@example.com"\n' in out
    assert (
        "      # note: owner change: bob -> carol (the live mailbox belongs to another user)\n"
        in out
    )
    assert '# note: the live entry "X@example.com" is renamed to "x@example.com"' in out
    # A section missing in live is shown attribute by attribute, so its secret stays hidden.
    assert '      + auth.method = "oauth2"\n' in out
    assert "      + auth.client_secret = (sensitive)\n" in out


def test_text_adopt_without_differences_says_so() -> None:
    live = mailbox()
    out = text.render(make_plan(Change("adopt", "mailbox", "alice@example.com", live, live)), False)
    assert "      # the live attributes already match the config\n" in out
    assert out.endswith("Plan: 0 to add, 0 to change, 0 to destroy, 1 to adopt.\n")


def test_secret_rotation_and_reference_change_are_told_apart() -> None:
    before = mailbox(password=SecretRef("env", LEAK, "1"))
    rotated = mailbox(password=SecretRef("env", LEAK, "2"))
    moved = mailbox(password=SecretRef("file", "secrets/alice"))
    out = text.render(
        make_plan(
            update("mailbox", "a@example.com", before, rotated),
            update("mailbox", "b@example.com", before, moved),
        ),
        False,
    )
    assert "      ~ password = (sensitive, rotated)\n" in out
    assert "      ~ password = (sensitive, changed)\n" in out


def test_text_sections_for_unmanaged_warnings_secrets_and_refusals() -> None:
    out = text.render(everything(), False)
    assert (
        "Unmanaged (made outside mailgitops, left alone):\n"
        '  mailbox "ui@example.com" (provider corp)\n'
        '  provider "ui"\n'
    ) in out
    assert "Warning: p.yaml:5:9: port 455: did you mean 465?\n" in out
    assert "Secrets not readable here (apply will need them):\n  - env:OTHER_PW\n" in out
    assert "Refused: provider `ui` is still used\n  - ui@example.com\n" in out
    assert out.index("Unmanaged") < out.index("Warning:") < out.index("Refused:")
    assert out.endswith("\nPlan: 1 to add, 1 to change, 1 to destroy, 2 to adopt.\n")


def test_no_changes_is_the_last_line() -> None:
    assert text.render(make_plan(), False) == "No changes.\n"
    out = text.render(make_plan(unmanaged=(Unmanaged("mailbox", "ui@example.com"),)), False)
    assert out.splitlines()[-1] == "No changes."
    assert 'mailbox "ui@example.com"\n' in out


def test_colour_only_when_asked() -> None:
    plan = everything()
    plain = text.render(plan, False)
    painted = text.render(plan, True)
    assert "\x1b[" not in plain
    assert '\x1b[32m  + provider "corp"\x1b[0m' in painted
    assert "\x1b[33m  ~ mailbox" in painted
    assert "\x1b[31m  - mailbox" in painted
    assert "\x1b[36m  <= mailbox" in painted
    assert re.sub(r"\x1b\[[0-9;]*m", "", painted) == plain


def test_user_text_cannot_reach_the_terminal() -> None:
    """A signature or an address made in the CRM's UI may hold escape sequences and bidi
    overrides: they are shown escaped, never interpreted."""
    sig = "evil\x1b[2J\u202eoops\nsecond"
    plan = make_plan(
        update("mailbox", "a@example.com", mailbox(), mailbox(signature=sig)),
        unmanaged=(Unmanaged("mailbox", "ui\x1b]0;x\x07@example.com", "corp\u202e"),),
    )
    out = text.render(plan, False)
    assert "\x1b" not in out and "\u202e" not in out and "\x07" not in out
    assert '+ signature = "evil\\u001b[2J\\u202eoops\\nsecond"' in out
    md = markdown.render(plan)
    assert "\x1b" not in md and "\u202e" not in md


# --- secrets ------------------------------------------------------------------------------------


def test_secret_references_never_appear_in_text_or_markdown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(LEAK, LEAK_VALUE)
    plan = everything()
    for out in (text.render(plan, False), text.render(plan, True), markdown.render(plan)):
        assert LEAK not in out
        assert LEAK_VALUE not in out
        assert "(sensitive)" in out


def test_json_holds_references_but_no_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """The JSON is the plan file apply reads: it needs the references. A Plan holds no secret
    values, so even with the secret readable here none can appear."""
    monkeypatch.setenv(LEAK, LEAK_VALUE)
    out = RENDERERS["json"](everything(), True)
    assert LEAK in out
    assert LEAK_VALUE not in out
    changes = {c["id"]: c for c in json.loads(out)["changes"]}
    diff = {d["path"]: d for d in changes["alice@example.com"]["diff"]}
    assert diff["password"] == {
        "path": "password",
        "before": {"env": LEAK},
        "after": {"env": LEAK, "version": "2"},
        "sensitive": True,
    }


# --- json ---------------------------------------------------------------------------------------


def test_json_is_one_document_that_validates_against_the_schema() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    for plan in (everything(), make_plan()):
        out = RENDERERS["json"](plan, False)
        assert out.endswith("}\n")
        data = json.loads(out)  # fails on a second document
        errors = [e.message for e in validator.iter_errors(data)]
        assert errors == []
        assert data == plan.to_json()
    data = json.loads(render(everything(), "json", False))
    assert [(c["action"], c["id"]) for c in data["changes"]][:2] == [
        ("create", "corp"),
        ("adopt", "legacy"),
    ]
    assert data["unmanaged"][0] == {"kind": "mailbox", "id": "ui@example.com", "provider": "corp"}


def test_schema_rejects_what_to_json_never_produces() -> None:
    validator = Draft202012Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))
    good = everything().to_json()
    bad_docs = [
        {**good, "surprise": 1},
        {**good, "format_version": 2},
        {**good, "changes": [{**good["changes"][0], "action": "replace"}]},
        {**good, "changes": [{**good["changes"][0], "before": {}}]},  # a create has no before
        {**good, "changes": [{**good["changes"][0], "extra": True}]},
    ]
    for doc in bad_docs:
        assert not validator.is_valid(doc)


# --- markdown -----------------------------------------------------------------------------------


def test_markdown_layout() -> None:
    md = markdown.render(everything())
    assert md.startswith(
        "### mailgitops plan\n\n**Plan: 1 to add, 1 to change, 1 to destroy, 2 to adopt.**\n"
    )
    assert md.endswith("\n") and not md.endswith("\n\n")
    caution = md.index("> [!CAUTION]\n> **Refused:** provider &#96;ui&#96; is still used\n")
    warning = md.index("> [!WARNING]\n> - p.yaml:5:9: port 455: did you mean 465?\n")
    fold = md.index(
        "<details><summary>Show 5 changes</summary>\n\n| Action | Kind | ID | Changes |"
    )
    assert caution < warning < fold < md.index("</details>")
    assert "> - Secrets not readable here (apply will need them): env:OTHER\\_PW\n" in md
    assert (
        "| update | mailbox | alice@&#8203;example.com | password: (sensitive, rotated)<br>" in md
    )
    assert 'signature: (unset) → "Best \\| Alice"' in md
    assert 'sync.period: "week" → "all"' in md
    assert '| delete | mailbox | old@&#8203;example.com | provider: "corp"<br>' in md
    assert (
        "Unmanaged (made outside mailgitops, left alone):\n\n"
        "- mailbox ui@&#8203;example.com (provider corp)\n- provider ui\n"
    ) in md
    assert len(ROW.findall(md)) == 5


def test_markdown_without_changes_has_no_fold() -> None:
    assert markdown.render(make_plan()) == "### mailgitops plan\n\n**No changes.**\n"


def test_markdown_escapes_every_cell() -> None:
    sig = "A | B `code` <script>alert(1)</script> & *bold* [x](y) \\| end\nsecond line"
    plan = make_plan(
        Change("create", "mailbox", "a|b<i>@example.com", None, mailbox(signature=sig)),
    )
    md = markdown.render(plan)
    rows = [line for line in md.splitlines() if ROW.match(line)]
    assert len(rows) == 1, "a cell never breaks its row"
    row = rows[0]
    assert len(re.findall(r"(?<!\\)\|", row)) == 5, "4 cells: only the 5 separators are bare"
    assert "<script>" not in md and "`" not in md and "<i>" not in md
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in row
    assert "a\\|b&lt;i&gt;@&#8203;example.com" in row
    # JSON quoting first (a backslash doubles, a newline becomes \n), then cell escaping.
    assert (
        "&#96;code&#96; &lt;script&gt;alert(1)&lt;/script&gt; &amp; \\*bold\\* \\[x\\](y) "
        "&#92;&#92;\\| end&#92;nsecond line"
    ) in row


def test_markdown_md_cell_turns_newlines_into_breaks() -> None:
    assert markdown.md_cell("one\r\ntwo\nthree|") == "one<br>two<br>three\\|"


def test_markdown_clips_a_huge_value() -> None:
    plan = make_plan(update("mailbox", "a@example.com", mailbox(), mailbox(signature="x" * 5000)))
    md = markdown.render(plan)
    assert "x" * 200 in md and "x" * (markdown.MAX_LINE + 1) not in md
    assert re.search(r"x… \(\d+ more characters\) \|\n", md)


def test_markdown_stays_within_budget_with_3000_changes() -> None:
    changes = [
        Change("create", "mailbox", f"user{i}@example.com", None, mailbox(f"user{i}@example.com"))
        for i in range(3000)
    ]
    md = markdown.render(make_plan(*changes))
    assert len(md) <= markdown.DEFAULT_BUDGET
    shown = len(ROW.findall(md))
    note = re.search(r"… and (\d+) more changes not shown \(the full plan is in the CI log", md)
    assert note is not None
    assert 0 < shown < 3000 and shown + int(note.group(1)) == 3000
    assert md.count("<details>") == md.count("</details>") == 1
    assert md.endswith("</details>\n")
    assert "Show 3000 changes" in md
    rows = [line for line in md.splitlines() if ROW.match(line)]
    assert all(line.endswith(" |") for line in rows), "no row is cut"
    assert rows[-1].startswith(f"| create | mailbox | user{shown - 1}@&#8203;example.com |")


def test_markdown_budget_keeps_refusals_before_changes_and_unmanaged() -> None:
    details = tuple(f"mailbox{i}@example.com (created outside mailgitops)" for i in range(50))
    plan = make_plan(
        *(Change("delete", "mailbox", f"m{i}@example.com", mailbox(), None) for i in range(100)),
        refusals=(Refusal("deletion-rule", "provider `corp` is still used", details),),
        unmanaged=tuple(Unmanaged("mailbox", f"ui{i}@example.com", "corp") for i in range(500)),
    )
    md = markdown.render(plan, budget=5000)
    assert len(md) <= 5000
    assert md.count("mailbox49@&#8203;example.com") == 1, "every refusal detail fits first"
    assert "more unmanaged" not in md
    assert re.search(r"- … and \d+ more entries not shown\n$", md)
    assert md.count("<details>") == md.count("</details>")
    assert markdown.render(plan, budget=2000).count("> - mailbox") < 50


def test_markdown_budget_too_small_for_the_skeleton() -> None:
    with pytest.raises(ValueError, match="does not fit in 10 characters"):
        markdown.render(everything(), budget=10)


def test_renderers_by_name() -> None:
    plan = everything()
    assert set(RENDERERS) == {"text", "json", "markdown"}
    assert render(plan, "text", False) == text.render(plan, False)
    assert render(plan, "markdown", True) == markdown.render(plan)
    for fmt in ("json", "markdown"):
        assert "\x1b[" not in render(plan, fmt, True)
