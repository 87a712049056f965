"""The pure diff on what only a hand-made live state holds, and the plan objects' own contracts:
lists that cannot be diffed element by element are compared whole, an empty plan leaves the
state as it is, and two references to the same version of live are one."""

from __future__ import annotations

from typing import Any

from mailgitops.plan.apply import apply_to
from mailgitops.plan.compute import compute
from mailgitops.plan.desired import Desired
from mailgitops.plan.diff import attribute_diff
from mailgitops.plan.result import StateRef
from mailgitops.state.base import State

LINEAGE = "11111111-2222-3333-4444-555555555555"


def _diff(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    return [(d.path, d.before, d.after) for d in attribute_diff(before, after)]


def test_domains_holding_a_non_string_are_compared_whole() -> None:
    """A live entry made outside mailgitops may hold anything in `domains`: no element path
    is made up for it, the whole list is shown."""
    before = {"domains": ["a.com", {"odd": 1}]}
    after = {"domains": ["a.com", "b.com"]}
    assert _diff(before, after) == [("domains", ["a.com", {"odd": 1}], ["a.com", "b.com"])]


def test_shared_with_not_keyed_by_distinct_users_is_compared_whole() -> None:
    one = {"user": "bob", "rights": ["read"]}
    twice = {"shared_with": [one, {"user": "bob", "rights": ["send"]}]}
    not_a_share = {"shared_with": [one, "carl"]}
    wanted = {"shared_with": [one]}
    assert _diff(twice, wanted) == [("shared_with", twice["shared_with"], [one])]
    assert _diff(not_a_share, wanted) == [("shared_with", not_a_share["shared_with"], [one])]


def test_shared_with_keyed_by_user_names_the_element() -> None:
    """The counterpart of the test above: distinct users are diffed user by user."""
    before = {"shared_with": [{"user": "bob", "rights": ["read"]}]}
    after = {"shared_with": [{"user": "bob", "rights": ["read", "send"]}]}
    assert _diff(before, after) == [('shared_with["bob"].rights["send"]', None, "send")]


def _state(serial: int = 3) -> State:
    entry = {"managed": True, "service_type": "imap", "domains": ["example.com"]}
    return State(lineage=LINEAGE, serial=serial, providers={"corp": entry}, mailboxes={})


def test_applying_a_plan_without_changes_returns_the_state_itself() -> None:
    state = _state()
    desired = Desired({"corp": ({"service_type": "imap", "domains": ["example.com"]}, None)}, {})
    plan = compute(desired, state)
    assert not plan.has_changes
    assert apply_to(plan, state, lineage="other") is state


def test_state_refs_to_the_same_version_of_live_are_one() -> None:
    state = _state()
    same = StateRef(LINEAGE, 3, state.checksum())
    later = StateRef.of(_state(serial=4))
    assert StateRef.of(state) == same and {StateRef.of(state), same} == {same}
    assert later != same and len({later, same}) == 2
