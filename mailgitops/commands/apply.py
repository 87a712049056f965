"""`mailgitops apply`: make live match, under the state lock.

Without PLANFILE the plan is made under the lock, against the state as the previous apply left
it, so concurrent applies never lose each other's updates. With PLANFILE the plan is made
again under the lock from the file's desired entries (which must be what the config produces
now) and the live state it was made against; it is refused when live changed since, or when
the file's changes are not what that gives (SPEC §9, planfile.py). Either way every rule is
evaluated on the plan that is applied, never read from a file, and nothing comes from the
cache."""

from __future__ import annotations

import argparse
import sys
import uuid
from typing import Any

from mailgitops import output, planfile, render, secrets
from mailgitops.commands.common import (
    add_cache_argument,
    add_lock_timeout_argument,
    add_root_argument,
    add_state_argument,
)
from mailgitops.errors import (
    PlanRefused,
    SecretError,
    StalePlanError,
    UsageError,
)
from mailgitops.load import MAILBOXES_DIR, PROVIDERS_DIR, SETTINGS_FILE
from mailgitops.pipeline import (
    Project,
    backend_for_plan,
    evaluate,
    load_project,
    make_plan,
)
from mailgitops.plan import Desired, Plan, StateRef, apply_to, compute
from mailgitops.rules import access
from mailgitops.state.base import State

# What makes a directory a config root (SPEC §8). A plan file is only applied against the
# config it must equal: an empty directory would make every entry of live a delete.
CONFIG_MARKERS = (PROVIDERS_DIR, MAILBOXES_DIR, SETTINGS_FILE)


def register(sub: argparse._SubParsersAction[Any]) -> None:
    parser = sub.add_parser(
        "apply",
        help="make live match the config (or a saved plan)",
        description="Apply a saved plan, or plan and apply after confirmation.",
    )
    add_root_argument(parser)
    add_state_argument(parser)
    add_cache_argument(parser)
    parser.add_argument("planfile", nargs="?", metavar="PLANFILE", help="a plan saved by --out")
    parser.add_argument(
        "--actor",
        metavar="NAME",
        help="who makes the changes, checked against the access rules of mailgitops.yaml "
        "(default: $MAILGITOPS_ACTOR)",
    )
    parser.add_argument(
        "--auto-approve", action="store_true", help="apply without asking (needed without a TTY)"
    )
    parser.add_argument(
        "--allow-mass-delete",
        action="store_true",
        help="apply a plan that deletes more than safety.max_delete_share of the managed mailboxes",
    )
    add_lock_timeout_argument(parser, "the state lock")
    parser.set_defaults(func=run)


def _config_mismatch(desired: Desired, saved: planfile.SavedPlan, project: Project) -> str | None:
    """Why the plan file's desired entries are not the config's, or None: a plan file cannot
    ask for anything the reviewed config does not."""
    now = planfile.plain_desired(desired)
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
            f"the plan {saved.origin} does not match the config in {project.root}: its desired "
            f"entries differ for {shown}. Make a new plan from this config and review it."
        )
    return None


def _rederived_mismatch(saved: Plan, plan: Plan) -> str | None:
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


def _stale_reason(plan: Plan, current: State) -> str | None:
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


def _confirm() -> bool:
    output.err("Do you want to apply these changes? Only 'yes' will be accepted.")
    output.err("  Enter a value: ", end="")
    sys.stderr.flush()
    answer = sys.stdin.readline().strip()
    return answer == "yes"


def run(args: argparse.Namespace) -> int:
    interactive = sys.stdin.isatty()
    if args.planfile is None and not args.auto_approve and not interactive:
        raise UsageError(
            "apply without a PLANFILE asks for confirmation, and there is no terminal: "
            "pass --auto-approve, or apply a reviewed plan file"
        )
    actor = access.actor_from(args.actor)
    saved = planfile.load(args.planfile) if args.planfile else None
    # Never the cache: apply decides from the files themselves (SPEC §9).
    project = load_project(args.root, use_cache=False)
    if saved is not None:
        if not any((project.root / name).exists() for name in CONFIG_MARKERS):
            raise UsageError(
                f"{project.root} is not a config root (no {', '.join(CONFIG_MARKERS)}): apply "
                f"{args.planfile} where the config it was made from is, or name it with -C DIR"
            )
        desired, warnings = project.desired()
        backend = backend_for_plan(project, args.state, saved)
    else:
        backend = project.backend(args.state)
    with backend.lock(args.lock_timeout):
        current = backend.read()
        if saved is not None:
            reason = _stale_reason(saved.plan, current)
            if reason is not None:
                raise StalePlanError(
                    f"stale plan {args.planfile}: {reason}. Make a new plan and review it."
                )
            # After the stale check: a plan made before a merge that has been applied since is
            # stale first of all.
            not_config = _config_mismatch(desired, saved, project)
            if not_config is not None:
                raise PlanRefused(not_config)
            plan = compute(desired, current)
            mismatch = _rederived_mismatch(saved.plan, plan)
            if mismatch is not None:
                raise PlanRefused(
                    f"the plan {args.planfile} does not match what its desired entries make of "
                    f"the live state: {mismatch}. The file was edited, or made by another "
                    f"version (mailgitops {saved.version}); make a new plan and review it."
                )
            # Access counts for who applies, not who planned (docs/access.md).
            plan = evaluate(project, plan, current, actor, warnings)
        else:
            plan = make_plan(project, current, actor)
            output.out(render.render(plan, "text", output.use_color(sys.stdout)), end="")
        if plan.refusals:
            raise PlanRefused("the plan is refused:\n" + "\n".join(str(r) for r in plan.refusals))
        if plan.guards and not args.allow_mass_delete:
            raise PlanRefused("the plan is refused: " + "\n".join(str(g) for g in plan.guards))
        if not plan.has_changes:
            output.out("Nothing to apply: live already matches.")
            return 0
        missing = secrets.unreadable(plan.changes, project.root)
        if missing:
            raise SecretError(
                "apply delivers secrets that cannot be read here; nothing was written:\n"
                + "\n".join(f"  - {m}" for m in missing)
            )
        if saved is None and not args.auto_approve and not _confirm():
            output.out("Apply cancelled; nothing was written.")
            return 1
        new = apply_to(plan, current, lineage=str(uuid.uuid4()))
        backend.write(new, current)
    s = plan.summary()
    output.out(
        f"Apply complete! {s['create']} added, {s['update']} changed, {s['delete']} destroyed, "
        f"{s['adopt']} adopted. State serial {new.serial} ({backend.describe()})."
    )
    return 0
