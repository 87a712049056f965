"""Entries made outside mailgitops are left alone: no change may delete or update an entry
that live does not mark `managed`, and only a desired entry may adopt one (SPEC §4). plan.compute
derives changes that keep this; the rule states it where every other rule is, so that a plan
from anywhere else (an older version, a hand-made file) is held to it as well."""

from __future__ import annotations

from mailgitops.plan.result import Plan, Refusal
from mailgitops.state.base import State

RULE = "unmanaged"


def refusal(plan: Plan, state: State) -> Refusal | None:
    details = []
    for change in plan.changes:
        entries = state.providers if change.kind == "provider" else state.mailboxes
        key = change.live_key if change.live_key is not None else change.id
        entry = entries.get(key)
        managed = entry is not None and entry.get("managed") is True
        what = f"{change.action} {change.kind} `{change.id}`"
        if change.action in ("update", "delete") and not managed:
            details.append(f"{what}: live has no managed entry `{key}`")
        elif change.action == "adopt" and (entry is None or managed):
            details.append(f"{what}: live has no unmanaged entry `{key}` to adopt")
        elif change.action == "create" and entry is not None:
            details.append(f"{what}: live already has `{key}`")
        elif change.action != "delete" and change.after is None:
            details.append(f"{what}: no desired entry")
    if not details:
        return None
    return Refusal(
        RULE,
        f"{len(details)} change(s) of this plan would touch entries made outside mailgitops "
        "or entries that are not there; nothing is applied",
        tuple(details),
    )
