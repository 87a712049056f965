"""Real mail servers for the `check` tests, on 127.0.0.1 at free ports, with certificates
made here: Dovecot for IMAP (one instance with an implicit-TLS and a STARTTLS listener, one
plain instance) and aiosmtpd for SMTP (a subprocess with one listener per case). A server that
cannot start makes the tests FAIL with the reason: a machine without Dovecot must not pass by
skipping what `check` is about."""

from __future__ import annotations

import contextlib
import datetime
import grp
import ipaddress
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

USER = "alice@example.com"
PASSWORD = "correct horse battery staple"
HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --- certificates ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Pem:
    cert: str
    key: str


@dataclass(frozen=True)
class Certs:
    ca: str  # the test CA's certificate: what `--ca-file` trusts
    good: Pem  # 127.0.0.1 and localhost, valid for a year
    wrong_host: Pem  # only for mail.other.invalid
    expired: Pem
    expiring: Pem  # valid for 10 more days: a warning
    self_signed: Pem


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write(
    directory: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> Pem:
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Pem(str(cert_path), str(key_path))


def make_certs(directory: Path) -> Certs:
    now = datetime.datetime.now(datetime.UTC)
    day = datetime.timedelta(days=1)
    ca_key = _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailgitops test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - day)
        .not_valid_after(now + 365 * day)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = directory / "ca.crt"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    def leaf(
        name: str,
        cn: str,
        sans: list[x509.GeneralName],
        start: datetime.datetime,
        end: datetime.datetime,
        self_signed: bool = False,
    ) -> Pem:
        key = _key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject if self_signed else ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), False)
        )
        if not self_signed:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
        cert = builder.sign(key if self_signed else ca_key, hashes.SHA256())
        return _write(directory, name, cert, key)

    local = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    return Certs(
        ca=str(ca_path),
        good=leaf("good", "localhost", local, now - day, now + 300 * day),
        wrong_host=leaf(
            "wrong-host",
            "mail.other.invalid",
            [x509.DNSName("mail.other.invalid")],
            now - day,
            now + 300 * day,
        ),
        expired=leaf("expired", "localhost", local, now - 60 * day, now - 2 * day),
        expiring=leaf("expiring", "localhost", local, now - day, now + 10 * day),
        self_signed=leaf("self-signed", "localhost", local, now - day, now + 300 * day, True),
    )


# --- processes ------------------------------------------------------------------------------


@dataclass
class Servers:
    """Everything started for a test module: ports by name, and how to stop it all."""

    certs: Certs
    ports: dict[str, int] = field(default_factory=dict)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    dirs: list[Path] = field(default_factory=list)

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        for directory in self.dirs:
            shutil.rmtree(directory, ignore_errors=True)


def _wait_for_ports(
    ports: list[int], proc: subprocess.Popen[bytes], what: str, log: Path | None
) -> None:
    deadline = time.monotonic() + 20
    pending = list(ports)
    while pending:
        if proc.poll() is not None and proc.returncode != 0:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {_tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", pending[0]), timeout=1):
                pending.pop(0)
                continue
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not listen on port {pending[0]}: {_tail(log)}")
        time.sleep(0.05)


def _tail(log: Path | None) -> str:
    if log is None or not log.exists():
        return "(no log)"
    return log.read_text(errors="replace")[-2000:]


def _dovecot_users() -> tuple[str, str, str, int, int]:
    """(login user, internal user, internal group, uid, gid) for the Dovecot processes: as
    root the Debian package's unprivileged users; otherwise everything runs as the current
    user."""
    if os.geteuid() == 0:
        mail = pwd.getpwnam("dovecot")
        return "dovenull", "dovecot", grp.getgrgid(mail.pw_gid).gr_name, mail.pw_uid, mail.pw_gid
    me = pwd.getpwuid(os.getuid())
    return me.pw_name, me.pw_name, grp.getgrgid(me.pw_gid).gr_name, me.pw_uid, me.pw_gid


def start_dovecot(servers: Servers, name: str, tls: bool) -> None:
    """One Dovecot instance. With `tls`: listeners `{name}-tls` (implicit TLS) and
    `{name}-starttls` (STARTTLS; refuses a password before TLS: LOGINDISABLED). Without:
    one plain listener `{name}-plain` that accepts a password in clear text."""
    dovecot = shutil.which("dovecot") or "/usr/sbin/dovecot"
    if not os.path.exists(dovecot):
        raise RuntimeError(
            "dovecot is not installed: apt-get install dovecot-imapd (the check tests need it)"
        )
    directory = Path(tempfile.mkdtemp(prefix=f"mailgitops-{name}-"))
    servers.dirs.append(directory)
    directory.chmod(0o755)  # the unprivileged imap processes read their home below it
    login_user, internal_user, internal_group, uid, gid = _dovecot_users()
    home = directory / "home"
    home.mkdir()
    os.chown(home, uid, gid)
    (directory / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
    certs = servers.certs
    if tls:
        ports = {f"{name}-tls": free_port(), f"{name}-starttls": free_port()}
        listeners = (
            f"  inet_listener imap {{\n    port = {ports[f'{name}-starttls']}\n  }}\n"
            f"  inet_listener imaps {{\n    port = {ports[f'{name}-tls']}\n    ssl = yes\n  }}\n"
        )
        ssl_conf = (
            f"ssl = yes\nssl_cert = <{certs.good.cert}\nssl_key = <{certs.good.key}\n"
            "disable_plaintext_auth = yes\n"
        )
    else:
        ports = {f"{name}-plain": free_port()}
        listeners = f"  inet_listener imap {{\n    port = {ports[f'{name}-plain']}\n  }}\n"
        ssl_conf = "ssl = no\ndisable_plaintext_auth = no\n"
    log = directory / "dovecot.log"
    conf = directory / "dovecot.conf"
    conf.write_text(
        f"""base_dir = {directory}/run
state_dir = {directory}/state
instance_name = mailgitops-{name}-{os.getpid()}
log_path = {log}
protocols = imap
listen = 127.0.0.1
{ssl_conf}auth_mechanisms = plain login
# A wrong password is answered at once (the default waits 2 s), and later logins from the same
# address are not slowed down by a penalty (the anvil listener below is closed for that).
auth_failure_delay = 0
default_login_user = {login_user}
default_internal_user = {internal_user}
default_internal_group = {internal_group}
first_valid_uid = {uid}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {directory}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={home}/%n
}}
mail_location = maildir:~/Maildir
service imap-login {{
{listeners}}}
service anvil {{
  chroot =
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
  chroot =
}}
"""
    )
    with open(directory / "stderr.log", "wb") as stderr:  # the child keeps its own copy
        proc = subprocess.Popen(
            [dovecot, "-F", "-c", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    servers.procs.append(proc)
    try:
        _wait_for_ports(list(ports.values()), proc, f"dovecot ({name})", log)
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}\n{_tail(directory / 'stderr.log')}") from None
    servers.ports.update(ports)


def start_smtpd(servers: Servers, listeners: dict[str, tuple[str, Pem | None, list[str]]]) -> None:
    """aiosmtpd with one listener per entry: name -> (mode, certificate, mechanisms)."""
    spec = {"user": USER, "password": PASSWORD, "listeners": []}
    ports = {}
    for name, (mode, pem, mechanisms) in listeners.items():
        ports[name] = free_port()
        spec["listeners"].append(  # type: ignore[union-attr]
            {
                "port": ports[name],
                "mode": mode,
                "cert": pem.cert if pem else None,
                "key": pem.key if pem else None,
                "mechanisms": mechanisms,
            }
        )
    directory = Path(tempfile.mkdtemp(prefix="mailgitops-smtpd-"))
    servers.dirs.append(directory)
    log = directory / "stderr.log"
    with open(log, "wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "smtpd_server.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
    servers.procs.append(proc)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps(spec).encode())
    proc.stdin.close()
    line = proc.stdout.readline()
    if line.strip() != b"ready":
        proc.wait(5)
        raise RuntimeError(f"the SMTP test server did not start: {_tail(log)}")
    _wait_for_ports(list(ports.values()), proc, "aiosmtpd", log)
    servers.ports.update(ports)


def smtpd_log(servers: Servers) -> str:
    return "".join(
        (d / "stderr.log").read_text(errors="replace")
        for d in servers.dirs
        if d.name.startswith("mailgitops-smtpd-") and (d / "stderr.log").exists()
    )


# --- hostile servers ------------------------------------------------------------------------


class Hostile:
    """A TCP server on 127.0.0.1 that misbehaves as `behaviour(conn)` says, one thread per
    connection. With `behaviour=None` it never accepts: the kernel completes the handshake,
    and the server never says a word."""

    def __init__(self, behaviour: Callable[[socket.socket], None] | None) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port: int = self.sock.getsockname()[1]
        self.behaviour = behaviour
        self.received: list[bytes] = []
        if behaviour is not None:
            threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        assert self.behaviour is not None
        with contextlib.suppress(OSError), conn:
            self.behaviour(conn)

    def close(self) -> None:
        self.sock.close()


def endless_line(conn: socket.socket) -> None:
    """A greeting that never ends: no line break, ever."""
    conn.sendall(b"* OK ")
    while True:
        conn.sendall(b"A" * 65536)


def endless_lines(conn: socket.socket) -> None:
    """An SMTP greeting of infinitely many continuation lines."""
    while True:
        conn.sendall(b"220-hello\r\n" * 1000)


def echoing_smtp(received: list[bytes]) -> Callable[[socket.socket], None]:
    """An SMTP server whose texts carry terminal escape sequences, and which answers a login
    by echoing what it received (as a careless or hostile server might)."""

    def serve(conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        conn.sendall(b"220 \x1b[31mEVIL\x1b]0;owned\x07 ready\r\n")
        for raw in reader:
            line = raw.rstrip(b"\r\n")
            received.append(line)
            upper = line.upper()
            if upper.startswith(b"EHLO"):
                conn.sendall(b"250-evil\r\n250 AUTH PLAIN LOGIN\r\n")
            elif upper.startswith(b"AUTH"):
                conn.sendall(b"535 you sent " + line + b" \x1b[2J\r\n")
            elif upper.startswith(b"QUIT"):
                conn.sendall(b"221 bye\r\n")
                return
            else:
                conn.sendall(b"500 what\r\n")

    return serve


def imap_login_disabled(conn: socket.socket) -> None:
    """An IMAP server that offers STARTTLS and refuses passwords before it (LOGINDISABLED).
    Dovecot announces that too, but never to a client on its own host (loopback counts as
    secure there), which is where the tests run."""
    reader = conn.makefile("rb")
    conn.sendall(b"* OK IMAP4rev1 ready\r\n")
    for raw in reader:
        tag, _, command = raw.rstrip(b"\r\n").partition(b" ")
        if command.upper() == b"CAPABILITY":
            conn.sendall(b"* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\n" + tag + b" OK\r\n")
        else:
            conn.sendall(b"* BYE\r\n" + tag + b" OK\r\n")
            return


def smtp_starttls_injection(conn: socket.socket) -> None:
    """An SMTP server (or a man in the middle) that sends a command's answer in the same
    packet as its STARTTLS go-ahead, to be read later as if it had come over TLS."""
    reader = conn.makefile("rb")
    conn.sendall(b"220 ready\r\n")
    for raw in reader:
        command = raw.strip().upper()
        if command.startswith(b"EHLO"):
            conn.sendall(b"250-injector\r\n250-STARTTLS\r\n250 AUTH PLAIN LOGIN\r\n")
        elif command == b"STARTTLS":
            conn.sendall(b"220 go ahead\r\n250-injected\r\n250 AUTH PLAIN\r\n")
        else:
            return
