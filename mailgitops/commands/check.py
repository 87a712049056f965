"""`mailgitops check`: connect to each provider's servers as a mail client would (SPEC §8)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mailgitops import output
from mailgitops.commands.common import add_check_arguments, add_root_argument
from mailgitops.connect import jobs as joblist
from mailgitops.connect import report
from mailgitops.connect.console import options_from, progress_bar
from mailgitops.connect.runner import run as run_checks
from mailgitops.errors import MailgitopsError, UsageError
from mailgitops.pipeline import load_project, require_config


def register(sub: argparse._SubParsersAction[Any]) -> None:
    parser = sub.add_parser(
        "check",
        help="connect to the providers' servers and check them",
        description="Connect to each provider's servers as Creatio and Thunderbird do: DNS, "
        "TCP, TLS with certificate verification, STARTTLS, greetings, capabilities, and "
        "authentication mechanisms; with --login also log in. Never sends a message. "
        "Exit 0 when every check passes (warnings allowed), 1 otherwise.",
    )
    add_root_argument(parser)
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
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.mailbox and not args.login:
        raise UsageError("--mailbox selects the mailboxes of --login; add --login")
    project = load_project(args.root)
    try:
        config = require_config(project, done="checked")
        options = options_from(args)
        jobs = joblist.build(config, project.checked, args.providers, args.login, args.mailbox)
    except MailgitopsError as exc:
        if args.format == "json":
            # Scripts read stdout: a check that could not start is still one JSON document.
            output.out(report.render_json([], str(exc), project.checked_diagnostics()), end="")
        raise
    results = run_checks(jobs, options, args.jobs, progress_bar())
    if args.format == "json":
        output.out(report.render_json(results), end="")
    elif args.format == "github":
        output.out(report.render_github(results, args.root), end="")
    else:
        output.out(report.render_text(results, output.use_color(sys.stdout)), end="")
    return 0 if report.passed(results) else 1
