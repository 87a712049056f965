"""Import Thunderbird ISPDB `clientConfig` files as provider files (`import-ispdb`).

Pure logic: read and judge one XML file (`parse_client_config`), render the provider file as
hand-written YAML (`render_provider_yaml`), and write a batch of them (`import_ispdb`). The
command module only parses arguments and prints the report.

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

Parsing is safe against hostile input: a size limit before reading, strict UTF-8, and
expat with DOCTYPE/ENTITY declarations refused outright, so there is no entity expansion and
no external entity at all.
"""

from __future__ import annotations

import ipaddress
import os
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal
from xml.etree.ElementTree import Element, TreeBuilder
from xml.parsers import expat

import yaml

from mailgitops import schema
from mailgitops.fsutil import atomic_write
from mailgitops.model import (
    AuthMethod,
    ImapServer,
    LoginFormat,
    Security,
    SmtpServer,
)

MAX_FILE_BYTES: Final = 1024 * 1024
PROVIDERS_DIR: Final = "providers.d"
SCHEMA_COMMENT: Final = schema.header("provider")

_NAME_RE: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
# The same patterns as schemas/provider.schema.json, so that what we write validates.
_HOST_RE: Final = re.compile(
    r"^[A-Za-z0-9]([A-Za-z0-9-]{0,62})?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62})?)*\.?$"
)
_DOMAIN_RE: Final = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,62})?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62})?)+$"
)
_PLACEHOLDER_RE: Final = re.compile(r"%[A-Za-z0-9_]*%")
_ENCODING_RE: Final = re.compile(
    rb"""^(?:\xef\xbb\xbf)?\s*<\?xml[^>]*?\bencoding\s*=\s*["']([^"']*)["']"""
)

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
class Skip:
    """A file that cannot be imported faithfully, and why."""

    reason: str


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


@dataclass(frozen=True)
class FileResult:
    """The outcome for one input file: `written` (relative to the root) or `reason`."""

    source: str
    written: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class ImportReport:
    results: tuple[FileResult, ...]

    @property
    def imported(self) -> int:
        return sum(1 for r in self.results if r.written is not None)

    @property
    def skipped(self) -> int:
        return sum(1 for r in self.results if r.written is None)


class _Refused(Exception):
    """Raised from expat handlers to stop at a DOCTYPE or ENTITY declaration."""


# --- reading ------------------------------------------------------------------------------


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
    data = _read_limited(path)
    if isinstance(data, Skip):
        return data
    root = _parse_xml(data)
    if isinstance(root, Skip):
        return root
    return _map_document(name, root)


def _read_limited(path: Path) -> bytes | Skip:
    if path.exists() and not path.is_file():
        # A directory, FIFO or device: reading a FIFO would block the whole import.
        return Skip("not a regular file")
    try:
        with path.open("rb") as fh:
            # Read one byte past the limit instead of trusting stat(): the file may grow
            # between the two.
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        return Skip(f"cannot be read: {exc.strerror or exc}")
    if len(data) > MAX_FILE_BYTES:
        return Skip("larger than 1 MiB; not an ISPDB file")
    return data


def _parse_xml(data: bytes) -> Element | Skip:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Skip(f"not UTF-8 (invalid byte at offset {exc.start})")
    declared = _ENCODING_RE.match(data)
    if declared:
        encoding = declared.group(1).decode("ascii", "replace").lower()
        if encoding not in ("utf-8", "utf8", "us-ascii", "ascii"):
            return Skip(f"declares encoding {encoding!r}; only UTF-8 files are read")

    builder = TreeBuilder()
    # The encoding argument overrides whatever the document declares: we checked UTF-8.
    parser = expat.ParserCreate(encoding="utf-8")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)

    def refuse(*_args: Any) -> None:
        raise _Refused

    # A clientConfig never needs a DTD; refusing it removes entity expansion ("billion
    # laughs") and external entities before they can happen.
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse  # type: ignore[assignment]
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(data, True)
    except _Refused:
        return Skip("not a clientConfig document (DOCTYPE/ENTITY declarations are refused)")
    except expat.ExpatError as exc:
        message = expat.errors.messages[exc.code] if exc.code else str(exc)
        return Skip(f"broken XML: {message} at line {exc.lineno}, column {exc.offset + 1}")
    root = builder.close()
    if root.tag != "clientConfig":
        return Skip(f"not a clientConfig document (root element is <{root.tag}>)")
    return root


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


# --- writing ------------------------------------------------------------------------------


def env_prefix(name: str) -> str:
    """NAME for the OAuth2 environment variables of provider `name`."""
    prefix = re.sub(r"[^A-Z0-9]", "_", name.upper())
    return f"_{prefix}" if prefix[:1].isdigit() else prefix


def provider_document(p: IspdbProvider) -> dict[str, Any]:
    """The provider file's content as data, defaults omitted: what the YAML must load as."""
    doc: dict[str, Any] = {"name": p.name}
    if p.display_name is not None:
        doc["display_name"] = p.display_name
    if p.domains:
        doc["domains"] = list(p.domains)
    doc["imap"] = {"host": p.imap.host, "security": p.imap.security, "port": p.imap.port}
    doc["smtp"] = {"host": p.smtp.host, "security": p.smtp.security, "port": p.smtp.port}
    if p.login_format != "email_address" or p.smtp_username is not None:
        doc["login_format"] = p.login_format
    if p.auth_method == "oauth2":
        env = env_prefix(p.name)
        auth: dict[str, Any] = {
            "method": "oauth2",
            "client_id": {"env": f"{env}_OAUTH_CLIENT_ID"},
            "client_secret": {"env": f"{env}_OAUTH_CLIENT_SECRET"},
        }
        if p.authorize_url is not None:
            auth["authorize_url"] = p.authorize_url
        if p.token_url is not None:
            auth["token_url"] = p.token_url
        doc["auth"] = auth
    elif p.oauth2_offered:
        # Written although it is the default, so the comment explaining it has a home.
        doc["auth"] = {"method": "basic"}
    return doc


def render_provider_yaml(p: IspdbProvider, source_name: str) -> str:
    """The provider file as a person would write it: key order of SPEC §2.1, block style,
    comments where the import made a choice."""
    lines: list[str] = []
    _comment(
        lines,
        f"Imported from Thunderbird ISPDB: {source_name} (MPL-2.0). Review before committing.",
    )
    lines.append(SCHEMA_COMMENT)
    if p.enable_instruction or p.enable_url:
        text = " ".join(x for x in (p.enable_instruction, p.enable_url) if x)
        _comment(lines, f"Before first use (from the ISPDB): {text}")

    doc = provider_document(p)
    lines.append(f"name: {_scalar(p.name)}")
    if "display_name" in doc:
        lines.append(f"display_name: {_scalar(doc['display_name'])}")
    if "domains" in doc:
        _domains_lines(lines, doc["domains"])
    for key in ("imap", "smtp"):
        lines.append(f"{key}:")
        for field in ("host", "security", "port"):
            lines.append(f"  {field}: {_scalar(doc[key][field])}")
    if "login_format" in doc:
        _login_comment(lines, p)
        lines.append(f"login_format: {p.login_format}")
    if "auth" in doc:
        auth: dict[str, Any] = doc["auth"]
        lines.append("auth:")
        if p.auth_method == "basic":
            env = env_prefix(p.name)
            _comment(
                lines,
                "Both servers also offer OAuth2; basic is chosen because it needs no app "
                "registration. To use OAuth2, register an app and write instead:",
                indent="  ",
            )
            lines.append("  #   method: oauth2")
            lines.append(f"  #   client_id: {{env: {env}_OAUTH_CLIENT_ID}}")
            lines.append(f"  #   client_secret: {{env: {env}_OAUTH_CLIENT_SECRET}}")
        lines.append(f"  method: {auth['method']}")
        for key in ("client_id", "client_secret"):
            if key in auth:
                lines.append(f"  {key}: {{env: {auth[key]['env']}}}")
        for key in ("authorize_url", "token_url"):
            if key in auth:
                lines.append(f"  {key}: {_scalar(auth[key])}")
    text = "\n".join(lines) + "\n"
    # The writer is hand-made for readability; this proves it says exactly what we mean.
    if yaml.safe_load(text) != doc:
        raise AssertionError(f"rendered YAML for {p.name} does not load back as intended")
    return text


def _login_comment(lines: list[str], p: IspdbProvider) -> None:
    if p.login_format == "manual":
        _comment(
            lines,
            f"The servers expect the login {p.imap_username!r}, which the CRM cannot derive "
            "from the address: every mailbox of this provider sets its own login:.",
        )
    if p.smtp_username is not None:
        theirs = "the full address" if p.smtp_username == "%EMAILADDRESS%" else "the local part"
        ours = "the local part" if p.login_format == "mailbox_name" else "the full address"
        other = "email_address" if p.login_format == "mailbox_name" else "mailbox_name"
        _comment(
            lines,
            f"The IMAP server logs in with {ours} ({p.imap_username}), the SMTP server with "
            f"{theirs} ({p.smtp_username}). The CRM keeps one login per mailbox for both, so "
            f"login_format follows IMAP; if sending fails, try login_format: {other}.",
        )


def _domains_lines(lines: list[str], domains: list[str]) -> None:
    flow = f"domains: [{', '.join(_scalar(d) for d in domains)}]"
    if len(flow) <= 100:
        lines.append(flow)
        return
    lines.append("domains:")
    lines.extend(f"  - {_scalar(d)}" for d in domains)


def _comment(lines: list[str], text: str, indent: str = "") -> None:
    wrapped = textwrap.wrap(
        _comment_safe(text),
        width=100 - len(indent) - 2,
        break_long_words=False,
        break_on_hyphens=False,
    )
    lines.extend(f"{indent}# {line}" for line in wrapped)


def _yaml_printable(ch: str) -> bool:
    # PyYAML's reader accepts only these; \x85, \u2028 and \u2029 would end a comment line.
    code = ord(ch)
    return (
        0x20 <= code <= 0x7E
        or 0xA0 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    ) and ch not in "\u2028\u2029"


def _comment_safe(text: str) -> str:
    return "".join(ch if _yaml_printable(ch) else " " for ch in text)


# ASCII punctuation that is no YAML indicator in the middle of a plain scalar. No flow
# indicator (`,[]{}`) and no `#`, so a plain scalar is also safe inside a flow list.
_PLAIN_PUNCTUATION: Final = frozenset(" ._-/()+&@'!|:=?%~*;")


def _scalar(value: str | int) -> str:
    """A YAML scalar: plain where that reads back as the same string, else double-quoted."""
    if isinstance(value, int):
        return str(value)
    if _plain_ok(value):
        return value
    return _double_quoted(value)


def _plain_ok(s: str) -> bool:
    # Conservative first (starts with a letter or digit, known-harmless characters, no ": "
    # that would start a mapping), then the YAML 1.1 resolver vetoes what it would read as
    # something else (yes, null, 1e3, 0x1f, 2024-01-01, 1:30, ...).
    if not s or not s[0].isalnum() or s != s.strip() or "  " in s:
        return False
    if ": " in s or s.endswith(":"):
        return False
    for ch in s:
        if ch.isascii():
            if not (ch.isalnum() or ch in _PLAIN_PUNCTUATION):
                return False
        elif not _yaml_printable(ch) or ch == "\ufeff":
            return False
    try:
        return bool(yaml.safe_load(f"k: {s}") == {"k": s})
    except yaml.YAMLError:
        return False


def _double_quoted(s: str) -> str:
    out = ['"']
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif _yaml_printable(ch):
            out.append(ch)
        elif ord(ch) <= 0xFF:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


# --- the batch ----------------------------------------------------------------------------


def expand_paths(paths: Sequence[Path]) -> list[Path]:
    """Directories become their `*.xml` files (sorted, dotfiles ignored); files stay."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(
                sorted(
                    (
                        p
                        for p in path.iterdir()
                        if p.suffix == ".xml" and not p.name.startswith(".")
                    ),
                    key=lambda p: p.name,
                )
            )
        else:
            files.append(path)
    return files


def _existing_domains(root: Path) -> dict[str, str]:
    """domain -> the existing provider file that lists it, read leniently (validate reports
    the files' own errors): a provider file that cannot be read claims nothing here."""
    from mailgitops.load import config_files, read

    out: dict[str, str] = {}
    for rel in config_files(root):
        if not rel.startswith(f"{PROVIDERS_DIR}/"):
            continue
        data = read(root, rel).data
        domains = data.get("domains") if isinstance(data, dict) else None
        for domain in domains if isinstance(domains, list) else []:
            if isinstance(domain, str):
                out.setdefault(domain.lower().rstrip("."), rel)
    return out


def _collisions(
    parsed: list[tuple[Path, IspdbProvider | Skip]], root: Path, force: bool
) -> dict[Path, str]:
    """Why each input must be skipped for its domains: a domain belongs to at most one
    provider (SPEC §2.1), so two inputs that claim it are both skipped (which one is right is
    the user's call), and so is an input that claims a domain an existing provider serves —
    unless --force replaces exactly that provider's file."""
    existing = _existing_domains(root)
    claims: dict[str, list[Path]] = {}
    for path, p in parsed:
        if isinstance(p, IspdbProvider):
            for domain in p.domains:
                claims.setdefault(domain, []).append(path)
    out: dict[Path, str] = {}
    for path, p in parsed:
        if not isinstance(p, IspdbProvider):
            continue
        own = f"{PROVIDERS_DIR}/{p.name}.yaml"
        for domain in p.domains:
            others = [q.name for q in claims[domain] if q != path]
            holder = existing.get(domain)
            if others:
                out[path] = f"domain {domain} is also claimed by {', '.join(others)}"
                break
            if holder is not None and not (force and holder == own):
                out[path] = f"domain {domain} is already served by {holder}"
                break
    return out


def import_ispdb(paths: Sequence[Path], root: Path, force: bool) -> ImportReport:
    """Import every file of `paths` into `root/providers.d/`. Per file all or nothing; one
    file's failure never stops the others. Every file is read and every domain checked
    before the first one is written."""
    target_dir = root / PROVIDERS_DIR
    parsed = [(path, parse_client_config(path)) for path in expand_paths(paths)]
    collisions = _collisions(parsed, root, force)
    target_dir.mkdir(exist_ok=True)
    results: list[FileResult] = []
    claimed: dict[str, str] = {}  # provider name -> source that wrote it in this run
    for path, parsed_one in parsed:
        source = path.name
        if isinstance(parsed_one, Skip):
            results.append(FileResult(source, reason=parsed_one.reason))
            continue
        if path in collisions:
            results.append(FileResult(source, reason=collisions[path]))
            continue
        if parsed_one.name in claimed:
            results.append(
                FileResult(source, reason=f"same provider name as {claimed[parsed_one.name]}")
            )
            continue
        relative = f"{PROVIDERS_DIR}/{parsed_one.name}.yaml"
        target = target_dir / f"{parsed_one.name}.yaml"
        if not force and os.path.lexists(target):
            results.append(FileResult(source, reason=f"{relative} exists, use --force"))
            continue
        try:
            text = render_provider_yaml(parsed_one, source)
        except AssertionError:
            # A bug in the writer must not put a wrong file in the repository.
            results.append(
                FileResult(
                    source, reason="cannot be written as YAML faithfully (a bug; please report)"
                )
            )
            continue
        problem = _write_atomically(target, text, force)
        if problem is not None:
            results.append(FileResult(source, reason=f"could not write {relative}: {problem}"))
            continue
        claimed[parsed_one.name] = source
        results.append(FileResult(source, written=relative))
    return ImportReport(tuple(results))


def _write_atomically(target: Path, text: str, overwrite: bool) -> str | None:
    """Write `text` whole or not at all (fsutil.atomic_write); without `overwrite`, a file that
    appeared since we looked is kept. Returns a problem, or None."""
    try:
        atomic_write(target, text.encode("utf-8"), mode=0o644, overwrite=overwrite)
    except FileExistsError:
        return "it appeared while importing; use --force"
    except OSError as exc:
        return exc.strerror or str(exc)
    return None
