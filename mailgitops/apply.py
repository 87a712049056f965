"""What apply decides before it writes: a saved plan is made again under the lock and checked
against the live state and the config it claims to come from (SPEC §9), and a plan is applied
only when every secret it delivers can be read.

A plan file is only trusted for its desired entries and the state it was made against:
- stale: live moved since (lineage, serial or content) → refused;
- not the config's: its desired entries differ from what the config produces now → refused;
- edited: its changes differ from what its desired entries make of live → refused;
- every rule is evaluated again on the plan derived here (rules.evaluate), for who applies;
- a failed `plan --check` recorded in it refuses it unless the user allows it.
`commands/apply.py` holds the command: options, confirmation, output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mailgitops.errors import PlanRefused, SecretError, StalePlanError
from mailgitops.pipeline import Project, evaluate
from mailgitops.plan.compute import compute
from mailgitops.plan.desired import Desired
from mailgitops.plan.result import Plan, StateRef
from mailgitops.planfile import SavedPlan
from mailgitops.rules import secret_policy
from mailgitops.state.base import State


def rederive(
    project: Project,
    saved: SavedPlan,
    desired: Desired,
    warnings: tuple[str, ...],
    current: State,
    actor: str | None,
) -> Plan:
    """The plan to apply for the saved plan `saved`, made again from
    `desired` (the config's, read now) against `current` (read under the lock), with every
    rule evaluated for `actor`. Raises StalePlanError or PlanRefused."""
    origin = saved.origin
    reason = stale_reason(saved.plan, current)
    if reason is not None:
        raise StalePlanError(f"stale plan {origin}: {reason}. Make a new plan and review it.")
    # After the stale check: a plan made before a merge that has been applied since is
    # stale first of all.
    not_config = config_mismatch(desired, saved, project.root)
    if not_config is not None:
        raise PlanRefused(not_config)
    plan = compute(desired, current)
    mismatch = rederived_mismatch(saved.plan, plan)
    if mismatch is not None:
        raise PlanRefused(
            f"the plan {origin} does not match what its desired entries make of "
            f"the live state: {mismatch}. The file was edited, or made by another "
            f"version (mailgitops {saved.version}); make a new plan and review it."
        )
    return evaluate(project, plan, current, actor, warnings)


def require_secrets(plan: Plan, root: Path) -> None:
    """Every secret the plan delivers must be readable here, before anything is written."""
    missing = secret_policy.unreadable(plan.changes, root)
    if missing:
        raise SecretError(
            "apply delivers secrets that cannot be read here; nothing was written:\n"
            + "\n".join(f"  - {m}" for m in missing)
        )


def config_mismatch(desired: Desired, saved: SavedPlan, root: Path) -> str | None:
    """Why the plan file's desired entries are not the config's, or None: a plan file cannot
    ask for anything the reviewed config does not."""
    now = desired.plain()
    if now != saved.desired:
        differing = [
            f"{kind[:-2] if kind == 'mailboxes' else kind[:-1]} `{key}`"
            for kind in ("providers", "mailboxes")
            for key in sorted({*now[kind], *saved.desired[kind]})
            if now[kind].get(key) != saved.desired[kind].get(key)
        ]
        shown = ", ".join(differing[:5]) + (
            f" and {len(differing) - 5} more" if len(differing) > 5 else ""
        )
        return (
            f"the plan {saved.origin} does not match the config in {root}: its desired "
            f"entries differ for {shown}. Make a new plan from this config and review it."
        )
    return None


def rederived_mismatch(saved: Plan, plan: Plan) -> str | None:
    """How the file's changes differ from the ones derived again, or None when they agree."""
    written = [c.to_json() for c in saved.changes]
    derived = [c.to_json() for c in plan.changes]

    def name(change: dict[str, Any]) -> str:
        return f"`{change.get('action')} {change.get('kind')} {change.get('id')}`"

    for index, (w, d) in enumerate(zip(written, derived, strict=False)):
        if w != d:
            return (
                f"change {index + 1} is {name(w)} in the file, {name(d)} here (or differs in "
                "detail)"
            )
    if len(written) != len(derived):
        longer = written if len(written) > len(derived) else derived
        extra = name(longer[min(len(written), len(derived))])
        return (
            f"the file lists {len(written)} change(s), the desired entries give "
            f"{len(derived)} (first difference: {extra})"
        )
    return None  # the summary is counted from the changes, never read from the file


def stale_reason(plan: Plan, current: State) -> str | None:
    now = StateRef.of(current)
    if plan.state == now:
        return None
    if plan.state.lineage != now.lineage:
        if plan.state.lineage is None:
            return "it was made against an empty state, which has been applied to since"
        return "the state has another lineage (a different live system)"
    if plan.state.serial != now.serial:
        return f"the state moved from serial {plan.state.serial} to {now.serial}"
    return "the state's content changed since the plan was made (an edit outside apply?)"


def refuse_failed_checks(plan: Plan, planfile: str, allowed: bool) -> None:
    """A plan saved by `plan --check` whose connection checks failed is not applied unless
    the user says so: those servers would not work for the mailboxes that use them."""
    failed = plan.failed_checks()
    if failed and not allowed:
        raise PlanRefused(
            f"the plan is refused: {planfile} records {len(failed)} failed connection "
            "check(s) (plan --check); fix the provider or pass --allow-failed-check:\n"
            + "\n".join(f"  - {line}" for line in failed)
        )
