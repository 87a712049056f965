"""From checked YAML to the typed model: every default filled in, ports from security, the
provider resolved from the address domain, the login derived from the provider's
login_format, addresses lower-cased, secrets as references. Runs only on a config without
errors, so it may rely on the schema's guarantees."""

from __future__ import annotations

from typing import Any

from mailgitops.diagnostics import Place
from mailgitops.model import (
    DEFAULT_ALLOW,
    DEFAULT_AUTH_METHOD,
    DEFAULT_AUTODISCOVER,
    DEFAULT_LOGIN_FORMAT,
    DEFAULT_MAILBOX_DEFAULT,
    DEFAULT_SECURITY,
    DEFAULT_SERVICE_TYPE,
    DEFAULT_SMTP_TIMEOUT,
    DEFAULT_SYNC_FOLDERS,
    DEFAULT_SYNC_PERIOD,
    Auth,
    Config,
    ExchangeServer,
    ImapServer,
    Mailbox,
    Provider,
    SecretRef,
    Share,
    SmtpServer,
    Sync,
    default_port,
    default_send_emails,
    default_sync_enabled,
    fold_address,
    fold_domain,
)
from mailgitops.validate import CheckedConfig, MailboxEntry, ProviderEntry


def secret_ref(value: dict[str, Any]) -> SecretRef:
    version = value.get("version")
    if "keep" in value:
        return SecretRef("keep", str(value["keep"]))
    if "env" in value:
        return SecretRef("env", str(value["env"]), None if version is None else str(version))
    return SecretRef("file", str(value["file"]), None if version is None else str(version))


def provider(entry: ProviderEntry) -> Provider:
    data = entry.data
    service_type = data.get("service_type", DEFAULT_SERVICE_TYPE)
    imap = smtp = None
    exchange = None
    if "imap" in data:
        raw = data["imap"]
        security = raw.get("security", DEFAULT_SECURITY)
        imap = ImapServer(raw["host"], security, raw.get("port", default_port("imap", security)))
    if "smtp" in data:
        raw = data["smtp"]
        security = raw.get("security", DEFAULT_SECURITY)
        smtp = SmtpServer(
            raw["host"],
            security,
            raw.get("port", default_port("smtp", security)),
            raw.get("timeout_seconds", DEFAULT_SMTP_TIMEOUT),
        )
    if "exchange" in data:
        raw = data["exchange"]
        exchange = ExchangeServer(raw.get("host"), raw.get("autodiscover", DEFAULT_AUTODISCOVER))
    raw_auth = data.get("auth", {})
    client_id = raw_auth.get("client_id")
    auth = Auth(
        method=raw_auth.get("method", DEFAULT_AUTH_METHOD),
        client_id=secret_ref(client_id) if isinstance(client_id, dict) else client_id,
        client_secret=secret_ref(raw_auth["client_secret"])
        if "client_secret" in raw_auth
        else None,
        authorize_url=raw_auth.get("authorize_url"),
        token_url=raw_auth.get("token_url"),
        tenant_id=raw_auth.get("tenant_id"),
    )
    domains: list[str] = []
    for domain in data.get("domains", []):
        key = fold_domain(domain)
        if key not in domains:
            domains.append(key)
    return Provider(
        name=data["name"],
        service_type=service_type,
        domains=tuple(domains),
        imap=imap,
        smtp=smtp,
        exchange=exchange,
        allow_receiving=data.get("allow_receiving", DEFAULT_ALLOW),
        allow_sending=data.get("allow_sending", DEFAULT_ALLOW),
        login_format=data.get("login_format", DEFAULT_LOGIN_FORMAT),
        auth=auth,
        display_name=data.get("display_name"),
        source=Place(entry.doc.path, *entry.doc.root_place),
    )


def mailbox(entry: MailboxEntry, providers: dict[str, Provider]) -> Mailbox:
    data = entry.merged
    address = fold_address(data["address"])
    assert entry.provider is not None  # resolved by validation, or it reported an error
    prov = providers[entry.provider]
    login = prov.login_for(address, data.get("login"))
    assert login is not None  # validation requires `login` under login_format: manual
    raw_sync = data.get("sync", {})
    sync = Sync(
        enabled=raw_sync.get("enabled", default_sync_enabled(prov.allow_receiving)),
        since=raw_sync.get("since"),
        period=raw_sync.get("period", DEFAULT_SYNC_PERIOD),
        folders=tuple(raw_sync.get("folders", DEFAULT_SYNC_FOLDERS)),
    )
    shares = tuple(Share(s["user"], tuple(s["rights"])) for s in data.get("shared_with", []))
    return Mailbox(
        address=address,
        owner=data["owner"],
        provider=prov.name,
        login=login,
        password=secret_ref(data["password"]) if "password" in data else None,
        send_emails=data.get("send_emails", default_send_emails(prov.allow_sending)),
        default=data.get("default", DEFAULT_MAILBOX_DEFAULT),
        sender_name=data.get("sender_name"),
        signature=data.get("signature"),
        sync=sync,
        shared_with=shares,
        source=Place(entry.doc.path, *entry.place_of_item),
    )


def build(checked: CheckedConfig) -> Config:
    """The model of a config without errors (every caller checks `checked.ok` first)."""
    providers: dict[str, Provider] = {}
    for entry in checked.providers:
        p = provider(entry)
        providers[p.name] = p
    mailboxes: dict[str, Mailbox] = {}
    for mb_entry in checked.mailboxes:
        m = mailbox(mb_entry, providers)
        mailboxes[m.address] = m
    return Config(providers, mailboxes)
