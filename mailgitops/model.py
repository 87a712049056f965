"""The normalized, typed model of a config: every default filled in, provider resolved, login
derived, secrets as references. `attrs()` gives the same attributes as plain JSON under the
config's keys — the form the live state stores and the plan compares.

Also the home of the domain's facts, each written once for every layer that needs it: the
defaults, the folding of domains, addresses and users, login derivation, and which attributes
are secret."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from mailgitops.diagnostics import Place

Security = Literal["ssl_tls", "starttls", "none"]
ServiceType = Literal["imap", "exchange"]
LoginFormat = Literal["email_address", "mailbox_name", "manual"]
AuthMethod = Literal["basic", "oauth2"]

# -- Defaults: what an attribute the config leaves out means ----------------------------------
# The one home of these facts: normalize fills them in, validate checks against them, import
# leaves them out, resolve shows them. The JSON Schemas repeat them as `default` annotations
# for editors (tests/test_schema_defaults.py holds the two to the same values).
DEFAULT_SERVICE_TYPE: ServiceType = "imap"
DEFAULT_SECURITY: Security = "ssl_tls"
DEFAULT_SMTP_TIMEOUT = 40
DEFAULT_AUTODISCOVER = False
DEFAULT_ALLOW = True  # allow_receiving and allow_sending
DEFAULT_LOGIN_FORMAT: LoginFormat = "email_address"
DEFAULT_AUTH_METHOD: AuthMethod = "basic"
DEFAULT_MAILBOX_DEFAULT = False  # a mailbox is not its owner's default unless it says so
DEFAULT_SYNC_PERIOD = "week"
DEFAULT_SYNC_FOLDERS: tuple[str, ...] = ("INBOX",)

# The provider's defaults by the path of their attribute (a mailbox's `send_emails` and
# `sync.enabled` follow the provider: see default_send_emails and default_sync_enabled).
PROVIDER_DEFAULTS: dict[tuple[str, ...], Any] = {
    ("service_type",): DEFAULT_SERVICE_TYPE,
    ("imap", "security"): DEFAULT_SECURITY,
    ("smtp", "security"): DEFAULT_SECURITY,
    ("smtp", "timeout_seconds"): DEFAULT_SMTP_TIMEOUT,
    ("exchange", "autodiscover"): DEFAULT_AUTODISCOVER,
    ("allow_receiving",): DEFAULT_ALLOW,
    ("allow_sending",): DEFAULT_ALLOW,
    ("login_format",): DEFAULT_LOGIN_FORMAT,
    ("auth", "method"): DEFAULT_AUTH_METHOD,
}

# The ports usual for each server kind and security; the first is the default (RFC 8314).
_PORTS: dict[str, dict[str, tuple[int, ...]]] = {
    "imap": {"ssl_tls": (993,), "starttls": (143,), "none": (143,)},
    "smtp": {"ssl_tls": (465,), "starttls": (587, 25, 2525), "none": (587, 25, 2525)},
}


def default_port(server: str, security: str) -> int:
    """The port of an `imap` or `smtp` server that names none: the standard one for its
    security (RFC 8314 for implicit TLS)."""
    return _PORTS[server][security][0]


def usual_ports(server: str, security: str) -> frozenset[int] | None:
    """The ports a server of this kind and security usually listens on; None for an unknown
    security (the schema reports it)."""
    ports = _PORTS[server].get(security)
    return None if ports is None else frozenset(ports)


def default_send_emails(allow_sending: bool) -> bool:
    """A mailbox sends unless its provider does not allow sending."""
    return allow_sending


def default_sync_enabled(allow_receiving: bool) -> bool:
    """A mailbox syncs unless its provider does not allow receiving."""
    return allow_receiving


# -- Folding: how names compare ----------------------------------------------------------------


def fold_domain(domain: str) -> str:
    """A domain as it compares: case-insensitive, with or without the root's trailing dot."""
    return domain.lower().rstrip(".")


def fold_address(address: str) -> str:
    """An address as it compares and keys the model and the state (SPEC §2.2)."""
    return address.lower()


def address_domain(address: str) -> str:
    """The domain of an address as it is looked up among the providers' folded domains:
    lower-cased, and nothing more. A trailing dot is not stripped here: `a@example.com.` is
    not an address, so no provider serves it (validate reports such an address as well)."""
    return fold_address(address).rpartition("@")[2]


def fold_user(user: str) -> str:
    """A user name as it compares in access lists: as Git hosts and the CRM compare logins."""
    return user.strip().casefold()


# -- Logins ------------------------------------------------------------------------------------

# How each login_format derives a mailbox's login from its address, in words; `manual` is
# absent: the mailbox gives its login.
DERIVED_LOGIN: dict[str, str] = {
    "email_address": "the address",
    "mailbox_name": "the part before @",
}


def derive_login(login_format: str, address: str, manual_login: str | None = None) -> str | None:
    """A mailbox's login under `login_format`: the address, the part before @, or the login
    the mailbox gives (None when it gives none)."""
    if login_format == "manual":
        return manual_login
    if login_format == "mailbox_name":
        return address.rpartition("@")[0]
    return address


# -- Secrets -----------------------------------------------------------------------------------


class SecretAttribute(NamedTuple):
    """An attribute (in the state's form) that may hold a secret reference."""

    kind: Literal["provider", "mailbox"]
    path: tuple[str, ...]
    # Sensitive: the value is secret, so always a reference (never a literal), shown as
    # (sensitive), diffed as a whole. `auth.client_id` is not: not secret enough to hide in a
    # plan's diff, but when it is a reference it is read from the same places, so it is
    # delivered by apply, checked for readability and against `secrets:` like the others.
    sensitive: bool


# The one definition of which attributes are secret and which may hold a reference to one;
# every set below, and what validation, the state checks, rendering and plan files treat as
# secret, derives from it.
SECRET_ATTRIBUTES: tuple[SecretAttribute, ...] = (
    SecretAttribute("mailbox", ("password",), sensitive=True),
    SecretAttribute("provider", ("auth", "client_secret"), sensitive=True),
    SecretAttribute("provider", ("auth", "client_id"), sensitive=False),
)
SENSITIVE_PATHS: tuple[tuple[str, ...], ...] = tuple(
    a.path for a in SECRET_ATTRIBUTES if a.sensitive
)
# Attributes that may hold a secret reference, delivered by apply.
REFERENCE_PATHS: tuple[tuple[str, ...], ...] = tuple(a.path for a in SECRET_ATTRIBUTES)
# The keys of the sensitive attributes, wherever they appear (an entry made outside
# mailgitops may nest them differently): the value must be a reference, never a literal, and
# even a reference's name is not shown.
SENSITIVE_KEYS = frozenset(path[-1] for path in SENSITIVE_PATHS)
# Keys whose value is a secret, or may hold one (a DSN's password), wherever they appear in a
# config or a state entry. The one place that decides "this is secret": a message never
# quotes a value found under one of these keys (or an alias of such a value), whatever the
# rule that complains about it.
SECRET_KEYS = SENSITIVE_KEYS | {"dsn"}


def reference_paths(kind: Literal["provider", "mailbox"]) -> tuple[tuple[str, ...], ...]:
    """The attributes of an entry of `kind` that may hold a secret reference."""
    return tuple(a.path for a in SECRET_ATTRIBUTES if a.kind == kind)


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
    method: AuthMethod = DEFAULT_AUTH_METHOD
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

    def login_for(self, address: str, manual_login: str | None = None) -> str | None:
        """The login of this provider's mailbox at `address` (lower-case): derived from the
        address by login_format, or the mailbox's own `login` under `manual`."""
        return derive_login(self.login_format, address, manual_login)

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
    enabled: bool = default_sync_enabled(DEFAULT_ALLOW)
    since: str | None = None  # ISO date
    period: str = DEFAULT_SYNC_PERIOD
    folders: tuple[str, ...] = DEFAULT_SYNC_FOLDERS


class Mailbox(NamedTuple):
    # A NamedTuple, not a frozen dataclass: a config has tens of thousands of mailboxes, and
    # a NamedTuple is built three times faster (docs/performance.md).
    address: str  # lower-case
    owner: str
    provider: str
    login: str
    password: SecretRef | None
    send_emails: bool = default_send_emails(DEFAULT_ALLOW)
    default: bool = DEFAULT_MAILBOX_DEFAULT
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

    def provider_for_address(self, address: str) -> Provider | None:
        """The provider that serves the address's domain (SPEC §2.1 `domains`), if any."""
        domain = address_domain(address)
        for provider in self.providers.values():
            if domain in provider.domains:
                return provider
        return None
