"""`mailgitops apply`: make live match, under the state lock.

Without PLANFILE the plan is made under the lock, against the state as the previous apply left
it, so concurrent applies never lose each other's updates. With PLANFILE exactly that plan is
applied, and refused when live changed since it was made."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path
from typing import Any

from mailgitops import access, output, render, safety, secrets
from mailgitops.commands.common import (
    add_cache_argument,
    add_lock_timeout_argument,
    add_root_argument,
    add_state_argument,
)
from mailgitops.errors import (
    MailgitopsError,
    PlanRefused,
    SecretError,
    StalePlanError,
    UsageError,
)
from mailgitops.pipeline import check_access, load_project, make_plan
from mailgitops.plan import Plan, StateRef, apply_to
from mailgitops.state.base import State


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
    parser.add_argument(
        "--allow-failed-check",
        action="store_true",
        help="apply a plan saved by `plan --check` although a connection check failed",
    )
    add_lock_timeout_argument(parser, "the state lock")
    parser.set_defaults(func=run)


def _load_plan(path: str) -> Plan:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise MailgitopsError(f"cannot read plan file {path}: {exc.strerror}") from None
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise MailgitopsError(f"{path}: not a mailgitops plan file (not JSON)") from None
    if not isinstance(data, dict):
        raise MailgitopsError(f"{path}: not a mailgitops plan file")
    return Plan.from_json(data, path)


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
    saved = _load_plan(args.planfile) if args.planfile else None
    if saved is not None:
        refuse_failed_checks(saved, args.planfile, args.allow_failed_check)
    project = load_project(args.root, use_cache=not args.no_cache)
    backend = project.backend(args.state)
    with backend.lock(args.lock_timeout):
        current = backend.read()
        if saved is not None:
            reason = _stale_reason(saved, current)
            if reason is not None:
                raise StalePlanError(
                    f"stale plan {args.planfile}: {reason}. Make a new plan and review it."
                )
            # The rules are checked again: a plan file may come from an older version.
            plan = safety.check(saved, current)
            # Access counts for who applies, not who planned: a saved plan carries no actor
            # that could be trusted (docs/access.md).
            plan = check_access(project, plan, actor)
        else:
            plan = make_plan(project, current, actor)
            output.out(render.render(plan, "text", output.use_color(sys.stdout)), end="")
        if plan.refusals:
            raise PlanRefused("the plan is refused:\n" + "\n".join(str(r) for r in plan.refusals))
        mass = safety.mass_deletion(plan, current, project.settings)
        if mass is not None and not args.allow_mass_delete:
            raise PlanRefused(f"the plan is refused: {mass}")
        if not plan.has_changes:
            output.out("Nothing to apply: live already matches.")
            return 0
        denied = secrets.violations(plan.changes, project.settings, project.root)
        if denied:
            raise SecretError(
                "the plan delivers secrets that mailgitops.yaml does not allow; nothing was "
                "written:\n" + "\n".join(f"  - {d}" for d in denied)
            )
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
