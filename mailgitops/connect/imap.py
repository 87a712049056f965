"""IMAP (RFC 9051/3501) as far as a check needs it: greeting, CAPABILITY, STARTTLS,
AUTHENTICATE PLAIN or LOGIN, LOGOUT."""

from __future__ import annotations

import contextlib
import re
import ssl

from mailgitops.connect.results import clean
from mailgitops.connect.session import Capabilities, sasl_plain
from mailgitops.connect.wire import MAX_REPLY_LINES, ProbeError, Wire

_CAPS_IN_CODE = re.compile(rb"\[CAPABILITY ([^\]]*)\]", re.IGNORECASE)


class Imap:
    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self.counter = 0

    def greet(self) -> str:
        self.wire.begin("greeting")
        line = self.wire.readline()
        upper = line.upper()
        if upper.startswith(b"* OK") or upper.startswith(b"* PREAUTH"):
            return clean(line[2:])
        if upper.startswith(b"* BYE"):
            raise ProbeError("greeting", f"the server refuses the connection: {clean(line[2:])}")
        raise ProbeError("greeting", f"not an IMAP greeting: {clean(line)}")

    def command(self, text: str, secret: bytes | None = None) -> tuple[str, list[bytes], str]:
        """Send a command; (OK|NO|BAD, untagged lines, text of the tagged answer). `secret` is
        sent after a `+` continuation."""
        self.counter += 1
        tag = f"m{self.counter}".encode()
        self.wire.send(tag + b" " + text.encode() + b"\r\n")
        untagged: list[bytes] = []
        for _ in range(MAX_REPLY_LINES):
            line = self.wire.readline()
            if line.startswith(b"+") and secret is not None:
                self.wire.send(secret + b"\r\n")
                secret = None
                continue
            if line.startswith(b"+"):
                self.wire.send(b"*\r\n")  # cancel an exchange we did not expect
                continue
            if line.startswith(tag + b" "):
                status, _, rest = line[len(tag) + 1 :].partition(b" ")
                return (
                    status.decode("ascii", "replace").upper(),
                    untagged,
                    rest.decode("utf-8", "replace"),
                )
            untagged.append(line)
        raise ProbeError(self.wire.step, f"the server sent more than {MAX_REPLY_LINES} lines")

    def capabilities(self) -> Capabilities:
        self.wire.begin("capabilities")
        status, lines, text = self.command("CAPABILITY")
        if status != "OK":
            raise ProbeError("capabilities", f"CAPABILITY failed: {status} {clean(text)}")
        words: list[str] = []
        for line in lines:
            if line.upper().startswith(b"* CAPABILITY "):
                words += line[len(b"* CAPABILITY ") :].decode("ascii", "replace").split()
        caps = {w.upper() for w in words}
        return Capabilities(
            mechanisms=frozenset(c[5:] for c in caps if c.startswith("AUTH=")),
            starttls="STARTTLS" in caps,
            login_disabled="LOGINDISABLED" in caps,
            text=clean(" ".join(words)),
        )

    def starttls(self, context: ssl.SSLContext, host: str) -> ssl.SSLSocket:
        self.wire.begin("starttls")
        status, _lines, text = self.command("STARTTLS")
        if status != "OK":
            raise ProbeError("starttls", f"STARTTLS refused: {status} {clean(text)}")
        return self.wire.start_tls(context, host)

    def login(self, user: str, password: str, caps: Capabilities) -> tuple[bool, str]:
        self.wire.begin("login")
        if "PLAIN" in caps.mechanisms:
            status, _lines, text = self.command(
                "AUTHENTICATE PLAIN", secret=sasl_plain(user, password)
            )
        else:
            quoted = [_quote(user), _quote(password)]
            if None in quoted:
                return False, "the login or password has characters that IMAP LOGIN cannot send"
            status, _lines, text = self.command(f"LOGIN {quoted[0]} {quoted[1]}")
        return status == "OK", f"{status} {text}"

    def logout(self) -> None:
        self.wire.begin("logout")
        with contextlib.suppress(ProbeError):  # the server may close at once after BYE
            self.command("LOGOUT")

    def close(self) -> None:
        self.wire.close()


def _quote(text: str) -> str | None:
    """An IMAP quoted string, or None for text it cannot carry (line breaks, NUL, 8-bit)."""
    if any(ch in "\r\n\0" or ord(ch) > 0x7E for ch in text):
        return None
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
