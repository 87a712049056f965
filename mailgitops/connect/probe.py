"""The probes of one provider: each server step by step, as a list of Checks. A step that
fails ends the probe of that server (later steps cannot run), never the whole check."""

from __future__ import annotations

import base64
import datetime
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mailgitops.connect.imap import Imap
from mailgitops.connect.results import Check, ProviderResult, Status, clean
from mailgitops.connect.session import Capabilities, Session
from mailgitops.connect.smtp import Smtp
from mailgitops.connect.wire import MAX_LINE, ProbeError, Wire, connect, handshake, resolve
from mailgitops.model import ImapServer, Provider, SmtpServer

EXPIRY_WARNING_DAYS = 21
HTTPS_PORT = 443

FITTING = {"basic": ("PLAIN", "LOGIN"), "oauth2": ("XOAUTH2", "OAUTHBEARER")}


@dataclass(frozen=True)
class Login:
    """A mailbox to log in with. `password` is the secret's value, held only in memory for
    the login; `problem` says why it could not be read."""

    address: str
    user: str
    password: str | None = field(repr=False)
    problem: str | None = None
    kept: bool = False  # `password: {keep: live}`: the CRM holds it, nothing here can read it


@dataclass(frozen=True)
class Job:
    provider: Provider
    file: str
    lines: dict[str, int]
    logins: tuple[Login, ...] = ()


@dataclass(frozen=True)
class Options:
    timeout: float
    context: ssl.SSLContext


def make_context(ca_file: str | None) -> ssl.SSLContext:
    """The system trust store (which honours SSL_CERT_FILE and SSL_CERT_DIR), plus the
    certificates of `ca_file` (a private CA). Verification is never switched off."""
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=ca_file)
    return context


class _Recorder:
    def __init__(self, server: str, target: str) -> None:
        self.server = server
        self.target = target
        self.checks: list[Check] = []

    def __call__(self, step: str, status: Status, message: str, mailbox: str | None = None) -> None:
        self.checks.append(Check(self.server, self.target, step, status, message, mailbox))


def check_provider(job: Job, options: Options) -> ProviderResult:
    provider = job.provider
    checks: list[Check] = []
    basic = provider.auth.method == "basic"
    if provider.imap is not None:
        checks += _mail_server("imap", provider.imap, provider, job.logins, options)
    if provider.smtp is not None:
        # A login is tried on both servers: Creatio reads over IMAP and sends over SMTP.
        checks += _mail_server("smtp", provider.smtp, provider, job.logins, options)
    if provider.exchange is not None:
        if provider.exchange.host is not None:
            checks += _https("exchange", provider.exchange.host, "/EWS/Exchange.asmx", options)
        if provider.exchange.autodiscover:
            if provider.domains:
                host = f"autodiscover.{provider.domains[0]}"
                checks += _https("autodiscover", host, "/autodiscover/autodiscover.xml", options)
            else:
                checks.append(
                    Check("autodiscover", "-", "dns", "skipped", "the provider lists no domain")
                )
        target = provider.exchange.host or "autodiscover"
        for login in job.logins:
            checks.append(
                Check(
                    "exchange",
                    target,
                    "login",
                    "skipped",
                    "logins are checked for IMAP and SMTP only",
                    login.address,
                )
            )
    if not basic and provider.imap is not None:
        target = f"{provider.imap.host}:{provider.imap.port}"
        for login in job.logins:
            checks.append(
                Check(
                    "imap",
                    target,
                    "login",
                    "skipped",
                    "oauth2: a login needs a token from the user's consent; not checked",
                    login.address,
                )
            )
    return ProviderResult(provider.name, job.file, job.lines, tuple(checks))


def _session(kind: str, wire: Wire) -> Session:
    if kind == "imap":
        return Imap(wire)
    return Smtp(wire)


def _open(
    kind: str,
    server: ImapServer | SmtpServer,
    options: Options,
    record: _Recorder | None,
) -> tuple[Session, Capabilities]:
    """Connect as a client would (TLS at once, or STARTTLS, or plain) up to the capabilities
    on the connection a login would use. Raises ProbeError at the first failing step."""

    def note(step: str, status: Status, message: str) -> None:
        if record is not None:
            record(step, status, message)

    host, port, timeout = server.host, server.port, options.timeout
    addresses = resolve(host, port, timeout)
    note("dns", "ok", "resolved to " + ", ".join(a.ip for a in addresses[:4]))
    started = time.monotonic()
    sock = connect(addresses, timeout)
    note(
        "tcp",
        "ok",
        f"connected to {sock.getpeername()[0]} in {(time.monotonic() - started) * 1000:.0f} ms",
    )
    wire = Wire(sock, timeout)
    try:
        if server.security == "ssl_tls":
            try:
                tls = handshake(sock, options.context, host, timeout)
            except ProbeError as exc:
                if exc.step != "tls":  # a certificate problem is what it says
                    raise
                raise _with_hint(exc, "security: starttls or none") from None
            wire.sock = tls
            _certificate(tls, note)
        session = _session(kind, wire)
        try:
            note("greeting", "ok", session.greet())
        except ProbeError as exc:
            if server.security == "starttls" and "no answer" in exc.message:
                raise _with_hint(exc, "security: ssl_tls") from None
            raise
        caps = session.capabilities()
        note("capabilities", "ok", _describe(kind, caps))
        if server.security == "starttls":
            if not caps.starttls:
                raise ProbeError(
                    "starttls",
                    "the server does not offer STARTTLS; check the port, or use security: "
                    "ssl_tls if it speaks TLS at once",
                )
            tls = session.starttls(options.context, host)
            note("starttls", "ok", "offered and working")
            _certificate(tls, note)
            caps = session.capabilities()
            note("capabilities", "ok", "after STARTTLS: " + _describe(kind, caps))
        elif server.security == "none" and caps.starttls:
            note(
                "starttls",
                "warning",
                "the server offers STARTTLS, but security is none: the password would "
                "travel in clear text; use security: starttls",
            )
    except BaseException:
        wire.close()
        raise
    return session, caps


def _with_hint(exc: ProbeError, hint: str) -> ProbeError:
    return ProbeError(exc.step, f"{exc.message} (is the port's security right? try {hint})")


def _describe(kind: str, caps: Capabilities) -> str:
    text = caps.text or "(none announced)"
    if kind == "smtp" and caps.size:
        text += f"; SIZE limit {caps.size / 1_000_000:.1f} MB"
    return text


def _certificate(tls: ssl.SSLSocket, note: Callable[[str, Status, str], None]) -> None:
    cert = tls.getpeercert() or {}
    subject = _name(cert.get("subject", ()))
    issuer = _name(cert.get("issuer", ()))
    version = tls.version() or "TLS"
    raw_after = cert.get("notAfter")
    if not isinstance(raw_after, str):
        note("certificate", "ok", f"{version}, verified: {subject} by {issuer}")
        return
    expires = ssl.cert_time_to_seconds(raw_after)
    days = (expires - time.time()) / 86400
    day = datetime.datetime.fromtimestamp(expires, datetime.UTC).date().isoformat()
    if days < EXPIRY_WARNING_DAYS:
        note(
            "certificate",
            "warning",
            f"{version}, verified, but the certificate expires in {max(days, 0):.0f} day(s) "
            f"({day}): renew it",
        )
    else:
        note("certificate", "ok", f"{version}, verified: {subject} by {issuer}, valid until {day}")


def _name(rdns: object) -> str:
    """The CN (or the whole name) of a certificate subject/issuer, escaped."""
    parts: list[str] = []
    if isinstance(rdns, tuple):
        for rdn in rdns:
            for key, value in rdn:
                if key == "commonName":
                    return clean(str(value), 80)
                parts.append(f"{key}={value}")
    return clean(", ".join(parts), 80) or "?"


def _fit(kind: str, method: str, caps: Capabilities) -> tuple[Status, str]:
    offered = " ".join(sorted(caps.mechanisms)) or "none"
    wanted = FITTING[method]
    fitting = [m for m in wanted if m in caps.mechanisms]
    if kind == "imap" and caps.login_disabled and method == "basic":
        return "fail", (
            "the server announces LOGINDISABLED: it refuses a password on this connection "
            "(it wants TLS: security: starttls or ssl_tls)"
        )
    if fitting:
        return "ok", f"offers {offered}: {', '.join(fitting)} fits auth {method}"
    if kind == "imap" and method == "basic":
        return "ok", f"offers {offered}; the IMAP LOGIN command fits auth basic"
    if not caps.mechanisms and kind == "smtp":
        return "fail", (
            "the server offers no AUTH on this connection: it would not accept a login "
            f"(auth {method} needs {' or '.join(wanted)})"
        )
    return (
        "fail",
        f"offers {offered}, none of which fits auth {method} (needs {' or '.join(wanted)})",
    )


def _mail_server(
    kind: str,
    server: ImapServer | SmtpServer,
    provider: Provider,
    logins: tuple[Login, ...],
    options: Options,
) -> list[Check]:
    record = _Recorder(kind, f"{server.host}:{server.port}")
    method = provider.auth.method
    try:
        session, caps = _open(kind, server, options, record)
    except ProbeError as exc:
        record(exc.step, "fail", exc.message)
        return record.checks
    try:
        status, message = _fit(kind, method, caps)
        record("auth", status, message)
        session.logout()
    finally:
        session.close()
    if method != "basic":
        return record.checks
    for login in logins:
        if login.kept:
            message = "the password is kept as it is live ({keep: live}); not checked"
            record("login", "skipped", message, login.address)
            continue
        if login.password is None:
            record("login", "fail", f"cannot read the password: {login.problem}", login.address)
            continue
        record("login", *_login(kind, server, login, options), login.address)
    return record.checks


def _login(
    kind: str, server: ImapServer | SmtpServer, login: Login, options: Options
) -> tuple[Status, str]:
    assert login.password is not None
    try:
        session, caps = _open(kind, server, options, None)
    except ProbeError as exc:
        return "fail", f"{exc.step}: {exc.message}"
    try:
        accepted, answer = session.login(login.user, login.password, caps)
        if accepted:
            session.logout()
    except ProbeError as exc:
        return "fail", f"login as {clean(login.user)}: {redact(exc.message, login)}"
    finally:
        session.close()
    text = clean(redact(answer, login))
    if accepted:
        return "ok", f"logged in as {clean(login.user)} and out"
    return "fail", f"login as {clean(login.user)} refused; the server answered: {text}"


def redact(text: str, login: Login) -> str:
    """The server's text without the password in any form we sent it: a hostile or
    careless server may echo what it received."""
    assert login.password is not None
    forms = {login.password, base64.b64encode(login.password.encode()).decode()}
    for user in (login.user, ""):
        forms.add(base64.b64encode(f"\0{user}\0{login.password}".encode()).decode())
    for form in sorted(forms, key=len, reverse=True):
        if form:
            text = text.replace(form, "(redacted)")
    return text


def _https(server: str, host: str, path: str, options: Options) -> list[Check]:
    record = _Recorder(server, f"{host}:{HTTPS_PORT}")
    timeout = options.timeout
    if not host.isascii() or not host.isprintable() or " " in host:
        # It goes into the request's Host header: no line breaks or spaces, ever.
        record("dns", "fail", f"not a host name: {clean(host)}")
        return record.checks
    try:
        addresses = resolve(host, HTTPS_PORT, timeout)
        record("dns", "ok", "resolved to " + ", ".join(a.ip for a in addresses[:4]))
        sock = connect(addresses, timeout)
        record("tcp", "ok", f"connected to {sock.getpeername()[0]}")
        wire = Wire(sock, timeout)
        try:
            tls = handshake(sock, options.context, host, timeout)
            wire.sock = tls
            _certificate(tls, record)
            wire.begin("http")
            wire.send(
                f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: mailgitops-check\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            status_line = wire.readline()[:MAX_LINE]
        finally:
            wire.close()
    except ProbeError as exc:
        record(exc.step, "fail", exc.message)
        return record.checks
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        record("http", "fail", f"not an HTTP answer: {clean(status_line)}")
    elif parts[1] in (b"200", b"401", b"403", b"302"):
        record(
            "http", "ok", f"https://{host}{path} answers {clean(status_line[len(parts[0]) + 1 :])}"
        )
    else:
        record(
            "http",
            "warning",
            f"https://{host}{path} answers {clean(status_line[len(parts[0]) + 1 :])}",
        )
    return record.checks
