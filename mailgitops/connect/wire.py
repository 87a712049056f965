"""A connection to an untrusted server, bounded in time and size.

Every blocking step (resolving, connecting, the TLS handshake, one reply) gets its own
deadline of `timeout` seconds, however the server trickles its bytes; a line is cut off at
MAX_LINE bytes and a reply at MAX_REPLY_LINES lines, so a server that sends endless lines can
neither hang a check nor fill memory."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from typing import Any, NamedTuple

MAX_LINE = 8192  # bytes; RFC 5321 allows 512 per reply line, IMAP capability lines are short
MAX_REPLY_LINES = 200


class ProbeError(Exception):
    """A step failed: `step` names it (dns, tcp, tls, greeting, ...); the message says why in
    words for the user (server text already escaped)."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(message)
        self.step = step
        self.message = message


class Address(NamedTuple):
    family: int
    sockaddr: tuple[Any, ...]  # (host, port) or, for IPv6, (host, port, flowinfo, scope_id)

    @property
    def ip(self) -> str:
        return str(self.sockaddr[0])


def resolve(host: str, port: int, timeout: float) -> list[Address]:
    """The addresses of `host`. getaddrinfo() has no timeout of its own: it runs in a helper
    thread that is abandoned (a daemon) when the deadline passes."""
    found: list[Address] = []
    failure: list[str] = []
    done = threading.Event()

    def lookup() -> None:
        try:
            # An IPv6 literal may be written in brackets ([2001:db8::1]), as in a URL.
            for family, _t, _p, _c, sockaddr in socket.getaddrinfo(
                host.removeprefix("[").removesuffix("]"), port, type=socket.SOCK_STREAM
            ):
                if family in (socket.AF_INET, socket.AF_INET6):
                    found.append(Address(family, tuple(sockaddr)))
        except (OSError, UnicodeError) as exc:
            failure.append(str(getattr(exc, "strerror", None) or exc))
        finally:
            done.set()

    threading.Thread(target=lookup, daemon=True, name=f"dns {host}").start()
    if not done.wait(timeout):
        raise ProbeError("dns", f"no answer for {host} within {timeout:g} s")
    if failure:
        raise ProbeError("dns", f"cannot resolve {host}: {failure[0]}")
    if not found:
        raise ProbeError("dns", f"{host} has no IPv4 or IPv6 address")
    unique: dict[Address, None] = dict.fromkeys(found)
    return list(unique)


def connect(addresses: list[Address], timeout: float) -> socket.socket:
    """A TCP connection to the first address that answers, each tried for `timeout`."""
    errors: list[str] = []
    for address in addresses:
        sock = socket.socket(address.family, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(address.sockaddr)
        except TimeoutError:
            sock.close()
            errors.append(f"{address.ip}: no answer within {timeout:g} s")
        except OSError as exc:
            sock.close()
            errors.append(f"{address.ip}: {(exc.strerror or str(exc)).lower()}")
        else:
            return sock
    raise ProbeError("tcp", "cannot connect: " + "; ".join(errors))


class Wire:
    """Lines to and from one server, each reply within its own deadline."""

    def __init__(self, sock: socket.socket, timeout: float, step: str = "greeting") -> None:
        self.sock = sock
        self.timeout = timeout
        self.buffer = b""
        self.deadline = time.monotonic() + timeout
        self.step = step

    def begin(self, step: str) -> None:
        """Start a new step: its own deadline, and errors named after it."""
        self.step = step
        self.deadline = time.monotonic() + self.timeout

    def send(self, data: bytes) -> None:
        self._settimeout()
        try:
            self.sock.sendall(data)
        except TimeoutError:
            raise ProbeError(self.step, "the server stopped reading") from None
        except OSError as exc:
            raise ProbeError(self.step, f"cannot send: {exc.strerror or exc}") from None

    def readline(self) -> bytes:
        """One line without its line break."""
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                line, self.buffer = self.buffer[:end], self.buffer[end + 1 :]
                return line.removesuffix(b"\r")
            if len(self.buffer) > MAX_LINE:
                raise ProbeError(self.step, f"the server sent a line longer than {MAX_LINE} bytes")
            self._settimeout()
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                raise ProbeError(
                    self.step, f"no answer from the server within {self.timeout:g} s"
                ) from None
            except ssl.SSLError as exc:
                raise ProbeError(self.step, f"TLS error: {exc.reason or exc}") from None
            except OSError as exc:
                raise ProbeError(self.step, f"connection lost: {exc.strerror or exc}") from None
            if not data:
                raise ProbeError(self.step, "the server closed the connection")
            self.buffer += data

    def _settimeout(self) -> None:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise ProbeError(self.step, f"no answer from the server within {self.timeout:g} s")
        self.sock.settimeout(remaining)

    def start_tls(self, context: ssl.SSLContext, host: str) -> ssl.SSLSocket:
        """Upgrade to TLS. Bytes the server sent before the handshake would be read as if
        they came over TLS (the STARTTLS command injection of CVE-2011-0411): refused."""
        if self.buffer:
            raise ProbeError(
                "starttls", "the server sent data after its STARTTLS answer, before TLS began"
            )
        tls = handshake(self.sock, context, host, self.timeout)
        self.sock = tls
        return tls

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def _handshake(
    sock: socket.socket, context: ssl.SSLContext, host: str, timeout: float
) -> ssl.SSLSocket:
    sock.settimeout(timeout)
    tls: ssl.SSLSocket | None = None
    try:
        tls = context.wrap_socket(
            sock, server_hostname=host.strip("[]"), do_handshake_on_connect=False
        )
        tls.do_handshake()
    except BaseException:
        # wrap_socket() took the connection over: close it here, whatever went wrong.
        (tls or sock).close()
        raise
    return tls


def handshake(
    sock: socket.socket, context: ssl.SSLContext, host: str, timeout: float
) -> ssl.SSLSocket:
    """The TLS handshake with the certificate verified (chain, host name, validity)."""
    try:
        return _handshake(sock, context, host, timeout)
    except ssl.SSLCertVerificationError as exc:
        raise ProbeError("certificate", _verify_message(exc, host)) from None
    except TimeoutError:
        raise ProbeError("tls", f"no TLS handshake within {timeout:g} s") from None
    except ssl.SSLError as exc:
        raise ProbeError("tls", f"TLS handshake failed: {exc.reason or exc}") from None
    except OSError as exc:
        raise ProbeError("tls", f"TLS handshake failed: {exc.strerror or exc}") from None


# OpenSSL's X509_V_ERR_* codes (x509_vfy.h) that users meet, in their words.
_VERIFY = {
    9: "the certificate is not valid yet",
    10: "the certificate has expired",
    18: "the certificate is self-signed (not issued by a trusted authority)",
    19: "the certificate chain ends in a self-signed certificate that is not trusted",
    20: "the certificate is not issued by a trusted authority (unknown issuer, or the "
    "server does not send its intermediate certificates)",
    21: "the certificate is not issued by a trusted authority (unknown issuer, or the "
    "server does not send its intermediate certificates)",
}


def _verify_message(exc: ssl.SSLCertVerificationError, host: str) -> str:
    code = getattr(exc, "verify_code", None)
    if code == 62:  # X509_V_ERR_HOSTNAME_MISMATCH
        return f"the certificate is not valid for {host} (host name mismatch)"
    if code == 64:  # X509_V_ERR_IP_ADDRESS_MISMATCH
        return f"the certificate is not valid for the IP address {host}"
    known = _VERIFY.get(code) if isinstance(code, int) else None
    detail = getattr(exc, "verify_message", None) or exc.reason or str(exc)
    return known or f"certificate verification failed: {detail}"
