"""A plan applied to a state: the state apply writes."""

from __future__ import annotations

from collections.abc import Callable

from mailgitops.plan.changes import Change
from mailgitops.plan.result import Plan
from mailgitops.state.base import State


def apply_to(
    plan: Plan, state: State, lineage: str, progress: Callable[[Change], None] | None = None
) -> State:
    """The state after applying `plan`: entries replaced by the desired attributes (so a new
    plan finds them equal), serial + 1. Returns `state` itself when there is nothing to do.
    `progress` is told of each change once it is made, in the order of application."""
    if not plan.changes:
        return state
    providers = dict(state.providers)
    mailboxes = dict(state.mailboxes)
    for change in plan.changes:
        entries = providers if change.kind == "provider" else mailboxes
        if change.live_key is not None:
            entries.pop(change.live_key, None)
        if change.action == "delete":
            entries.pop(change.id, None)
        else:
            assert change.after is not None
            entries[change.id] = {"managed": True, **change.after}
        if progress is not None:
            progress(change)
    return State(
        lineage=state.lineage or lineage,
        serial=state.serial + 1,
        providers=dict(sorted(providers.items())),
        mailboxes=dict(sorted(mailboxes.items())),
    )
