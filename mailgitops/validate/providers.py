"""The rules of provider files a schema cannot say: unique names and domains, ports that suit
their security, basic auth over clear text, and the keys each auth method needs."""

from __future__ import annotations

from mailgitops.config.places import note
from mailgitops.diagnostics import Diagnostics
from mailgitops.model import fold_domain, usual_ports
from mailgitops.validate.entries import CheckedConfig, ProviderEntry, earlier

_OAUTH2_ONLY = ("client_id", "client_secret", "authorize_url", "token_url", "tenant_id")


def check_providers(checked: CheckedConfig) -> None:
    found = checked.diagnostics
    names: dict[str, ProviderEntry] = {}
    domains: dict[str, tuple[ProviderEntry, int]] = {}
    for entry in checked.providers:
        _check_name(entry, names, found)
        _check_domains(entry, domains, found)
        for server in ("imap", "smtp"):
            _check_port(entry, server, found)
            _check_cleartext(entry, server, found)
        _check_auth(entry, found)


def _check_name(entry: ProviderEntry, names: dict[str, ProviderEntry], found: Diagnostics) -> None:
    name = entry.name
    first = None if name is None else earlier(names, name, entry)
    if first is not None:
        entry.report(
            found,
            ("name",),
            f"provider `{name}` is defined twice: also at {first.place_text('name')}",
            "duplicate-provider",
        )


def _check_domains(
    entry: ProviderEntry, domains: dict[str, tuple[ProviderEntry, int]], found: Diagnostics
) -> None:
    """A domain belongs to at most one provider (compared folded)."""
    raw_domains = entry.get("domains", default=[])
    if not isinstance(raw_domains, list):
        return
    for index, domain in enumerate(raw_domains):
        if not isinstance(domain, str):
            continue
        key = fold_domain(domain)
        owner = domains.get(key)
        if owner is not None and owner[0] is not entry:
            entry.report(
                found,
                ("domains", index),
                f"domain `{key}` is already claimed by provider "
                f"`{owner[0].name}` at {owner[0].place_text('domains', owner[1])}; "
                "a domain belongs to at most one provider",
                "duplicate-domain",
            )
        elif owner is None:
            domains[key] = (entry, index)


def _check_port(entry: ProviderEntry, server: str, found: Diagnostics) -> None:
    port = entry.get(server, "port")
    security = entry.setting(server, "security")
    if (
        not isinstance(port, int)
        or isinstance(port, bool)
        or not 1 <= port <= 65535
        or not isinstance(security, str)
        or note(entry.data, [server, "port"]) is not None
    ):
        return  # an invalid or YAML-1.1-mangled port already has its error
    if server == "smtp" and port == 455:
        entry.report(
            found,
            (server, "port"),
            "port 455: did you mean 465 (SMTP over implicit TLS, RFC 8314)? "
            "Creatio's documentation prints 465 as 455",
            "port-455",
            "warning",
        )
        return
    expected = usual_ports(server, security)
    if expected is not None and port not in expected:
        usual = " or ".join(str(p) for p in sorted(expected))
        entry.report(
            found,
            (server, "port"),
            f"{server} port {port} with security {security}: the usual port is {usual}; "
            "check the provider's documentation",
            "port-security",
            "warning",
        )


def _check_cleartext(entry: ProviderEntry, server: str, found: Diagnostics) -> None:
    """Basic auth over `security: none` sends every mailbox's password readable on the wire
    (the ISPDB lists such providers): allowed, but said."""
    if entry.get(server, "security") != "none" or entry.setting("auth", "method") != "basic":
        return
    host = entry.get(server, "host")
    named = f"`{host}`" if isinstance(host, str) else "the server"
    entry.report(
        found,
        (server, "security"),
        f"{server} server {named}: basic auth over security: none sends the passwords in "
        "clear text; use ssl_tls or starttls if the server offers them",
        "cleartext-password",
        "warning",
    )


def _check_auth(entry: ProviderEntry, found: Diagnostics) -> None:
    auth = entry.get("auth")
    if not isinstance(auth, dict):
        return
    method = entry.setting("auth", "method")
    if method == "oauth2":
        for key in ("client_id", "client_secret"):
            if key not in auth:
                entry.report(found, ("auth",), f"auth method oauth2 needs `{key}`", "oauth2-client")
    elif method == "basic":
        for key in _OAUTH2_ONLY:
            if key in auth:
                entry.report(
                    found,
                    ("auth", key),
                    f"`{key}` is only used with auth method oauth2 (this provider uses basic)",
                    "oauth2-only",
                )
