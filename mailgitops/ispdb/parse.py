"""Mapping one ISPDB `clientConfig` file to the provider model: an IspdbProvider, or a Skip
that says why it cannot be imported faithfully.

A file is imported only when it can be represented faithfully; otherwise it is skipped with
a reason and nothing is written for it. The decisions behind the mapping (docs/ispdb.md):

* Server choice: among the IMAP (SMTP) servers whose hostname is a real host, the first one
  with socketType SSL, else STARTTLS, else plain. That server is then checked as a whole; a
  bad port, socketType, authentication or username skips the file instead of silently falling
  back to another server.
* Login format. The model has ONE `login_format` per provider because the CRM stores one
  UserName per mailbox and uses it for IMAP and SMTP. `login_format` follows the IMAP
  server: it is the mailbox's receiving login, and receiving is what a mailbox is first set up
  for. When the SMTP server uses the *other* standard placeholder (%EMAILADDRESS% versus
  %EMAILLOCALPART%, e.g. iCloud: IMAP local part, SMTP full address) the file is still
  imported, with a comment naming the SMTP server's own format: both logins are derived from
  the same address, so the reviewer can switch with one word if sending fails. When the
  difference cannot be expressed (one side a literal or another template, i.e. `manual`,
  and the other not, or two different manual templates) the file is skipped.
* Authentication. A provider has one auth method for both servers, so the method must be
  offered by both: basic when both accept a password (also when OAuth2 is offered too, since
  basic needs no app registration; the file says so in a comment), oauth2 when both accept
  only OAuth2, and a skip when they have nothing in common (IMAP OAuth2 only, SMTP password
  only). A server without a username although it uses a password is unusable (Thunderbird
  rejects such a server as well).
* OAuth2 client references are `{env: NAME_OAUTH_CLIENT_ID}` / `{env: NAME_OAUTH_CLIENT_SECRET}`
  with NAME the provider name upper-cased, non-alphanumerics as `_`, and a leading `_` when it
  would start with a digit (an environment variable name cannot).
* A hostname containing a `%…%` placeholder depends on the user's address and is skipped:
  one provider file cannot say "mail.<the user's domain>".
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal
from xml.etree.ElementTree import Element

from mailgitops.ispdb.read import Skip, parse_xml, read_limited
from mailgitops.model import (
    AuthMethod,
    ImapServer,
    LoginFormat,
    Security,
    SmtpServer,
)

_NAME_RE: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
# The same patterns as schemas/provider.schema.json, so that what we write validates.
_HOST_RE: Final = re.compile(
    r"^[A-Za-z0-9]([A-Za-z0-9-]{0,62})?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62})?)*\.?$"
)
_DOMAIN_RE: Final = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,62})?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62})?)+$"
)
_PLACEHOLDER_RE: Final = re.compile(r"%[A-Za-z0-9_]*%")

_SOCKET_TYPES: Final[dict[str, Security]] = {
    "SSL": "ssl_tls",
    "STARTTLS": "starttls",
    "plain": "none",
}
_SECURITY_PREFERENCE: Final[tuple[Security, ...]] = ("ssl_tls", "starttls", "none")
_LOGIN_PLACEHOLDERS: Final[dict[str, LoginFormat]] = {
    "%EMAILADDRESS%": "email_address",
    "%EMAILLOCALPART%": "mailbox_name",
}
_AUTH_METHODS: Final[dict[str, Literal["password", "oauth2"]]] = {
    "password-cleartext": "password",
    "password-encrypted": "password",
    # The names of older ISPDB files, which Thunderbird still reads as the two above
    # (comm-central, mailnews/base/prefs/content/accountcreation/readFromXML.sys.mjs).
    "plain": "password",
    "secure": "password",
    "OAuth2": "oauth2",
}

ServerKind = Literal["imap", "smtp"]


@dataclass(frozen=True)
class IspdbProvider:
    """What an ISPDB file says, already mapped to the provider model."""

    name: str
    display_name: str | None
    domains: tuple[str, ...]
    imap: ImapServer
    smtp: SmtpServer
    login_format: LoginFormat
    auth_method: AuthMethod
    # The username template of the IMAP server, kept for the reviewer when it is `manual`.
    imap_username: str
    # The SMTP server's own (different, standard) username template, when it differs.
    smtp_username: str | None = None
    # basic was chosen although both servers also offer OAuth2.
    oauth2_offered: bool = False
    authorize_url: str | None = None
    token_url: str | None = None
    # "You need to enable IMAP access" and its URL, from <enable>.
    enable_instruction: str | None = None
    enable_url: str | None = None


def provider_name(path: Path) -> str:
    """The file's name without `.xml`: ISPDB names files after a domain, so `126.com` (as
    served by the autoconfig URL, without the suffix) is provider `126.com`, not `126`."""
    name = path.name
    if name.lower().endswith(".xml"):
        name = name[: -len(".xml")]
    return name.lower()


def parse_client_config(path: Path) -> IspdbProvider | Skip:
    """Read one ISPDB file and map it, or say why it cannot be imported."""
    name = provider_name(path)
    if not _NAME_RE.match(name):
        return Skip(
            f"file name gives provider name {name!r}, which does not match "
            "^[a-z0-9][a-z0-9._-]{0,62}$; rename the file"
        )
    data = read_limited(path)
    if isinstance(data, Skip):
        return data
    root = parse_xml(data)
    if isinstance(root, Skip):
        return root
    return _map_document(name, root)


def _text(element: Element | None) -> str:
    if element is None or element.text is None:
        return ""
    return element.text.strip()


def _map_document(name: str, root: Element) -> IspdbProvider | Skip:
    providers = root.findall("emailProvider")
    if not providers:
        return Skip("not a clientConfig document (no <emailProvider>)")
    if len(providers) > 1:
        return Skip(f"{len(providers)} <emailProvider> elements; one file must describe one")
    ep = providers[0]

    imap_el = _choose_server(ep.findall("incomingServer"), "imap")
    if isinstance(imap_el, Skip):
        return imap_el
    smtp_el = _choose_server(ep.findall("outgoingServer"), "smtp")
    if isinstance(smtp_el, Skip):
        return smtp_el
    imap = _read_server(imap_el, "imap")
    if isinstance(imap, Skip):
        return imap
    smtp = _read_server(smtp_el, "smtp")
    if isinstance(smtp, Skip):
        return smtp

    login = _login_format(imap, smtp)
    if isinstance(login, Skip):
        return login
    login_format, smtp_username = login

    auth = _auth(imap, smtp)
    if isinstance(auth, Skip):
        return auth
    auth_method, oauth2_offered = auth

    domains = _domains(ep)
    if isinstance(domains, Skip):
        return domains

    authorize_url = token_url = None
    if auth_method == "oauth2":
        oauth = root.find("oAuth2")
        authorize_url = _https_url(_text(oauth.find("authURL")) if oauth is not None else "")
        token_url = _https_url(_text(oauth.find("tokenURL")) if oauth is not None else "")

    instruction, url = _enable(ep)
    return IspdbProvider(
        name=name,
        display_name=_display_name(ep),
        domains=domains,
        imap=ImapServer(host=imap.host, security=imap.security, port=imap.port),
        smtp=SmtpServer(host=smtp.host, security=smtp.security, port=smtp.port),
        login_format=login_format,
        auth_method=auth_method,
        imap_username=imap.username,
        smtp_username=smtp_username,
        oauth2_offered=oauth2_offered,
        authorize_url=authorize_url,
        token_url=token_url,
        enable_instruction=instruction,
        enable_url=url,
    )


@dataclass(frozen=True)
class _Server:
    kind: ServerKind
    host: str
    security: Security
    port: int
    username: str
    methods: frozenset[Literal["password", "oauth2"]]


def _label(kind: ServerKind) -> str:
    return "IMAP" if kind == "imap" else "SMTP"


def _choose_server(elements: list[Element], kind: ServerKind) -> Element | Skip:
    label = _label(kind)
    of_kind = [el for el in elements if el.get("type") == kind]
    if not of_kind:
        others = sorted({el.get("type") or "?" for el in elements})
        found = f" (only {', '.join(others)})" if others else ""
        return Skip(f"no {label} server{found}")
    usable = [el for el in of_kind if _host_problem(_text(el.find("hostname"))) is None]
    if not usable:
        host = _text(of_kind[0].find("hostname"))
        return Skip(f"{label} {_host_problem(host)}")
    rank = {sec: i for i, sec in enumerate(_SECURITY_PREFERENCE)}

    def preference(el: Element) -> int:
        security = _SOCKET_TYPES.get(_text(el.find("socketType")))
        return rank[security] if security is not None else len(rank)

    # sorted() is stable: among equals, the first in the file wins.
    return sorted(usable, key=preference)[0]


def _host_problem(host: str) -> str | None:
    if not host:
        return "server has no <hostname>"
    if _PLACEHOLDER_RE.search(host):
        return f"host {host!r} depends on the user's address; one provider file cannot express that"
    try:
        ipaddress.ip_address(host.strip("[]"))
        return None
    except ValueError:
        pass
    if len(host) > 253 or not _HOST_RE.match(host):
        return f"host {host!r} is not a hostname or IP address"
    return None


def _read_server(el: Element, kind: ServerKind) -> _Server | Skip:
    label = _label(kind)
    host = _text(el.find("hostname"))
    where = f"{label} server {host}"

    port_text = _text(el.find("port"))
    if not port_text:
        return Skip(f"{where} has no <port>")
    if not re.fullmatch(r"[0-9]{1,5}", port_text) or not 1 <= int(port_text) <= 65535:
        return Skip(f"{where}: port {port_text!r} is not an integer 1-65535")

    socket_type = _text(el.find("socketType"))
    security = _SOCKET_TYPES.get(socket_type)
    if security is None:
        shown = repr(socket_type) if socket_type else "missing"
        return Skip(f"{where}: socketType {shown} is not SSL, STARTTLS or plain")

    offered = [_text(a) for a in el.findall("authentication")]
    methods = frozenset(_AUTH_METHODS[a] for a in offered if a in _AUTH_METHODS)
    if not methods:
        shown = ", ".join(offered) if offered else "no <authentication>"
        return Skip(f"{where} offers no password or OAuth2 authentication ({shown})")

    username = _text(el.find("username"))
    if not username:
        # Thunderbird rejects a password server without a username too; guessing one (say,
        # the IMAP server's) could make every mailbox of the provider fail to send.
        return Skip(f"{where} has no <username>, so the login it expects is unknown")

    return _Server(kind, host, security, int(port_text), username, methods)


def _format_of(username: str) -> LoginFormat:
    return _LOGIN_PLACEHOLDERS.get(username, "manual")


def _login_format(imap: _Server, smtp: _Server) -> tuple[LoginFormat, str | None] | Skip:
    imap_format = _format_of(imap.username)
    if imap.username == smtp.username:
        return imap_format, None
    smtp_format = _format_of(smtp.username)
    if imap_format != "manual" and smtp_format != "manual":
        # Both derived from the same address: expressible, with a note for the reviewer.
        return imap_format, smtp.username
    return Skip(
        f"IMAP logs in as {imap.username!r} but SMTP as {smtp.username!r}; the CRM uses one "
        "login per mailbox for both"
    )


def _auth(imap: _Server, smtp: _Server) -> tuple[AuthMethod, bool] | Skip:
    common = imap.methods & smtp.methods
    if "password" in common:
        return "basic", "oauth2" in common
    if "oauth2" in common:
        return "oauth2", False

    def say(server: _Server) -> str:
        return " or ".join(
            "a password" if m == "password" else "OAuth2" for m in sorted(server.methods)
        )

    return Skip(
        f"IMAP accepts only {say(imap)} but SMTP only {say(smtp)}; a provider has one auth "
        "method for both"
    )


def _domains(ep: Element) -> tuple[str, ...] | Skip:
    seen: dict[str, None] = {}
    for el in ep.findall("domain"):
        domain = _text(el).lower()
        if not domain:
            continue
        if not _DOMAIN_RE.match(domain):
            return Skip(f"domain {domain!r} is not a domain name")
        seen.setdefault(domain, None)
    return tuple(seen)


def _display_name(ep: Element) -> str | None:
    name = " ".join(_text(ep.find("displayName")).split())
    # "%EMAILDOMAIN%" as a display name would be shown literally in the CRM.
    if not name or _PLACEHOLDER_RE.search(name):
        return None
    return name


def _https_url(url: str) -> str | None:
    if url.startswith("https://") and not _PLACEHOLDER_RE.search(url) and " " not in url:
        return url
    return None


def _enable(ep: Element) -> tuple[str | None, str | None]:
    enable = ep.find("enable")
    if enable is None:
        return None, None
    url = (enable.get("visiturl") or "").strip() or None
    instructions = enable.findall("instruction")
    english = [i for i in instructions if i.get("lang") in (None, "en")]
    chosen = (english or instructions)[:1]
    text = " ".join(_text(chosen[0]).split()) if chosen else ""
    # A comment, not a manual: a hostile file must not fill the provider file with prose.
    if len(text) > 500:
        text = text[:500].rsplit(" ", 1)[0] + " ..."
    if url is not None and len(url) > 500:
        url = None
    return text or None, url
