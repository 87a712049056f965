"""`mailgitops check`: connect to each provider's servers as a mail client would (SPEC §8)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any

from mailgitops import output
from mailgitops.commands.common import add_check_arguments, add_command
from mailgitops.connect import jobs as joblist
from mailgitops.connect import report
from mailgitops.connect.console import NetworkOptions, options_from, progress_bar
from mailgitops.connect.runner import run as run_checks
from mailgitops.errors import MailgitopsError, UsageError
from mailgitops.pipeline import load_project, require_config


@dataclass(frozen=True)
class Options(NetworkOptions):
    root: str
    providers: list[str]
    login: bool
    mailbox: list[str]
    format: str


def register(sub: argparse._SubParsersAction[Any]) -> None:
    parser = add_command(
        sub,
        "check",
        run,
        Options,
        help="connect to the providers' servers and check them",
        description="Connect to each provider's servers as Creatio and Thunderbird do: DNS, "
        "TCP, TLS with certificate verification, STARTTLS, greetings, capabilities, and "
        "authentication mechanisms; with --login also log in. Never sends a message. "
        "Exit 0 when every check passes (warnings allowed), 1 otherwise.",
    )
    parser.add_argument("providers", nargs="*", metavar="PROVIDER", help="default: all")
    parser.add_argument(
        "--login",
        action="store_true",
        help="also log in with the mailboxes' logins and passwords (their secret references "
        "are read), then log out",
    )
    parser.add_argument(
        "--mailbox",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="with --login: only these mailboxes (repeatable)",
    )
    parser.add_argument("--format", choices=("text", "json", "github"), default="text")
    add_check_arguments(parser)


def run(options: Options) -> int:
    if options.mailbox and not options.login:
        raise UsageError("--mailbox selects the mailboxes of --login; add --login")
    project = load_project(options.root)
    try:
        config = require_config(project, done="checked")
        probe = options_from(options)
        jobs = joblist.build(
            config, project.checked, options.providers, options.login, options.mailbox
        )
    except MailgitopsError as exc:
        if options.format == "json":
            # Scripts read stdout: a check that could not start is still one JSON document.
            output.out(report.render_json([], str(exc), project.checked_diagnostics()), end="")
        raise
    results = run_checks(jobs, probe, options.jobs, progress_bar())
    if options.format == "json":
        output.out(report.render_json(results), end="")
    elif options.format == "github":
        output.out(report.render_github(results, options.root), end="")
    else:
        output.out(report.render_text(results, output.use_color(sys.stdout)), end="")
    return 0 if report.passed(results) else 1
