"""The normalized, typed model of a config: every default filled in, provider resolved, login
derived, secrets as references. `attrs()` gives the same attributes as plain JSON under the
config's keys — the form the live state stores and the plan compares."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from mailgitops.diagnostics import Place

Security = Literal["ssl_tls", "starttls", "none"]
ServiceType = Literal["imap", "exchange"]
LoginFormat = Literal["email_address", "mailbox_name", "manual"]
AuthMethod = Literal["basic", "oauth2"]

DEFAULT_IMAP_PORT: dict[str, int] = {"ssl_tls": 993, "starttls": 143, "none": 143}
DEFAULT_SMTP_PORT: dict[str, int] = {"ssl_tls": 465, "starttls": 587, "none": 587}
DEFAULT_SMTP_TIMEOUT = 40

# Attributes (in the state's form) that hold secret references: shown as (sensitive), diffed
# as a whole, read only to deliver them.
SENSITIVE_PATHS: tuple[tuple[str, ...], ...] = (("password",), ("auth", "client_secret"))
# Attributes that may hold a secret reference, delivered by apply: the sensitive ones and
# `auth.client_id` (not secret enough to hide in a plan, but read from the same references,
# so checked for readability and against `secrets:` like the others).
REFERENCE_PATHS: tuple[tuple[str, ...], ...] = (*SENSITIVE_PATHS, ("auth", "client_id"))
# Keys whose value is a secret, or may hold one (a DSN's password), wherever they appear in a
# config or a state entry. The one place that decides "this is secret": a message never
# quotes a value found under one of these keys (or an alias of such a value), whatever the
# rule that complains about it.
SECRET_KEYS = frozenset({"password", "client_secret", "dsn"})
# Of those, the keys whose value must be a reference, never a literal string.
REFERENCE_ONLY_KEYS = frozenset({"password", "client_secret"})


def is_secret_path(path: Any) -> bool:
    """Whether a value at `path` (keys and indexes) is, or is part of, a secret."""
    return any(isinstance(part, str) and part in SECRET_KEYS for part in path)


# `password: {keep: live}`: leave the password as it is in live (docs/secrets.md). A live
# entry never holds it: the plan puts live's value (or nothing) in its place.
KEEP_LIVE: dict[str, str] = {"keep": "live"}

# The attributes of each kind that the config format knows (the state's top-level keys
# besides `managed`); any other attribute of a live entry belongs to the CRM and is kept.
KNOWN_KEYS: dict[str, frozenset[str]] = {
    "provider": frozenset(
        {
            "service_type",
            "display_name",
            "domains",
            "imap",
            "smtp",
            "exchange",
            "allow_receiving",
            "allow_sending",
            "login_format",
            "auth",
        }
    ),
    "mailbox": frozenset(
        {
            "provider",
            "owner",
            "login",
            "password",
            "sender_name",
            "send_emails",
            "default",
            "signature",
            "sync",
            "shared_with",
        }
    ),
}


class SecretRef(NamedTuple):
    """A reference to a secret, never its value. `version` is an opaque label the user bumps
    when the value behind the reference is rotated, so a plan can say the secret changed
    without ever reading or storing it (docs/secrets.md)."""

    kind: Literal["env", "file", "keep"]  # keep: `{keep: live}`, no reference at all
    name: str
    version: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {self.kind: self.name}
        if self.version is not None:
            out["version"] = self.version
        return out

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"

    @staticmethod
    def is_ref(value: Any) -> bool:
        return isinstance(value, dict) and ("env" in value or "file" in value)


@dataclass(frozen=True)
class ImapServer:
    host: str
    security: Security
    port: int


@dataclass(frozen=True)
class SmtpServer:
    host: str
    security: Security
    port: int
    timeout_seconds: int = DEFAULT_SMTP_TIMEOUT


@dataclass(frozen=True)
class ExchangeServer:
    host: str | None
    autodiscover: bool


@dataclass(frozen=True)
class Auth:
    method: AuthMethod = "basic"
    client_id: str | SecretRef | None = None
    client_secret: SecretRef | None = None
    authorize_url: str | None = None
    token_url: str | None = None
    tenant_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method}
        if self.client_id is not None:
            out["client_id"] = (
                self.client_id.to_json()
                if isinstance(self.client_id, SecretRef)
                else self.client_id
            )
        if self.client_secret is not None:
            out["client_secret"] = self.client_secret.to_json()
        for key in ("authorize_url", "token_url", "tenant_id"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


@dataclass(frozen=True)
class Provider:
    name: str
    service_type: ServiceType
    domains: tuple[str, ...]
    imap: ImapServer | None
    smtp: SmtpServer | None
    exchange: ExchangeServer | None
    allow_receiving: bool
    allow_sending: bool
    login_format: LoginFormat
    auth: Auth
    display_name: str | None = None
    source: Place | None = field(default=None, compare=False)

    def attrs(self) -> dict[str, Any]:
        out: dict[str, Any] = {"service_type": self.service_type}
        if self.display_name is not None:
            out["display_name"] = self.display_name
        out["domains"] = list(self.domains)
        if self.imap is not None:
            out["imap"] = {
                "host": self.imap.host,
                "security": self.imap.security,
                "port": self.imap.port,
            }
        if self.smtp is not None:
            out["smtp"] = {
                "host": self.smtp.host,
                "security": self.smtp.security,
                "port": self.smtp.port,
                "timeout_seconds": self.smtp.timeout_seconds,
            }
        if self.exchange is not None:
            ex: dict[str, Any] = {"autodiscover": self.exchange.autodiscover}
            if self.exchange.host is not None:
                ex["host"] = self.exchange.host
            out["exchange"] = ex
        out["allow_receiving"] = self.allow_receiving
        out["allow_sending"] = self.allow_sending
        out["login_format"] = self.login_format
        out["auth"] = self.auth.to_json()
        return out


class Share(NamedTuple):
    user: str
    rights: tuple[str, ...]


class Sync(NamedTuple):
    enabled: bool = True
    since: str | None = None  # ISO date
    period: str = "week"
    folders: tuple[str, ...] = ("INBOX",)


class Mailbox(NamedTuple):
    # A NamedTuple, not a frozen dataclass: a config has tens of thousands of mailboxes, and
    # a NamedTuple is built three times faster (docs/performance.md).
    address: str  # lower-case
    owner: str
    provider: str
    login: str
    password: SecretRef | None
    send_emails: bool = True
    default: bool = False
    sender_name: str | None = None
    signature: str | None = None
    sync: Sync = Sync()
    shared_with: tuple[Share, ...] = ()
    source: Place | None = None

    def attrs(self) -> dict[str, Any]:
        out: dict[str, Any] = {"provider": self.provider, "owner": self.owner, "login": self.login}
        if self.password is not None:
            out["password"] = self.password.to_json()
        if self.sender_name is not None:
            out["sender_name"] = self.sender_name
        out["send_emails"] = self.send_emails
        out["default"] = self.default
        if self.signature is not None:
            out["signature"] = self.signature
        sync: dict[str, Any] = {
            "enabled": self.sync.enabled,
            "period": self.sync.period,
            "folders": list(self.sync.folders),
        }
        if self.sync.since is not None:
            sync["since"] = self.sync.since
        out["sync"] = sync
        out["shared_with"] = [{"user": s.user, "rights": list(s.rights)} for s in self.shared_with]
        return out


@dataclass(frozen=True)
class Config:
    """A whole normalized config: providers by name, mailboxes by lower-case address."""

    providers: dict[str, Provider]
    mailboxes: dict[str, Mailbox]

    def provider_for_domain(self, domain: str) -> Provider | None:
        domain = domain.lower()
        for provider in self.providers.values():
            if domain in provider.domains:
                return provider
        return None
