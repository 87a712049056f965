"""`mailgitops state push` / `state pull`: copy a live state between backends, keeping its
lineage and serial (docs/state-backends.md).

    mailgitops state push --from FILE [--to LOCATION] [--force] [--lock-timeout S]
    mailgitops state pull [--from LOCATION] --to FILE [--force] [--lock-timeout S]

LOCATION is a state file path or a postgresql:// URL (`?workspace=NAME`). Left out, it is the
configured state: $MAILGITOPS_STATE, else the `state:` setting of <root>/mailgitops.yaml
(with its password reference), else <root>/mailgitops.state.json — the state `apply` uses.
So `push` moves a file into the shared backend, and `pull` takes a copy out of it.

Both states are locked for the whole copy. A destination with another lineage, a higher
serial, or the same serial with other content is another history: it is refused unless
--force is given, the way `terraform state push` refuses without -force.
"""

from __future__ import annotations

import argparse
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from mailgitops import output
from mailgitops.commands.common import add_lock_timeout_argument, add_root_argument
from mailgitops.errors import StateError, UsageError
from mailgitops.pipeline import load_project
from mailgitops.state import open_backend
from mailgitops.state.base import State, StateBackend


def register(sub: argparse._SubParsersAction[Any]) -> None:
    parser = sub.add_parser(
        "state",
        help="copy the live state between backends (push, pull)",
        description="Copy a live state between the file and PostgreSQL backends, keeping its "
        "lineage and serial.",
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    push = verbs.add_parser(
        "push",
        help="copy a state file into the configured (or given) backend",
        description="Copy the state file --from FILE to --to LOCATION (default: the "
        "configured state, as apply uses it).",
    )
    push.add_argument(
        "--from", dest="source", required=True, metavar="FILE", help="the state file to copy"
    )
    push.add_argument(
        "--to", dest="destination", metavar="LOCATION", help="default: the configured state"
    )
    pull = verbs.add_parser(
        "pull",
        help="copy the configured (or given) state into a file",
        description="Copy the state at --from LOCATION (default: the configured state) to "
        "the file --to FILE.",
    )
    pull.add_argument(
        "--from", dest="source", metavar="LOCATION", help="default: the configured state"
    )
    pull.add_argument(
        "--to", dest="destination", required=True, metavar="FILE", help="the file to write"
    )
    for verb in (push, pull):
        add_root_argument(verb)
        verb.add_argument(
            "--force",
            action="store_true",
            help="overwrite a destination of another lineage, a higher serial, or other content",
        )
        add_lock_timeout_argument(verb, "each state's lock")
        verb.set_defaults(func=run)


def _open(location: str | None, root: str) -> StateBackend:
    if location is None:
        # The configured state: the settings are read only when they are needed, so that
        # copying between two explicit locations works outside any config repository.
        project = load_project(root)
        return project.backend(None)
    if not location:
        raise UsageError("--from and --to need a path or a postgresql:// URL")
    return open_backend(location, Path(root))


def refusal(source: State, destination: State) -> str | None:
    """Why copying `source` over `destination` would lose history, or None when it is safe."""
    if not destination.exists:
        return None
    if destination.lineage != source.lineage:
        return (
            f"the destination has another lineage ({destination.lineage}, the source has "
            f"{source.lineage}): it is the state of another live system"
        )
    if destination.serial > source.serial:
        return (
            f"the destination is newer (serial {destination.serial}, the source has "
            f"{source.serial}): copying would undo applies"
        )
    if destination.serial == source.serial and destination.checksum() != source.checksum():
        return (
            f"both have serial {source.serial} but different content: they have diverged "
            "(an edit outside apply?)"
        )
    return None


def run(args: argparse.Namespace) -> int:
    source = _open(args.source, args.root)
    destination = _open(args.destination, args.root)
    if source.describe() == destination.describe():
        raise UsageError(f"--from and --to are the same state ({source.describe()})")
    with ExitStack() as locks:
        locks.enter_context(source.lock(args.lock_timeout))
        locks.enter_context(destination.lock(args.lock_timeout))
        state = source.read()
        if not state.exists:
            raise StateError(f"there is no state at {source.describe()} to copy")
        current = destination.read()
        if current.exists and current.checksum() == state.checksum():
            output.out(
                f"{destination.describe()} already holds this state (lineage {state.lineage}, "
                f"serial {state.serial}); nothing was written."
            )
            return 0
        reason = refusal(state, current)
        if reason is not None and not args.force:
            raise StateError(
                f"refusing to overwrite {destination.describe()}: {reason}. Nothing was "
                "written; pass --force to overwrite it anyway."
            )
        destination.write(state, current)
    output.out(
        f"Copied state lineage {state.lineage}, serial {state.serial} "
        f"({len(state.providers)} providers, {len(state.mailboxes)} mailboxes) from "
        f"{source.describe()} to {destination.describe()}."
    )
    return 0
