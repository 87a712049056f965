"""mailgitops/rules: one idempotent evaluation of every rule (issue 12), on plans made by
plan.compute and on hand-made plans that compute never makes (a plan file from elsewhere)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mailgitops import rules
from mailgitops.plan.changes import Change
from mailgitops.plan.compute import compute
from mailgitops.plan.desired import Desired
from mailgitops.plan.result import Plan, Refusal, StateRef
from mailgitops.settings import Settings
from mailgitops.state.base import State

CORP: dict[str, Any] = {"service_type": "imap", "domains": ["example.com"]}


def _box(owner: str, provider: str = "corp") -> dict[str, Any]:
    return {"provider": provider, "owner": owner}


def _live() -> State:
    boxes = {f"u{i}@example.com": {"managed": True, **_box(f"u{i}")} for i in range(12)}
    boxes["ui@example.com"] = _box("ursula")  # made outside mailgitops
    return State("l", 3, {"corp": {"managed": True, **CORP}}, boxes)


def test_evaluate_is_idempotent_and_reports_each_rule_once(tmp_path: Path) -> None:
    live = _live()
    # The config drops the provider and 4 of 12 managed mailboxes.
    kept = {k: (_box(v["owner"]), None) for k, v in list(live.mailboxes.items())[4:12]}
    plan = compute(Desired({}, kept), live)
    once = rules.evaluate(plan, live, Settings(), None, tmp_path)
    twice = rules.evaluate(once, live, Settings(), None, tmp_path)
    assert once == twice
    assert [r.rule for r in once.refusals] == ["deletion-rule"]
    assert [g.rule for g in once.guards] == ["mass-delete"]
    assert sum("MASS DELETION" in w for w in twice.warnings) == 1
    assert "ui@example.com (created outside mailgitops)" in once.refusals[0].details


def test_refusals_written_into_a_plan_are_not_kept(tmp_path: Path) -> None:
    live = _live()
    plan = compute(Desired({"corp": (CORP, None)}, {}), live)
    assert plan.changes, "deletes of the managed mailboxes"
    forged = Plan(plan.changes, plan.unmanaged, plan.state, refusals=(Refusal("x", "y"),))
    assert [r.rule for r in rules.evaluate(forged, live, Settings(), None, tmp_path).refusals] == []


def test_unmanaged_entries_are_left_alone_by_any_plan(tmp_path: Path) -> None:
    live = _live()
    ui = live.mailboxes["ui@example.com"]
    u0 = live.mailboxes["u0@example.com"]
    forged = Plan(
        (
            Change("delete", "mailbox", "ui@example.com", ui, None),
            Change(
                "update", "mailbox", "x@example.com", ui, _box("mallory"), live_key="ui@example.com"
            ),
            Change("adopt", "mailbox", "u0@example.com", u0, _box("u0")),
            Change("create", "provider", "corp", None, CORP),
            Change("update", "mailbox", "u1@example.com", u0, None),
        ),
        (),
        StateRef.of(live),
    )
    refused = rules.evaluate(forged, live, Settings(), None, tmp_path).refusals
    unmanaged = [r for r in refused if r.rule == "unmanaged"]
    assert len(unmanaged) == 1 and len(unmanaged[0].details) == 5
