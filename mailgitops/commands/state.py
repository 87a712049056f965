"""`mailgitops state list` / `state forget ID...`: the live entries, and stop managing some
without deleting them from the live system (Terraform's `state rm`; SPEC §8).
`mailgitops state push` / `state pull`: copy a live state between backends, keeping its
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
import json
import sys
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailgitops import output
from mailgitops.commands.common import (
    add_command,
    add_lock_timeout_argument,
    add_root_argument,
    add_state_argument,
)
from mailgitops.errors import StateError, UsageError
from mailgitops.model import fold_address
from mailgitops.pipeline import load_project
from mailgitops.state import open_backend
from mailgitops.state.base import State, StateBackend


@dataclass(frozen=True)
class ListOptions:
    root: str
    state: str | None
    format: str


@dataclass(frozen=True)
class ForgetOptions:
    root: str
    state: str | None
    ids: list[str]
    lock_timeout: float


@dataclass(frozen=True)
class CopyOptions:
    """push and pull: --from and --to (None: the configured state)."""

    root: str
    source: str | None
    destination: str | None
    force: bool
    lock_timeout: float


def register(sub: argparse._SubParsersAction[Any]) -> None:
    parser = sub.add_parser(
        "state",
        help="copy the live state between backends (push, pull)",
        description="Copy a live state between the file and PostgreSQL backends, keeping its "
        "lineage and serial.",
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    listing = add_command(
        verbs,
        "list",
        run_list,
        ListOptions,
        help="list the live entries, managed or not",
        description="List the providers and mailboxes of the live state.",
    )
    add_state_argument(listing)
    listing.add_argument("--format", choices=("text", "json"), default="text")
    forget = add_command(
        verbs,
        "forget",
        run_forget,
        ForgetOptions,
        help="stop managing entries without deleting them from the live system",
        description="Mark live entries (provider names, mailbox addresses) as not managed: "
        "they stay in the live system, and plans leave them alone instead of deleting them. "
        "Locked and written atomically like apply.",
    )
    forget.add_argument("ids", nargs="+", metavar="ID", help="a provider name or mailbox address")
    add_state_argument(forget)
    add_lock_timeout_argument(forget, "the state lock")
    # push and pull take -C after --from and --to.
    push = add_command(
        verbs,
        "push",
        run,
        CopyOptions,
        root=False,
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
    pull = add_command(
        verbs,
        "pull",
        run,
        CopyOptions,
        root=False,
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


def run(options: CopyOptions) -> int:
    source = _open(options.source, options.root)
    destination = _open(options.destination, options.root)
    if source.describe() == destination.describe():
        raise UsageError(f"--from and --to are the same state ({source.describe()})")
    with ExitStack() as locks:
        locks.enter_context(source.lock(options.lock_timeout))
        locks.enter_context(destination.lock(options.lock_timeout))
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
        if reason is not None and not options.force:
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


def _entries(state: State) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for kind, entries in (("provider", state.providers), ("mailbox", state.mailboxes)):
        for key, entry in entries.items():
            item: dict[str, Any] = {
                "kind": kind,
                "id": key,
                "managed": entry.get("managed") is True,
            }
            provider = entry.get("provider")
            if kind == "mailbox" and isinstance(provider, str):
                item["provider"] = provider
            out.append(item)
    return out


def run_list(options: ListOptions) -> int:
    from mailgitops.render.text import quote

    backend = load_project(options.root).backend(options.state)
    state = backend.read()
    entries = _entries(state)
    if options.format == "json":
        doc = {
            "format_version": 1,
            "location": backend.describe(),
            "lineage": state.lineage,
            "serial": state.serial,
            "entries": entries,
        }
        output.out(json.dumps(doc, indent=2))
        return 0
    if not state.exists:
        output.out(f"No live state yet at {backend.describe()} (an empty live system).")
        return 0
    color = output.use_color(sys.stdout)
    for item in entries:
        mark = "managed  " if item["managed"] else output.paint("unmanaged", "dim", color)
        used = f"  (provider {quote(item['provider'])})" if "provider" in item else ""
        output.out(f"{mark}  {item['kind']:<8}  {quote(item['id'])}{used}")
    managed = sum(1 for item in entries if item["managed"])
    output.out(
        f"{len(entries)} entries ({managed} managed) in {backend.describe()}, "
        f"serial {state.serial}."
    )
    return 0


def _find(state: State, ident: str) -> tuple[str, str] | None:
    """(kind, live key) for an ID: a provider's name, or a mailbox's address compared without
    regard to case (SPEC §2.2). Matched whole: no stripping, no partial matches."""
    if ident in state.providers:
        return "provider", ident
    if ident in state.mailboxes:
        return "mailbox", ident
    folded = [key for key in state.mailboxes if fold_address(key) == fold_address(ident)]
    return ("mailbox", folded[0]) if len(folded) == 1 else None


def run_forget(options: ForgetOptions) -> int:
    from mailgitops.render.text import quote

    backend = load_project(options.root).backend(options.state)
    with backend.lock(options.lock_timeout):
        current = backend.read()
        found: dict[tuple[str, str], None] = {}
        unknown = []
        for ident in options.ids:
            hit = _find(current, ident)
            if hit is None:
                unknown.append(quote(ident))
            else:
                found[hit] = None
        if unknown:
            raise StateError(
                f"not in the live state at {backend.describe()}: {', '.join(unknown)}; "
                "nothing was written (see `mailgitops state list`)"
            )
        providers = dict(current.providers)
        mailboxes = dict(current.mailboxes)
        forgotten = []
        for kind, key in found:
            entries = providers if kind == "provider" else mailboxes
            if entries[key].get("managed") is True:
                entries[key] = {**entries[key], "managed": False}
                forgotten.append(f"{kind} {quote(key)}")
            else:
                output.out(f"{kind} {quote(key)} is not managed already")
        if not forgotten:
            output.out("Nothing to forget; nothing was written.")
            return 0
        new = State(
            lineage=current.lineage or str(uuid.uuid4()),
            serial=current.serial + 1,
            providers=providers,
            mailboxes=mailboxes,
        )
        backend.write(new, current)
    for line in forgotten:
        output.out(f"forgot {line}: still live, no longer managed")
    noun = "entry" if len(forgotten) == 1 else "entries"
    output.out(
        f"Forgot {len(forgotten)} {noun}. State serial {new.serial} ({backend.describe()}). "
        "Remove them from the config too, or the next plan adopts them again."
    )
    return 0
