"""No identifier of a config holds a character a reader cannot see (mailgitops/identifiers.py).
The schema's patterns refuse most of them already where they are strict (names, hosts);
owners, users and the local part of an address have no pattern that could."""

from __future__ import annotations

from typing import Any

from mailgitops import identifiers
from mailgitops.validate.entries import CheckedConfig, MailboxEntry, ProviderEntry

_PROVIDER_IDENTIFIERS = (
    ("name",),
    ("imap", "host"),
    ("smtp", "host"),
    ("exchange", "host"),
)


def check_identifiers(checked: CheckedConfig) -> None:
    found = checked.diagnostics

    def check(
        entry: ProviderEntry | MailboxEntry, where: tuple[str | int, ...], what: str, value: Any
    ) -> None:
        message = identifiers.invalid_reason(what, value) if isinstance(value, str) else None
        if message is not None:
            # Placed only for a finding: a place needs the file parsed again with marks.
            entry.report(found, where, message, "invisible-character")

    for entry in checked.providers:
        for keys in _PROVIDER_IDENTIFIERS:
            check(entry, keys, f"`{'.'.join(keys)}`", entry.get(*keys))
        domains = entry.get("domains", default=[])
        for index, domain in enumerate(domains if isinstance(domains, list) else []):
            check(entry, ("domains", index), "a domain", domain)
    for mb in checked.mailboxes:
        for key in ("address", "owner", "provider"):
            check(mb, (key,), f"`{key}`", mb.merged.get(key))
        shares = mb.merged.get("shared_with")
        for index, share in enumerate(shares if isinstance(shares, list) else []):
            if isinstance(share, dict):
                check(mb, ("shared_with", index, "user"), "`shared_with.user`", share.get("user"))
