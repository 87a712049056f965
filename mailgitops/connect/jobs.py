"""From a checked config to the probes to run: which providers, where each is written (for
annotations), and for `--login` which mailboxes with which credentials."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path

from mailgitops import secrets
from mailgitops.connect.probe import Job, Login
from mailgitops.errors import MailgitopsError, SecretError, UsageError
from mailgitops.model import Config, Mailbox, fold_address
from mailgitops.validate import CheckedConfig


def _lines(checked: CheckedConfig) -> dict[str, tuple[str, dict[str, int]]]:
    out: dict[str, tuple[str, dict[str, int]]] = {}
    for entry in checked.providers:
        if entry.name is None or entry.name in out:
            continue
        lines = {"": entry.place()[0]}
        for key in ("imap", "smtp", "exchange"):
            if key in entry.data:
                lines[key] = entry.place(key)[0]
        out[entry.name] = (entry.doc.path, lines)
    return out


def _unknown(kind: str, name: str, known: Sequence[str]) -> MailgitopsError:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    hint = f"; did you mean `{close[0]}`?" if close else ""
    return UsageError(f"unknown {kind} `{name}`{hint}")


def build(
    config: Config,
    checked: CheckedConfig,
    names: Sequence[str] = (),
    login: bool = False,
    addresses: Sequence[str] = (),
) -> list[Job]:
    """Jobs for the named providers (all when none are named, or those of `addresses` when
    only mailboxes are named), in the config's order."""
    for name in names:
        if name not in config.providers:
            raise _unknown("provider", name, list(config.providers))
    mailboxes: list[Mailbox] = []
    for address in addresses:
        mailbox = config.mailboxes.get(fold_address(address))
        if mailbox is None:
            raise _unknown("mailbox", address, list(config.mailboxes))
        mailboxes.append(mailbox)
    if names:
        chosen = list(dict.fromkeys(names))
    elif addresses:
        chosen = list(dict.fromkeys(m.provider for m in mailboxes))
    else:
        chosen = list(config.providers)
    for mailbox in mailboxes:
        if mailbox.provider not in chosen:
            raise UsageError(
                f"mailbox {mailbox.address} uses provider `{mailbox.provider}`, which is not "
                "among the providers to check"
            )
    if login and not addresses:
        mailboxes = [m for m in config.mailboxes.values() if m.provider in chosen]
    places = _lines(checked)
    jobs = []
    for name in chosen:
        provider = config.providers[name]
        file, lines = places.get(name, ("?", {"": 1}))
        logins = tuple(_login(m, checked.root) for m in mailboxes if login and m.provider == name)
        jobs.append(Job(provider, file, lines, logins))
    return jobs


def _login(mailbox: Mailbox, root: Path) -> Login:
    if mailbox.password is None:
        return Login(mailbox.address, mailbox.login, None, "the mailbox has no password")
    if mailbox.password.kind == "keep":
        return Login(mailbox.address, mailbox.login, None, kept=True)
    try:
        value = secrets.read_value(mailbox.password.to_json(), root)
    except SecretError as exc:
        return Login(mailbox.address, mailbox.login, None, str(exc))
    return Login(mailbox.address, mailbox.login, value)
