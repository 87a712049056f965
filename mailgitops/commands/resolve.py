"""`mailgitops resolve ADDRESS`: which provider serves an address and what a new mailbox there
would get."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Any

from mailgitops import normalize, output
from mailgitops.commands.common import add_command
from mailgitops.config.files import PROVIDERS_DIR
from mailgitops.errors import ConfigError, MailgitopsError, UsageError
from mailgitops.model import Provider, address_domain, fold_address, fold_domain
from mailgitops.pipeline import load_project
from mailgitops.validate import CheckedConfig


@dataclass(frozen=True)
class Options:
    root: str
    address: str
    format: str


def register(sub: argparse._SubParsersAction[Any]) -> None:
    parser = add_command(
        sub,
        "resolve",
        run,
        Options,
        help="which provider serves an address",
        description="Show the provider that serves ADDRESS (by its domain) and the settings and "
        "login a new mailbox there would get. Exit 1 when no provider serves the domain.",
    )
    parser.add_argument("address", metavar="ADDRESS")
    parser.add_argument("--format", choices=("text", "json"), default="text")


def _serving(checked: CheckedConfig, address: str) -> Provider | None:
    """The provider that serves the domain of `address`. Errors in files that cannot change
    the answer (a mailboxes file, another provider's file that was read and does not claim the
    domain) do not stop it; they are mentioned. Errors that could change it (in the serving
    provider's file, a provider file that could not be read, two claimants) are reported and
    refused."""
    if checked.ok:
        return normalize.build(checked).provider_for_address(address)
    broken = {d.file for d in checked.diagnostics.errors}
    read = {entry.doc.path for entry in checked.providers}
    unread = sorted(f for f in broken if f.startswith(f"{PROVIDERS_DIR}/") and f not in read)
    key = address_domain(address)  # as provider_for_address compares it
    claimants = []
    for entry in checked.providers:
        if entry.doc.path in broken:
            raw = entry.get("domains")
            names = (
                [fold_domain(d) for d in raw if isinstance(d, str)] if isinstance(raw, list) else []
            )
            if key in names:
                claimants.append(entry)
        elif key in normalize.provider(entry).domains:
            claimants.append(entry)
    doubtful = [e.doc.path for e in claimants if e.doc.path in broken]
    if doubtful or len(claimants) > 1 or (not claimants and unread):
        files = (doubtful or [e.doc.path for e in claimants]) if claimants else unread
        relevant = sorted(d for d in checked.diagnostics.sorted() if d.file in files)
        raise ConfigError(
            f"cannot tell which provider serves `{key}`: "
            f"{output.visible(', '.join(sorted(set(files))))} "
            "has errors; `mailgitops validate` lists every error",
            diagnostics=[d for d in relevant if d.severity == "error"],
        )
    errors = len(checked.diagnostics.errors)
    output.warn(
        f"the config has {errors} error(s) in files that do not change this answer; "
        "`mailgitops validate` lists them"
    )
    return normalize.provider(claimants[0]) if claimants else None


def run(options: Options) -> int:
    address = fold_address(options.address.strip())
    local, at, domain = address.rpartition("@")
    try:
        if not at or not local or not domain:
            raise UsageError(f"`{options.address}` is not an email address (local@domain)")
        provider = _serving(load_project(options.root).checked, address)
    except MailgitopsError as exc:
        if options.format == "json":
            # Scripts read stdout: a failed resolve is still exactly one JSON document.
            output.out(json.dumps({"address": address, "provider": None, "error": str(exc)}))
        raise
    if provider is None:
        if options.format == "json":
            output.out(json.dumps({"address": address, "provider": None}))
        output.error(f"no provider serves `{domain}`: no provider lists it in `domains`")
        return 1
    login = provider.login_for(address)  # None: the mailbox gives it (login_format: manual)
    attrs = provider.attrs()
    if options.format == "json":
        output.out(
            json.dumps(
                {"address": address, "provider": provider.name, "login": login, "settings": attrs},
                indent=2,
            )
        )
        return 0
    output.out(
        f"{address} -> provider {provider.name}"
        # The display name and the file name are the config's text: escaped, one line each.
        + (f" ({output.visible(provider.display_name)})" if provider.display_name else "")
    )
    if provider.source is not None:
        output.out(f"  defined in   {output.visible(str(provider.source))}")
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
