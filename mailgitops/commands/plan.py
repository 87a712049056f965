"""`mailgitops plan`: the YAML against the live state. Never creates or writes the state."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailgitops import output, planfile
from mailgitops.commands.common import (
    add_actor_argument,
    add_check_arguments,
    add_command,
    add_config_arguments,
)
from mailgitops.connect.console import NetworkOptions
from mailgitops.errors import MailgitopsError
from mailgitops.fsutil import atomic_write, replace_refusal
from mailgitops.pipeline import (
    Project,
    config_folder_of,
    load_project,
    planned_from,
    state_location,
)
from mailgitops.render import diagnostics, plans
from mailgitops.rules import access


@dataclass(frozen=True)
class Options(NetworkOptions):
    root: str
    state: str | None
    no_cache: bool
    actor: str | None
    out: str | None
    format: str
    detailed_exitcode: bool
    check: bool


def register(sub: argparse._SubParsersAction[Any]) -> None:
    parser = add_command(
        sub,
        "plan",
        run,
        Options,
        help="show what apply would change",
        description="Compare the config with the live state and show the changes. "
        "Exit 0: no changes or changes (see --detailed-exitcode); 1: error or refused plan.",
    )
    add_config_arguments(parser)
    parser.add_argument("--out", metavar="PLANFILE", help="save the plan for `apply PLANFILE`")
    parser.add_argument("--format", choices=("text", "json", "markdown"), default="text")
    add_actor_argument(parser)
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


def run(options: Options) -> int:
    project = load_project(options.root, use_cache=not options.no_cache)
    try:
        backend = project.backend(options.state)
        plan, desired, _state = planned_from(project, backend, access.actor_from(options.actor))
        location = state_location(project, options.state, backend)
        if options.check:
            from mailgitops.connect.planning import with_checks

            plan = with_checks(plan, project, options)
    except MailgitopsError as exc:
        if options.format == "json":
            # Scripts read stdout: a failed plan is still exactly one JSON document.
            output.out(json.dumps(_failure(project, exc), indent=2))
        raise
    if options.out:
        why = replace_refusal(Path(options.out), getattr(backend, "own_files", list)())
        folder = config_folder_of(Path(options.out), project.root)
        if why is None and folder is not None:
            why = f"it is in {folder} of the config root, which is read as config"
        if why is not None:
            raise MailgitopsError(f"refusing to write the plan to {options.out}: {why}")
        try:
            atomic_write(Path(options.out), planfile.dumps(plan, desired, location))
        except OSError as exc:
            raise MailgitopsError(f"cannot write plan file {options.out}: {exc.strerror}") from None
    output.out(plans.render(plan, options.format, output.use_color(sys.stdout)), end="")
    if plan.refusals:
        for refusal in plan.refusals:
            output.error(str(refusal))
        return 1
    if options.out:
        command = _apply_command(options.root, options.out, location)
        output.err(
            f"Saved the plan to {output.visible(options.out)}; apply it with "
            f"`{output.visible(command)}`."
        )
    if options.detailed_exitcode and plan.has_changes:
        return 2
    return 0


def _failure(project: Project, exc: MailgitopsError) -> dict[str, Any]:
    findings = project.checked_diagnostics()
    return {
        "format_version": 1,
        "error": str(exc),
        "diagnostics": diagnostics.to_json(findings),
        "refusals": [r.to_json() for r in getattr(exc, "refusals", ())],
    }


def _apply_command(root: str, out: str, location: planfile.Location) -> str:
    """The command that applies the saved plan from the same directory: apply finds the state
    in the plan file, except a PostgreSQL DSN given on the command line (its password is not
    kept), which must be given again."""
    words = ["mailgitops", "apply"]
    if root != ".":
        words += ["-C", root]
    if location.backend == "postgres" and location.chosen_by == "--state":
        words += ["--state", '"$DSN"']  # the --state given to plan; never echoed
    words.append(out)
    return " ".join(w if w == '"$DSN"' else shlex.quote(w) for w in words)
