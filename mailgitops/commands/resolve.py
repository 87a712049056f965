"""`mailgitops resolve ADDRESS`: which provider serves an address and what a new mailbox there
would get."""

from __future__ import annotations

import argparse
import json
from typing import Any

from mailgitops import output
from mailgitops.commands.common import add_root_argument
from mailgitops.errors import UsageError
from mailgitops.pipeline import load_project, require_config


def register(sub: argparse._SubParsersAction[Any]) -> None:
    parser = sub.add_parser(
        "resolve",
        help="which provider serves an address",
        description="Show the provider that serves ADDRESS (by its domain) and the settings and "
        "login a new mailbox there would get. Exit 1 when no provider serves the domain.",
    )
    parser.add_argument("address", metavar="ADDRESS")
    add_root_argument(parser)
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    address = args.address.strip().lower()
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise UsageError(f"`{args.address}` is not an email address (local@domain)")
    config = require_config(load_project(args.root))
    provider = config.provider_for_domain(domain)
    if provider is None:
        if args.format == "json":
            output.out(json.dumps({"address": address, "provider": None}))
        output.error(f"no provider serves `{domain}`: no provider lists it in `domains`")
        return 1
    login: str | None
    if provider.login_format == "email_address":
        login = address
    elif provider.login_format == "mailbox_name":
        login = local
    else:
        login = None
    attrs = provider.attrs()
    if args.format == "json":
        output.out(
            json.dumps(
                {"address": address, "provider": provider.name, "login": login, "settings": attrs},
                indent=2,
            )
        )
        return 0
    output.out(
        f"{address} -> provider {provider.name}"
        + (f" ({provider.display_name})" if provider.display_name else "")
    )
    if provider.source is not None:
        output.out(f"  defined in   {provider.source}")
    if provider.imap is not None:
        output.out(
            f"  imap         {provider.imap.host}:{provider.imap.port} ({provider.imap.security})"
        )
    if provider.smtp is not None:
        output.out(
            f"  smtp         {provider.smtp.host}:{provider.smtp.port} ({provider.smtp.security}, "
            f"timeout {provider.smtp.timeout_seconds}s)"
        )
    if provider.exchange is not None:
        host = provider.exchange.host or "(autodiscover)"
        output.out(f"  exchange     {host}")
    output.out(f"  auth         {provider.auth.method}")
    output.out(
        f"  login        {login}"
        if login
        else "  login        manual: the mailbox must set `login`"
    )
    return 0
