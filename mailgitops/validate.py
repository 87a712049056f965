"""Checks of a config: the JSON Schemas first, then the rules a schema cannot say (uniqueness,
provider resolution, logins, secrets, defaults per owner, port hints). Every check runs on
every entry it can, so one run reports all problems; an entry with errors still takes part in
the checks of the entries that depend on it."""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailgitops import identifiers, schemacheck, secrets
from mailgitops.cache import Cache
from mailgitops.diagnostics import Diagnostic, Diagnostics
from mailgitops.load import (
    MAILBOXES_DIR,
    PROVIDERS_DIR,
    SETTINGS_FILE,
    TEMPLATE_SUFFIX,
    Document,
    Tree,
    load_tree,
    locate,
    note,
    read,
    remember,
    settings_problems,
)
from mailgitops.settings import SecretsPolicy

STANDARD_PORTS: dict[str, dict[str, frozenset[int]]] = {
    "imap": {"ssl_tls": frozenset({993}), "starttls": frozenset({143}), "none": frozenset({143})},
    "smtp": {
        "ssl_tls": frozenset({465}),
        "starttls": frozenset({587, 25, 2525}),
        "none": frozenset({587, 25, 2525}),
    },
}


@dataclass
class ProviderEntry:
    doc: Document
    data: dict[str, Any]
    memo: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def name(self) -> str | None:
        name = self.data.get("name")
        return name if isinstance(name, str) else None

    def get(self, *path: str, default: Any = None) -> Any:
        node: Any = self.data
        for part in path:
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def place(self, *path: str | int) -> tuple[int, int]:
        return locate(self.doc.marked(), path)

    def where(self, *path: str | int) -> str:
        line, col = self.place(*path)
        return f"{self.doc.path}:{line}:{col}"


def _merge(defaults: dict[str, Any] | None, item: dict[str, Any]) -> dict[str, Any]:
    """`defaults` under `item`; nested mappings (sync) are merged key by key."""
    if not defaults:
        return dict(item)
    merged = dict(defaults)
    for key, value in item.items():
        base = merged.get(key)
        if isinstance(base, dict) and isinstance(value, dict):
            merged[key] = {**base, **value}
        else:
            merged[key] = value
    return merged


def _has(node: Any, path: tuple[str | int, ...]) -> bool:
    for part in path:
        found = (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        )
        if not found:
            return False
        node = node[part]
    return True


@dataclass
class MailboxEntry:
    doc: Document
    index: int
    item: dict[str, Any]
    defaults: dict[str, Any] | None
    merged: dict[str, Any]
    provider: str | None = None  # resolved name, once known

    @property
    def address(self) -> str | None:
        address = self.merged.get("address")
        return address.lower() if isinstance(address, str) and "@" in address else None

    def place(self, *path: str | int) -> tuple[int, int]:
        """Where an attribute of the merged mailbox is written: in the item itself, else in
        the file's defaults, else the item's mapping."""
        marked = self.doc.marked()
        item = marked["mailboxes"][self.index]
        defaults = marked.get("defaults")
        if _has(item, path):
            return locate(item, path)
        if isinstance(defaults, dict) and _has(defaults, path):
            return locate(defaults, path)
        return locate(item, path[:1]) if path and path[0] in item else self.mark

    @property
    def mark(self) -> tuple[int, int]:
        """Where the mailbox's mapping starts."""
        return self.doc.item_marks[self.index]

    def where(self, *path: str | int) -> str:
        line, _col = self.place(*path)
        return f"{self.doc.path}:{line}"


@dataclass
class CheckedConfig:
    """The outcome of validation: every finding, and the entries as far as they could be read
    (normalize.py turns them into the typed model when there is no error)."""

    root: Path
    diagnostics: Diagnostics
    providers: list[ProviderEntry] = field(default_factory=list)
    mailboxes: list[MailboxEntry] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(d.severity == "error" for d in self.diagnostics.items)


_SCHEMA_OF = {PROVIDERS_DIR: "provider", MAILBOXES_DIR: "mailboxes"}


def _early_schema_check(doc: Document, folder: str) -> int:
    """The schema check of a file right after it is parsed (the result is kept for
    check_tree): its error count charges the run's parse budget."""
    if not isinstance(doc.data, dict):
        return 0
    return len(schemacheck.check(doc, _SCHEMA_OF[folder]))


def check_config(root: Path, cache: Cache | None = None) -> CheckedConfig:
    tree = load_tree(root, cache, _early_schema_check)
    checked = check_tree(tree)
    for doc in (*tree.providers, *tree.mailboxes):
        remember(doc, cache)
    return checked


def check_settings(root: Path) -> CheckedConfig:
    """mailgitops.yaml alone, read from the file (never the cache) and checked: what the rules
    of a plan read when the rest of the config came from the cache."""
    checked = CheckedConfig(root, Diagnostics())
    checked.diagnostics.extend(settings_problems(root))  # a near-named settings file
    if os.path.lexists(root / SETTINGS_FILE):  # a directory or FIFO there is an error
        _check_settings(read(root, SETTINGS_FILE), checked)
    return checked


def check_tree(tree: Tree) -> CheckedConfig:
    found = Diagnostics()
    found.extend(tree.diagnostics)
    checked = CheckedConfig(tree.root, found)
    if tree.settings is not None:
        _check_settings(tree.settings, checked)
    for doc in tree.providers:
        found.extend(doc.diagnostics)
        if doc.data is None:
            continue
        if not isinstance(doc.data, dict):
            found.add(doc.path, 1, 1, "a provider file must be a mapping", "type")
            continue
        schema_problems = schemacheck.check(doc, "provider")
        doc.diagnostics.extend(schema_problems)  # a document with problems is never cached
        found.extend(schema_problems)
        checked.providers.append(ProviderEntry(doc, doc.data))
    for doc in tree.mailboxes:
        found.extend(doc.diagnostics)
        if doc.data is None:
            continue
        if not isinstance(doc.data, dict):
            found.add(
                doc.path, 1, 1, "a mailboxes file must be a mapping with `mailboxes:`", "type"
            )
            continue
        schema_problems = schemacheck.check(doc, "mailboxes")
        doc.diagnostics.extend(schema_problems)
        found.extend(schema_problems)
        _collect_mailboxes(doc, checked)
    _check_providers(checked)
    _check_mailboxes(checked)
    _check_secret_policy(checked)
    _check_identifiers(checked)
    found.items = [_rendered_place(d) for d in found.items]
    return checked


_PROVIDER_IDENTIFIERS = (
    ("name",),
    ("imap", "host"),
    ("smtp", "host"),
    ("exchange", "host"),
)


def _check_identifiers(checked: CheckedConfig) -> None:
    """No identifier holds a character a reader cannot see (identifiers.py). The schema's
    patterns refuse most of them already where they are strict (names, hosts); owners, users
    and the local part of an address have no pattern that could."""
    found = checked.diagnostics

    def check(
        entry: ProviderEntry | MailboxEntry, where: tuple[str | int, ...], what: str, value: Any
    ) -> None:
        message = identifiers.problem(what, value) if isinstance(value, str) else None
        if message is not None:
            # Located only for a finding: a place needs the file parsed again with marks.
            line, col = entry.place(*where)
            found.add(entry.doc.path, line, col, message, "invisible-character")

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


# Findings about the template file itself (its name and bytes), before anything is rendered.
_TEMPLATE_FILE_RULES = frozenset({"file-too-large", "encoding", "io", "ignored-file"})


def _rendered_place(diag: Diagnostic) -> Diagnostic:
    """A finding in the text a template rendered is at a line of that text, not of the
    template: say so, and how to see it."""
    if (
        not diag.file.endswith(TEMPLATE_SUFFIX)
        or diag.rule.startswith("template-")
        or diag.rule in _TEMPLATE_FILE_RULES
    ):
        return diag
    hint = f" (line {diag.line} of the rendered text: mailgitops render {diag.file})"
    return dataclasses.replace(diag, message=diag.message + hint)


def _check_settings(doc: Document, checked: CheckedConfig) -> None:
    found = checked.diagnostics
    found.extend(doc.diagnostics)
    if doc.data is None:
        return
    if not isinstance(doc.data, dict):
        found.add(doc.path, 1, 1, "mailgitops.yaml must be a mapping", "type")
        return
    doc.data = doc.marked()  # a small file: always with marks, for the checks below
    found.extend(schemacheck.check(doc, "settings"))
    checked.settings = doc.data
    _check_access(doc, found)
    dsn = doc.data.get("state", {}).get("dsn") if isinstance(doc.data.get("state"), dict) else None
    if isinstance(dsn, str) and _dsn_has_password(dsn):
        line, col = locate(doc.data, ["state", "dsn"])
        found.add(
            doc.path,
            line,
            col,
            "the DSN holds a password: move it to `password: {env: NAME}` (the value is not shown)",
            "plaintext-secret",
        )


def _check_access(doc: Document, found: Diagnostics) -> None:
    """The access lists name users consistently. The schema leaves these to us so that each
    finding names its place: the later occurrence of a duplicate, the empty list itself."""
    access = doc.data.get("access")
    if not isinstance(access, dict):
        return
    admins: dict[str, int] = {}  # folded user -> index in administrators
    for role in ("administrators", "mailbox_managers"):
        users = access.get(role)
        if not isinstance(users, list):
            continue
        if not users:
            line, col = locate(doc.data, ["access", role])
            found.add(
                doc.path,
                line,
                col,
                f"`{role}` is empty: list at least one user"
                + (
                    " (without an administrator nobody could change a provider)"
                    if role == "administrators"
                    else ", or remove the key"
                ),
                "empty-list",
            )
        seen: dict[str, int] = {}
        for index, user in enumerate(users):
            if not isinstance(user, str):
                continue  # the schema reports it
            key = user.strip().casefold()  # users compare as access.py compares them
            line, col = locate(doc.data, ["access", role, index])
            hidden = identifiers.problem(f"a user in `{role}`", user)
            if hidden is not None:
                found.add(doc.path, line, col, hidden, "invisible-character")
            if key in seen:
                first = locate(doc.data, ["access", role, seen[key]])
                found.add(
                    doc.path,
                    line,
                    col,
                    f"user `{user}` is listed twice in `{role}`: also at "
                    f"{doc.path}:{first[0]}:{first[1]}",
                    "duplicate-user",
                )
                continue
            seen[key] = index
            if role == "administrators":
                admins[key] = index
            elif key in admins:
                admin_line = locate(doc.data, ["access", "administrators", admins[key]])[0]
                found.add(
                    doc.path,
                    line,
                    col,
                    f"user `{user}` is an administrator already ({doc.path}:{admin_line}), "
                    "which includes every right of a mailbox manager; listing them here is "
                    "redundant",
                    "redundant-user",
                    "warning",
                )


def _dsn_has_password(dsn: str) -> bool:
    from mailgitops.state.dsn import has_password

    return has_password(dsn)


def _collect_mailboxes(doc: Document, checked: CheckedConfig) -> None:
    data = doc.data
    defaults = data.get("defaults")
    defaults = defaults if isinstance(defaults, dict) else None
    items = data.get("mailboxes")
    if not isinstance(items, list):
        return
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        merged = _merge(defaults, item)
        entry = MailboxEntry(doc, index, item, defaults, merged)
        checked.mailboxes.append(entry)
        if "owner" not in merged:
            line, col = entry.mark
            checked.diagnostics.add(
                doc.path, line, col, "missing required key `owner`", "missing-key"
            )


def _check_providers(checked: CheckedConfig) -> None:
    found = checked.diagnostics
    names: dict[str, ProviderEntry] = {}
    domains: dict[str, tuple[ProviderEntry, int]] = {}
    for entry in checked.providers:
        path = entry.doc.path
        name = entry.name
        if name is not None:
            if name in names:
                line, col = entry.place("name")
                found.add(
                    path,
                    line,
                    col,
                    f"provider `{name}` is defined twice: also at {names[name].where('name')}",
                    "duplicate-provider",
                )
            else:
                names[name] = entry
        raw_domains = entry.get("domains", default=[])
        if isinstance(raw_domains, list):
            for index, domain in enumerate(raw_domains):
                if not isinstance(domain, str):
                    continue
                key = domain.lower().rstrip(".")
                owner = domains.get(key)
                if owner is not None and owner[0] is not entry:
                    line, col = entry.place("domains", index)
                    found.add(
                        path,
                        line,
                        col,
                        f"domain `{key}` is already claimed by provider "
                        f"`{owner[0].name}` at {owner[0].where('domains', owner[1])}; "
                        "a domain belongs to at most one provider",
                        "duplicate-domain",
                    )
                elif owner is None:
                    domains[key] = (entry, index)
        for server in ("imap", "smtp"):
            _check_port(entry, server, found)
            _check_cleartext(entry, server, found)
        _check_auth(entry, found)


def _check_port(entry: ProviderEntry, server: str, found: Diagnostics) -> None:
    port = entry.get(server, "port")
    security = entry.get(server, "security", default="ssl_tls")
    if (
        not isinstance(port, int)
        or isinstance(port, bool)
        or not 1 <= port <= 65535
        or not isinstance(security, str)
        or note(entry.data, [server, "port"]) is not None
    ):
        return  # an invalid or YAML-1.1-mangled port already has its error
    line, col = entry.place(server, "port")
    if server == "smtp" and port == 455:
        found.add(
            entry.doc.path,
            line,
            col,
            "port 455: did you mean 465 (SMTP over implicit TLS, RFC 8314)? "
            "Creatio's documentation prints 465 as 455",
            "port-455",
            "warning",
        )
        return
    expected = STANDARD_PORTS[server].get(security)
    if expected is not None and port not in expected:
        usual = " or ".join(str(p) for p in sorted(expected))
        found.add(
            entry.doc.path,
            line,
            col,
            f"{server} port {port} with security {security}: the usual port is {usual}; "
            "check the provider's documentation",
            "port-security",
            "warning",
        )


def _check_cleartext(entry: ProviderEntry, server: str, found: Diagnostics) -> None:
    """Basic auth over `security: none` sends every mailbox's password readable on the wire
    (the ISPDB lists such providers): allowed, but said."""
    if (
        entry.get(server, "security") != "none"
        or entry.get("auth", "method", default="basic") != "basic"
    ):
        return
    host = entry.get(server, "host")
    named = f"`{host}`" if isinstance(host, str) else "the server"
    line, col = entry.place(server, "security")
    found.add(
        entry.doc.path,
        line,
        col,
        f"{server} server {named}: basic auth over security: none sends the passwords in "
        "clear text; use ssl_tls or starttls if the server offers them",
        "cleartext-password",
        "warning",
    )


def _check_auth(entry: ProviderEntry, found: Diagnostics) -> None:
    auth = entry.get("auth")
    if not isinstance(auth, dict):
        return
    method = auth.get("method", "basic")
    path = entry.doc.path
    if method == "oauth2":
        for key in ("client_id", "client_secret"):
            if key not in auth:
                line, col = entry.place("auth")
                found.add(path, line, col, f"auth method oauth2 needs `{key}`", "oauth2-client")
    elif method == "basic":
        for key in ("client_id", "client_secret", "authorize_url", "token_url", "tenant_id"):
            if key in auth:
                line, col = entry.place("auth", key)
                found.add(
                    path,
                    line,
                    col,
                    f"`{key}` is only used with auth method oauth2 (this provider uses basic)",
                    "oauth2-only",
                )


def _provider_setting(
    entry: ProviderEntry | None, key: str, default: Any, choices: tuple[Any, ...]
) -> Any:
    """A provider attribute for the checks of its mailboxes; None when it is unusable (the
    provider's own checks report that)."""
    if entry is None:
        return None
    if key not in entry.memo:  # asked for every mailbox: looked up once per provider
        value = entry.get(*key.split("."), default=default)
        entry.memo[key] = value if value in choices else None
    return entry.memo[key]


def _check_mailboxes(checked: CheckedConfig) -> None:
    found = checked.diagnostics
    by_name = {e.name: e for e in checked.providers if e.name is not None}
    by_domain: dict[str, str] = {}
    for entry in checked.providers:
        domains = entry.get("domains", default=[])
        if entry.name is not None and isinstance(domains, list):
            for domain in domains:
                if isinstance(domain, str):
                    by_domain.setdefault(domain.lower().rstrip("."), entry.name)
    addresses: dict[str, MailboxEntry] = {}
    defaults: dict[str, MailboxEntry] = {}
    for mb in checked.mailboxes:
        path = mb.doc.path
        address = mb.address
        if address is not None:
            first = addresses.get(address)
            if first is not None:
                line, col = mb.place("address")
                found.add(
                    path,
                    line,
                    col,
                    f"address `{address}` is defined twice: also at "
                    f"{first.doc.path}:{first.place('address')[0]}",
                    "duplicate-address",
                )
            else:
                addresses[address] = mb
        provider = _resolve_provider(mb, by_name, by_domain, found)
        mb.provider = provider
        pentry = by_name.get(provider) if provider else None
        _check_login(mb, pentry, found)
        _check_password(mb, pentry, found)
        _check_capabilities(mb, pentry, found)
        since = (
            mb.merged.get("sync", {}).get("since")
            if isinstance(mb.merged.get("sync"), dict)
            else None
        )
        if isinstance(since, str):
            try:
                datetime.date.fromisoformat(since)
            except ValueError:
                line, col = mb.place("sync", "since")
                found.add(path, line, col, f"`since` is not a real date: {since}", "date")
        shares = mb.merged.get("shared_with")
        if isinstance(shares, list):
            users: set[str] = set()
            for index, share in enumerate(shares):
                user = share.get("user") if isinstance(share, dict) else None
                if isinstance(user, str):
                    if user in users:
                        line, col = mb.place("shared_with", index)
                        found.add(
                            path,
                            line,
                            col,
                            f"`{user}` is listed twice in shared_with",
                            "duplicate-share",
                        )
                    users.add(user)
        owner = mb.merged.get("owner")
        if mb.merged.get("default") is True and isinstance(owner, str):
            first = defaults.get(owner)
            if first is not None:
                line, col = mb.place("default")
                found.add(
                    path,
                    line,
                    col,
                    f"owner `{owner}` already has a default mailbox: {first.address} at "
                    f"{first.where('default')}; an owner has at most one default",
                    "multiple-defaults",
                )
            else:
                defaults[owner] = mb


def _resolve_provider(
    mb: MailboxEntry,
    by_name: dict[str, ProviderEntry],
    by_domain: dict[str, str],
    found: Diagnostics,
) -> str | None:
    path = mb.doc.path
    named = mb.merged.get("provider")
    if isinstance(named, str):
        if named in by_name:
            return named
        close = difflib.get_close_matches(named, list(by_name), n=1, cutoff=0.6)
        hint = f"; did you mean `{close[0]}`?" if close else ""
        line, col = mb.place("provider")
        found.add(path, line, col, f"unknown provider `{named}`{hint}", "unknown-provider")
        return None
    if named is not None or mb.address is None:
        return None
    domain = mb.address.rpartition("@")[2]
    resolved = by_domain.get(domain)
    if resolved is None:
        line, col = mb.place("address")
        found.add(
            path,
            line,
            col,
            f"no provider serves `{mb.address}`: no provider lists `{domain}` in its "
            "domains; set `provider:` or add the domain to a provider",
            "no-provider",
        )
    return resolved


def _check_login(mb: MailboxEntry, pentry: ProviderEntry | None, found: Diagnostics) -> None:
    fmt = _provider_setting(
        pentry, "login_format", "email_address", ("email_address", "mailbox_name", "manual")
    )
    if fmt is None or pentry is None:
        return
    path = mb.doc.path
    if fmt == "manual" and "login" not in mb.merged:
        found.add(
            path,
            *mb.mark,
            f"missing `login`: provider `{pentry.name}` has login_format: manual",
            "login-required",
        )
    elif fmt != "manual" and "login" in mb.merged:
        derived = "the address" if fmt == "email_address" else "the part before @"
        line, col = mb.place("login")
        found.add(
            path,
            line,
            col,
            f"`login` is not allowed: provider `{pentry.name}` has login_format: {fmt}, "
            f"so the login is {derived}",
            "login-forbidden",
        )


def _check_password(mb: MailboxEntry, pentry: ProviderEntry | None, found: Diagnostics) -> None:
    method = _provider_setting(pentry, "auth.method", "basic", ("basic", "oauth2"))
    if method is None or pentry is None:
        return
    path = mb.doc.path
    if method == "basic" and "password" not in mb.merged:
        found.add(
            path,
            *mb.mark,
            f"missing `password`: provider `{pentry.name}` uses basic auth; "
            "add `password: {env: NAME}`",
            "password-required",
        )
    elif method == "oauth2" and "password" in mb.merged:
        line, col = mb.place("password")
        found.add(
            path,
            line,
            col,
            f"`password` is not allowed: provider `{pentry.name}` uses oauth2",
            "password-forbidden",
        )


def _check_capabilities(mb: MailboxEntry, pentry: ProviderEntry | None, found: Diagnostics) -> None:
    if pentry is None:
        return
    path = mb.doc.path
    if (
        _provider_setting(pentry, "allow_sending", True, (True, False)) is False
        and mb.merged.get("send_emails") is True
    ):
        line, col = mb.place("send_emails")
        found.add(
            path,
            line,
            col,
            f"`send_emails: true` but provider `{pentry.name}` has allow_sending: false",
            "sending-disabled",
        )
    sync = mb.merged.get("sync")
    if (
        _provider_setting(pentry, "allow_receiving", True, (True, False)) is False
        and isinstance(sync, dict)
        and sync.get("enabled") is True
    ):
        line, col = mb.place("sync", "enabled")
        found.add(
            path,
            line,
            col,
            f"`sync.enabled: true` but provider `{pentry.name}` has allow_receiving: false",
            "receiving-disabled",
        )


def _check_secret_policy(checked: CheckedConfig) -> None:
    """Secret references outside what mailgitops.yaml's `secrets:` section allows."""
    policy = SecretsPolicy.of(checked.settings.get("secrets"))
    if policy is None:
        return
    found = checked.diagnostics
    for entry in checked.providers:
        for key in ("client_id", "client_secret"):
            ref = entry.get("auth", key)
            if isinstance(ref, dict):
                reason = secrets.policy_violation(ref, policy, checked.root)
                if reason is not None:
                    line, col = entry.place("auth", key)
                    found.add(entry.doc.path, line, col, reason, "secret-policy")
    for mb in checked.mailboxes:
        ref = mb.merged.get("password")
        if isinstance(ref, dict):
            reason = secrets.policy_violation(ref, policy, checked.root)
            if reason is not None:
                line, col = mb.place("password")
                found.add(mb.doc.path, line, col, reason, "secret-policy")
