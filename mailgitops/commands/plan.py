"""`mailgitops plan`: the YAML against the live state. Never creates or writes the state."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from mailgitops import output, planfile, render
from mailgitops.commands.common import (
    add_cache_argument,
    add_check_arguments,
    add_root_argument,
    add_state_argument,
)
from mailgitops.errors import MailgitopsError
from mailgitops.fsutil import atomic_write, replace_refusal
from mailgitops.pipeline import (
    Project,
    config_folder_of,
    load_project,
    planned_from,
    state_location,
)
from mailgitops.rules import access


def register(sub: argparse._SubParsersAction[Any]) -> None:
    parser = sub.add_parser(
        "plan",
        help="show what apply would change",
        description="Compare the config with the live state and show the changes. "
        "Exit 0: no changes or changes (see --detailed-exitcode); 1: error or refused plan.",
    )
    add_root_argument(parser)
    add_state_argument(parser)
    add_cache_argument(parser)
    parser.add_argument("--out", metavar="PLANFILE", help="save the plan for `apply PLANFILE`")
    parser.add_argument("--format", choices=("text", "json", "markdown"), default="text")
    parser.add_argument(
        "--actor",
        metavar="NAME",
        help="who makes the changes, checked against the access rules of mailgitops.yaml "
        "(default: $MAILGITOPS_ACTOR)",
    )
    parser.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 2 when there are changes (0 none, 1 error)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="also run `mailgitops check` on the providers the plan creates or changes; a "
        "failed check is shown, and `apply` of the saved plan refuses it",
    )
    add_check_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    project = load_project(args.root, use_cache=not args.no_cache)
    try:
        backend = project.backend(args.state)
        plan, desired, _state = planned_from(project, backend, access.actor_from(args.actor))
        location = state_location(project, args.state, backend)
        if args.check:
            from mailgitops.connect.planning import with_checks

            plan = with_checks(plan, project, args)
    except MailgitopsError as exc:
        if args.format == "json":
            # Scripts read stdout: a failed plan is still exactly one JSON document.
            output.out(json.dumps(_failure(project, exc), indent=2))
        raise
    if args.out:
        why = replace_refusal(Path(args.out), getattr(backend, "own_files", list)())
        folder = config_folder_of(Path(args.out), project.root)
        if why is None and folder is not None:
            why = f"it is in {folder} of the config root, which is read as config"
        if why is not None:
            raise MailgitopsError(f"refusing to write the plan to {args.out}: {why}")
        try:
            atomic_write(Path(args.out), planfile.dumps(plan, desired, location))
        except OSError as exc:
            raise MailgitopsError(f"cannot write plan file {args.out}: {exc.strerror}") from None
    output.out(render.render(plan, args.format, output.use_color(sys.stdout)), end="")
    if plan.refusals:
        for refusal in plan.refusals:
            output.error(str(refusal))
        return 1
    if args.out:
        output.err(
            f"Saved the plan to {args.out}; apply it with `{_apply_command(args, location)}`."
        )
    if args.detailed_exitcode and plan.has_changes:
        return 2
    return 0


def _failure(project: Project, exc: MailgitopsError) -> dict[str, Any]:
    findings = project.checked_diagnostics()
    return {
        "format_version": 1,
        "error": str(exc),
        "diagnostics": [d.to_json() for d in findings],
        "refusals": [r.to_json() for r in getattr(exc, "refusals", ())],
    }


def _apply_command(args: argparse.Namespace, location: planfile.Location) -> str:
    """The command that applies the saved plan from the same directory: apply finds the state
    in the plan file, except a PostgreSQL DSN given on the command line (its password is not
    kept), which must be given again."""
    words = ["mailgitops", "apply"]
    if args.root != ".":
        words += ["-C", args.root]
    if location.backend == "postgres" and location.chosen_by == "--state":
        words += ["--state", '"$DSN"']  # the --state given to plan; never echoed
    words.append(args.out)
    return " ".join(w if w == '"$DSN"' else shlex.quote(w) for w in words)
