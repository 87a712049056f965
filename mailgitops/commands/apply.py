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
from mailgitops.plan import Change, Plan, StateRef, apply_to
from mailgitops.render.text import quote
from mailgitops.state.base import State, StateBackend


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
        "--format",
        choices=("text", "json"),
        default="text",
        help="json: print only the result, as one JSON document (schemas/apply.schema.json)",
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


def _confirm() -> bool:
    output.err("Do you want to apply these changes? Only 'yes' will be accepted.")
    output.err("  Enter a value: ", end="")
    sys.stderr.flush()
    answer = sys.stdin.readline().strip()
    return answer == "yes"


_MARKS = {"create": "+", "update": "~", "delete": "-", "adopt": "<="}
_VERBS = {"create": "creating", "update": "updating", "delete": "destroying", "adopt": "adopting"}


def _result(
    outcome: str, plan: Plan | None, backend: StateBackend | None, new: State | None
) -> dict[str, Any]:
    """apply's result as one JSON document (`--format json`, schemas/apply.schema.json)."""
    applied = plan if plan is not None and outcome == "applied" else None
    changes = applied.changes if applied is not None else ()
    summary = applied.summary() if applied is not None else dict.fromkeys(_VERBS, 0)
    return {
        "format_version": 1,
        "result": outcome,
        "changes": [{"action": c.action, "kind": c.kind, "id": c.id} for c in changes],
        "summary": summary,
        "state": None
        if new is None or backend is None
        else {"location": backend.describe(), "lineage": new.lineage, "serial": new.serial},
    }


def run(args: argparse.Namespace) -> int:
    if args.format != "json":
        code, _ = _run(args, text=True)
        return code
    try:
        code, result = _run(args, text=False)
    except MailgitopsError as exc:
        # Scripts read stdout: a failed apply is still exactly one JSON document.
        output.out(json.dumps({**_result("failed", None, None, None), "error": str(exc)}, indent=2))
        raise
    output.out(json.dumps(result, indent=2))
    return code


def _run(args: argparse.Namespace, text: bool) -> tuple[int, dict[str, Any]]:
    interactive = sys.stdin.isatty()
    if args.planfile is None and not args.auto_approve and not interactive:
        raise UsageError(
            "apply without a PLANFILE asks for confirmation, and there is no terminal: "
            "pass --auto-approve, or apply a reviewed plan file"
        )
    actor = access.actor_from(args.actor)
    saved = _load_plan(args.planfile) if args.planfile else None
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
            if text:
                output.out(render.render(plan, "text", output.use_color(sys.stdout)), end="")
        if plan.refusals:
            raise PlanRefused("the plan is refused:\n" + "\n".join(str(r) for r in plan.refusals))
        mass = safety.mass_deletion(plan, current, project.settings)
        if mass is not None and not args.allow_mass_delete:
            raise PlanRefused(f"the plan is refused: {mass}")
        if not plan.has_changes:
            if text:
                output.out("Nothing to apply: live already matches.")
            return 0, _result("no_changes", plan, backend, current)
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
            if text:
                output.out("Apply cancelled; nothing was written.")
            return 1, _result("cancelled", plan, backend, None)
        # One line per change as it is made, and a progress bar on a terminal for a long
        # apply; the state is then written in one atomic step (a failure writes nothing).
        progress = output.Progress(len(plan.changes) if text else 0, "Applying")

        def made(change: Change) -> None:
            progress.line(
                f"{_MARKS[change.action]} {change.kind} {quote(change.id)}: {_VERBS[change.action]}"
            )
            progress.step()

        try:
            new = apply_to(
                plan, current, lineage=str(uuid.uuid4()), progress=made if text else None
            )
            if text:
                progress.line(f"Writing the state ({backend.describe()})...")
            backend.write(new, current)
        finally:
            progress.close()
    if text:
        s = plan.summary()
        output.out(
            f"Apply complete! {s['create']} added, {s['update']} changed, {s['delete']} "
            f"destroyed, {s['adopt']} adopted. State serial {new.serial} ({backend.describe()})."
        )
    return 0, _result("applied", plan, backend, new)
