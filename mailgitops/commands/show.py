"""`mailgitops show`: what is live, managed or not."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Any

from mailgitops import output
from mailgitops.commands.common import add_command, add_state_argument
from mailgitops.pipeline import load_project


@dataclass(frozen=True)
class Options:
    root: str
    state: str | None
    format: str


def register(sub: argparse._SubParsersAction[Any]) -> None:
    parser = add_command(
        sub, "show", run, Options, help="show the live state", description="Show what is live."
    )
    add_state_argument(parser)
    parser.add_argument("--format", choices=("text", "json"), default="text")


def run(options: Options) -> int:
    project = load_project(options.root)
    backend = project.backend(options.state)
    state = backend.read()
    if options.format == "json":
        output.out(json.dumps(state.to_json(), indent=2, sort_keys=True))
        return 0
    color = output.use_color(sys.stdout)
    # Every name below comes from the live state, which anyone with CRM access can write:
    # shown through output.visible, one line per entry whatever it holds.
    shown = output.visible
    where = shown(backend.describe())
    if not state.exists:
        output.out(f"No live state yet at {where} (an empty live system).")
        return 0
    output.out(f"Live state {where}: lineage {shown(str(state.lineage))}, serial {state.serial}")
    output.out(f"\nProviders ({len(state.providers)}):")
    for name, entry in state.providers.items():
        mark = "" if entry.get("managed") is True else output.paint(" (unmanaged)", "dim", color)
        imap = entry.get("imap") or {}
        server = f"{imap.get('host')}:{imap.get('port')}" if imap else entry.get("service_type")
        output.out(f"  {shown(name)}{mark}  {shown(str(server or ''))}")
    output.out(f"\nMailboxes ({len(state.mailboxes)}):")
    for address, entry in state.mailboxes.items():
        mark = "" if entry.get("managed") is True else output.paint(" (unmanaged)", "dim", color)
        output.out(
            f"  {shown(address)}{mark}  owner {shown(str(entry.get('owner')))}, "
            f"provider {shown(str(entry.get('provider')))}"
        )
    return 0
