"""`mailgitops apply`: make live match, under the state lock.

Without PLANFILE the plan is made under the lock, against the state as the previous apply left
it, so concurrent applies never lose each other's updates. With PLANFILE the plan is made
again under the lock from the file's desired entries (which must be what the config produces
now) and the live state it was made against; it is refused when live changed since, or when
the file's changes are not what that gives (SPEC §9; those decisions are mailgitops/apply.py's).
Either way every rule is evaluated on the plan that is applied, never read from a file, and
nothing comes from the cache."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from dataclasses import dataclass
from typing import Any

from mailgitops import output, planfile
from mailgitops.apply import rederive, refuse_failed_checks, require_secrets
from mailgitops.commands.common import (
    add_actor_argument,
    add_command,
    add_config_arguments,
    add_lock_timeout_argument,
)
from mailgitops.config.files import check_root
from mailgitops.errors import (
    MailgitopsError,
    UsageError,
)
from mailgitops.pipeline import (
    backend_for_plan,
    load_project,
    make_plan,
)
from mailgitops.plan.apply import apply_to
from mailgitops.plan.changes import Change
from mailgitops.plan.result import Plan
from mailgitops.render import plans
from mailgitops.render.text import quote
from mailgitops.rules import access
from mailgitops.state.base import State, StateBackend


@dataclass(frozen=True)
class Options:
    root: str
    state: str | None
    actor: str | None
    planfile: str | None
    auto_approve: bool
    allow_mass_delete: bool
    allow_failed_check: bool
    format: str
    lock_timeout: float


def register(sub: argparse._SubParsersAction[Any]) -> None:
    parser = add_command(
        sub,
        "apply",
        run,
        Options,
        help="make live match the config (or a saved plan)",
        description="Apply a saved plan, or plan and apply after confirmation.",
    )
    add_config_arguments(parser)
    parser.add_argument("planfile", nargs="?", metavar="PLANFILE", help="a plan saved by --out")
    add_actor_argument(parser)
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
    parser.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="json: print only the result, as one JSON document (schemas/apply.schema.json)",
    )
    add_lock_timeout_argument(parser, "the state lock")


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


def run(options: Options) -> int:
    if options.format != "json":
        code, _ = _run(options, text=True)
        return code
    try:
        code, result = _run(options, text=False)
    except MailgitopsError as exc:
        # Scripts read stdout: a failed apply is still exactly one JSON document.
        output.out(json.dumps({**_result("failed", None, None, None), "error": str(exc)}, indent=2))
        raise
    output.out(json.dumps(result, indent=2))
    return code


def _run(options: Options, text: bool) -> tuple[int, dict[str, Any]]:
    interactive = sys.stdin.isatty()
    if options.planfile is None and not options.auto_approve and not interactive:
        raise UsageError(
            "apply without a PLANFILE asks for confirmation, and there is no terminal: "
            "pass --auto-approve, or apply a reviewed plan file"
        )
    actor = access.actor_from(options.actor)
    saved = None
    if options.planfile:
        saved = planfile.load(options.planfile)
        refuse_failed_checks(saved.plan, options.planfile, options.allow_failed_check)
    # Never the cache: apply decides from the files themselves (SPEC §9).
    project = load_project(options.root, use_cache=False)
    # Before the backend: a wrong directory must not get a lock file or a state (SPEC §8).
    check_root(project.root)
    if saved is not None:
        desired, warnings = project.desired()
        backend = backend_for_plan(project, options.state, saved)
    else:
        backend = project.backend(options.state)
    with backend.lock(options.lock_timeout):
        current = backend.read()
        if saved is not None:
            # Access counts for who applies, not who planned (docs/access.md).
            plan = rederive(project, saved, desired, warnings, current, actor)
        else:
            plan = make_plan(project, current, actor)
            if text:
                output.out(plans.render(plan, "text", output.use_color(sys.stdout)), end="")
            elif not options.auto_approve:
                # --format json keeps stdout for the result: the plan the user is asked to
                # confirm goes to the terminal's stderr, never a blind "yes".
                output.err(plans.render(plan, "text", output.use_color(sys.stderr)), end="")
        plan.raise_if_unsafe(options.allow_mass_delete)
        if not plan.has_changes:
            if text:
                output.out("Nothing to apply: live already matches.")
            return 0, _result("no_changes", plan, backend, current)
        require_secrets(plan, project.root)
        if saved is None and not options.auto_approve and not _confirm():
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
