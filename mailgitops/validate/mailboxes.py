"""The rules of mailboxes a schema cannot say: unique addresses, the provider that serves each
one, what its provider requires of it (a login, a password, sending and receiving allowed),
real dates, users shared with once, one default mailbox per owner, and secret references
within what `secrets:` allows."""

from __future__ import annotations

import datetime
import difflib
from typing import Any, get_args

from mailgitops import secrets
from mailgitops.config.parse import Document
from mailgitops.diagnostics import Diagnostics
from mailgitops.model import (
    DERIVED_LOGIN,
    AuthMethod,
    LoginFormat,
    address_domain,
    fold_domain,
    reference_paths,
)
from mailgitops.settings import SecretsPolicy
from mailgitops.validate.entries import (
    CheckedConfig,
    MailboxEntry,
    ProviderEntry,
    earlier,
    lookup,
    merge,
)

_LOGIN_FORMATS: tuple[str, ...] = get_args(LoginFormat)
_AUTH_METHODS: tuple[str, ...] = get_args(AuthMethod)
_BOOLEANS = (True, False)


def collect_mailboxes(doc: Document, checked: CheckedConfig) -> None:
    """An entry for each mapping in a mailboxes file, over the file's `defaults:`."""
    data = doc.data
    defaults = data.get("defaults")
    defaults = defaults if isinstance(defaults, dict) else None
    items = data.get("mailboxes")
    if not isinstance(items, list):
        return
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        entry = MailboxEntry(doc, index, merge(defaults, item))
        checked.mailboxes.append(entry)
        if "owner" not in entry.merged:
            entry.report(checked.diagnostics, (), "missing required key `owner`", "missing-key")


def check_mailboxes(checked: CheckedConfig) -> None:
    found = checked.diagnostics
    by_name = {e.name: e for e in checked.providers if e.name is not None}
    by_domain: dict[str, str] = {}
    for entry in checked.providers:
        domains = entry.get("domains", default=[])
        if entry.name is not None and isinstance(domains, list):
            for domain in domains:
                if isinstance(domain, str):
                    by_domain.setdefault(fold_domain(domain), entry.name)
    addresses: dict[str, MailboxEntry] = {}
    defaults: dict[str, MailboxEntry] = {}
    for mb in checked.mailboxes:
        _check_address(mb, addresses, found)
        provider = _resolve_provider(mb, by_name, by_domain, found)
        mb.provider = provider
        pentry = by_name.get(provider) if provider else None
        if pentry is not None:
            _check_login(mb, pentry, found)
            _check_password(mb, pentry, found)
            _check_capabilities(mb, pentry, found)
        _check_since(mb, found)
        _check_shares(mb, found)
        _check_default(mb, defaults, found)


def _check_address(
    mb: MailboxEntry, addresses: dict[str, MailboxEntry], found: Diagnostics
) -> None:
    address = mb.address
    if address is None or (first := earlier(addresses, address, mb)) is None:
        return
    mb.report(
        found,
        ("address",),
        f"address `{address}` is defined twice: also at "
        f"{first.doc.path}:{first.place('address')[0]}",
        "duplicate-address",
    )


def _resolve_provider(
    mb: MailboxEntry,
    by_name: dict[str, ProviderEntry],
    by_domain: dict[str, str],
    found: Diagnostics,
) -> str | None:
    named = mb.merged.get("provider")
    if isinstance(named, str):
        if named in by_name:
            return named
        close = difflib.get_close_matches(named, list(by_name), n=1, cutoff=0.6)
        hint = f"; did you mean `{close[0]}`?" if close else ""
        mb.report(found, ("provider",), f"unknown provider `{named}`{hint}", "unknown-provider")
        return None
    if named is not None or mb.address is None:
        return None
    domain = address_domain(mb.address)
    resolved = by_domain.get(domain)
    if resolved is None:
        mb.report(
            found,
            ("address",),
            f"no provider serves `{mb.address}`: no provider lists `{domain}` in its "
            "domains; set `provider:` or add the domain to a provider",
            "no-provider",
        )
    return resolved


def _check_login(mb: MailboxEntry, pentry: ProviderEntry, found: Diagnostics) -> None:
    """`login` is given exactly when the provider's login_format does not derive it."""
    fmt = pentry.usable("login_format", choices=_LOGIN_FORMATS)
    if fmt is None:
        return
    derived = DERIVED_LOGIN.get(fmt)
    if derived is None and "login" not in mb.merged:
        mb.report(
            found,
            (),
            f"missing `login`: provider `{pentry.name}` has login_format: {fmt}",
            "login-required",
        )
    elif derived is not None and "login" in mb.merged:
        mb.report(
            found,
            ("login",),
            f"`login` is not allowed: provider `{pentry.name}` has login_format: {fmt}, "
            f"so the login is {derived}",
            "login-forbidden",
        )


def _check_password(mb: MailboxEntry, pentry: ProviderEntry, found: Diagnostics) -> None:
    method = pentry.usable("auth", "method", choices=_AUTH_METHODS)
    if method == "basic" and "password" not in mb.merged:
        mb.report(
            found,
            (),
            f"missing `password`: provider `{pentry.name}` uses basic auth; "
            "add `password: {env: NAME}`",
            "password-required",
        )
    elif method == "oauth2" and "password" in mb.merged:
        mb.report(
            found,
            ("password",),
            f"`password` is not allowed: provider `{pentry.name}` uses oauth2",
            "password-forbidden",
        )


def _check_capabilities(mb: MailboxEntry, pentry: ProviderEntry, found: Diagnostics) -> None:
    if (
        pentry.usable("allow_sending", choices=_BOOLEANS) is False
        and mb.merged.get("send_emails") is True
    ):
        mb.report(
            found,
            ("send_emails",),
            f"`send_emails: true` but provider `{pentry.name}` has allow_sending: false",
            "sending-disabled",
        )
    sync = mb.merged.get("sync")
    if (
        pentry.usable("allow_receiving", choices=_BOOLEANS) is False
        and isinstance(sync, dict)
        and sync.get("enabled") is True
    ):
        mb.report(
            found,
            ("sync", "enabled"),
            f"`sync.enabled: true` but provider `{pentry.name}` has allow_receiving: false",
            "receiving-disabled",
        )


def _check_since(mb: MailboxEntry, found: Diagnostics) -> None:
    sync = mb.merged.get("sync")
    since = sync.get("since") if isinstance(sync, dict) else None
    if not isinstance(since, str):
        return
    try:
        datetime.date.fromisoformat(since)
    except ValueError:
        mb.report(found, ("sync", "since"), f"`since` is not a real date: {since}", "date")


def _check_shares(mb: MailboxEntry, found: Diagnostics) -> None:
    shares = mb.merged.get("shared_with")
    if not isinstance(shares, list):
        return
    users: set[str] = set()
    for index, share in enumerate(shares):
        user = share.get("user") if isinstance(share, dict) else None
        if isinstance(user, str):
            if user in users:
                mb.report(
                    found,
                    ("shared_with", index),
                    f"`{user}` is listed twice in shared_with",
                    "duplicate-share",
                )
            users.add(user)


def _check_default(mb: MailboxEntry, defaults: dict[str, MailboxEntry], found: Diagnostics) -> None:
    """An owner has at most one default mailbox."""
    owner = mb.merged.get("owner")
    if mb.merged.get("default") is not True or not isinstance(owner, str):
        return
    first = earlier(defaults, owner, mb)
    if first is not None:
        mb.report(
            found,
            ("default",),
            f"owner `{owner}` already has a default mailbox: {first.address} at "
            f"{first.place_text('default')}; an owner has at most one default",
            "multiple-defaults",
        )


def check_secret_policy(checked: CheckedConfig) -> None:
    """Secret references outside what mailgitops.yaml's `secrets:` section allows."""
    policy = checked.settings.secrets
    if policy is None:
        return
    found = checked.diagnostics
    for entry in checked.providers:
        for path in reference_paths("provider"):
            _check_reference(checked, policy, entry, path, entry.get(*path), found)
    for mb in checked.mailboxes:
        for path in reference_paths("mailbox"):
            _check_reference(checked, policy, mb, path, lookup(mb.merged, path), found)


def _check_reference(
    checked: CheckedConfig,
    policy: SecretsPolicy,
    entry: ProviderEntry | MailboxEntry,
    path: tuple[str, ...],
    ref: Any,
    found: Diagnostics,
) -> None:
    if isinstance(ref, dict):
        reason = secrets.policy_violation(ref, policy, checked.root)
        if reason is not None:
            entry.report(found, path, reason, "secret-policy")
