"""The compiled pass/fail schema check (fastjsonschema) must give the reference validator's
(jsonschema's) verdict on every document: the fast path may never hide or invent a problem."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailgitops import schema
from mailgitops.config.parse import parse

CASES = Path(__file__).parent / "cases" / "validate"

PROVIDER: dict[str, Any] = {
    "name": "corp",
    "display_name": "Corp",
    "service_type": "imap",
    "domains": ["example.com"],
    "imap": {"host": "imap.example.com", "security": "starttls", "port": 143},
    "smtp": {"host": "smtp.example.com", "security": "ssl_tls", "port": 465, "timeout_seconds": 30},
    "allow_receiving": True,
    "allow_sending": True,
    "login_format": "manual",
    "auth": {"method": "oauth2", "client_id": {"env": "ID"}, "client_secret": {"file": "s"}},
}
MAILBOXES: dict[str, Any] = {
    "defaults": {"provider": "corp", "sync": {"period": "all"}},
    "mailboxes": [
        {
            "address": "a@example.com",
            "owner": "a",
            "login": "a",
            "password": {"env": "PW"},
            "send_emails": False,
            "default": True,
            "signature": "x",
            "sender_name": "A",
            "sync": {"enabled": True, "since": "2026-01-01", "folders": ["INBOX"]},
            "shared_with": [{"user": "b", "rights": ["read", "send"]}],
        }
    ],
}
SETTINGS: dict[str, Any] = {
    "state": {"backend": "file", "path": "x.json"},
    "access": {"administrators": ["a"], "mailbox_managers": ["b"]},
}
DOCS = {"provider": PROVIDER, "mailboxes": MAILBOXES, "settings": SETTINGS}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 70000)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | st.sampled_from(["imap", "ssl_tls", "none", "a@b.co", "x.example"]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(["env", "file", "host", "port", "user", "rights", "x"]),
            children,
            max_size=3,
        )
    ),
    max_leaves=6,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += _paths(value, (*prefix, index))
    return out


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, Any]:
    name = draw(st.sampled_from(sorted(DOCS)))
    doc = copy.deepcopy(DOCS[name])
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(doc)))
        if not path:
            continue
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(json_values)
        elif action == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=8))] = draw(json_values)
    return name, doc


def _reference(name: str, data: Any) -> bool:
    return not any(True for _ in schema.validator(name).iter_errors(data))


@settings(derandomize=True, max_examples=200, deadline=None)
@given(mutated())
def test_same_verdict_on_mutated_documents(case: tuple[str, Any]) -> None:
    name, data = case
    assert schema.is_valid(name, data) == _reference(name, data)


@pytest.mark.parametrize("name", sorted(DOCS))
def test_base_documents_are_valid(name: str) -> None:
    assert schema.is_valid(name, DOCS[name]) and _reference(name, DOCS[name])


def test_same_verdict_on_every_fixture_file() -> None:
    checked = 0
    for case in sorted(CASES.glob("*.case")):
        for section in case.read_bytes().split(b"\n--- ")[1:]:
            rel, _, body = section.partition(b"\n")
            kind = {
                "providers.d": "provider",
                "mailboxes.d": "mailboxes",
                "mailgitops.yaml": "settings",
            }.get(rel.decode().split("/")[0])
            if kind is None:
                continue
            data = parse(body, rel.decode()).data
            if data is None:
                continue
            assert schema.is_valid(kind, data) == _reference(kind, data), case.name
            checked += 1
    assert checked > 40


def test_fast_check_does_not_modify_the_data() -> None:
    data = {
        "name": "p",
        "domains": ["p.example"],
        "imap": {"host": "i.example"},
        "smtp": {"host": "s.example"},
    }
    before = copy.deepcopy(data)
    assert schema.is_valid("provider", data)
    assert data == before, "defaults must never be written into checked data"
