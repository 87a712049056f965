"""The mass-deletion guard: a plan that deletes more than `safety.max_delete_share` of the
managed mailboxes (once at least `safety.min_managed` are managed). `plan` shows it
prominently and succeeds (reviewers must see what would happen); `apply` refuses such a plan
unless given --allow-mass-delete. Counted on the re-derived plan, so a plan file cannot hide
deletions from it."""

from __future__ import annotations

from mailgitops.plan.result import Plan, Refusal
from mailgitops.settings import Safety
from mailgitops.state.base import State

RULE = "mass-delete"


def guard(plan: Plan, state: State, safety: Safety) -> Refusal | None:
    share = safety.max_delete_share
    minimum = safety.min_managed
    managed = sum(1 for _ in state.managed("mailbox"))
    deleted = sum(1 for c in plan.changes if c.kind == "mailbox" and c.action == "delete")
    if managed < minimum or deleted == 0 or deleted <= share * managed:
        return None
    return Refusal(
        RULE,
        f"MASS DELETION: this plan deletes {deleted} of {managed} managed mailboxes "
        f"({deleted / managed:.0%}), more than the {share:.0%} allowed (safety.max_delete_share "
        "in mailgitops.yaml); apply refuses it unless given --allow-mass-delete",
    )
