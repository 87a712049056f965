"""SMTP (RFC 5321, ESMTP) as far as a check needs it: greeting, EHLO, STARTTLS (RFC 3207),
AUTH PLAIN or LOGIN (RFC 4954), QUIT. Never MAIL FROM: a check sends no message."""

from __future__ import annotations

import contextlib
import re
import ssl

from mailgitops.connect.results import clean
from mailgitops.connect.session import Capabilities, b64, sasl_plain
from mailgitops.connect.wire import MAX_REPLY_LINES, ProbeError, Wire

_REPLY = re.compile(rb"^(\d{3})([ -]|$)(.*)$", re.DOTALL)


class Smtp:
    def __init__(self, wire: Wire) -> None:
        self.wire = wire

    def reply(self) -> tuple[int, list[str]]:
        lines: list[str] = []
        for _ in range(MAX_REPLY_LINES):
            raw = self.wire.readline()
            m = _REPLY.match(raw)
            if m is None:
                raise ProbeError(self.wire.step, f"not an SMTP reply: {clean(raw)}")
            lines.append(m[3].decode("utf-8", "replace"))
            if m[2] != b"-":
                return int(m[1]), lines
        raise ProbeError(self.wire.step, f"the server sent more than {MAX_REPLY_LINES} lines")

    def command(self, text: bytes) -> tuple[int, list[str]]:
        self.wire.send(text + b"\r\n")
        return self.reply()

    def greet(self) -> str:
        self.wire.begin("greeting")
        code, lines = self.reply()
        if code != 220:
            raise ProbeError(
                "greeting", f"the server refuses the connection: {code} {clean(' '.join(lines))}"
            )
        return clean(" ".join(lines))

    def capabilities(self) -> Capabilities:
        self.wire.begin("capabilities")
        local = self.wire.sock.getsockname()[0]
        name = f"[IPv6:{local}]" if ":" in local else f"[{local}]"
        code, lines = self.command(f"EHLO {name}".encode())
        if code != 250:
            raise ProbeError("capabilities", f"EHLO refused: {code} {clean(' '.join(lines))}")
        mechanisms: set[str] = set()
        size = None
        starttls = False
        shown: list[str] = []
        for line in lines[1:]:
            words = line.split()
            if not words:
                continue
            keyword = words[0].upper()
            shown.append(line.strip())
            if keyword == "STARTTLS":
                starttls = True
            elif keyword == "SIZE" and len(words) > 1 and words[1].isdigit():
                size = int(words[1])
            elif keyword == "AUTH" or keyword.startswith("AUTH="):
                rest = words[1:] if keyword == "AUTH" else [keyword[5:], *words[1:]]
                mechanisms.update(w.upper() for w in rest)
        return Capabilities(
            frozenset(mechanisms), starttls, size=size, text=clean(", ".join(shown))
        )

    def starttls(self, context: ssl.SSLContext, host: str) -> ssl.SSLSocket:
        self.wire.begin("starttls")
        code, lines = self.command(b"STARTTLS")
        if code != 220:
            raise ProbeError("starttls", f"STARTTLS refused: {code} {clean(' '.join(lines))}")
        return self.wire.start_tls(context, host)

    def login(self, user: str, password: str, caps: Capabilities) -> tuple[bool, str]:
        self.wire.begin("login")
        if "PLAIN" in caps.mechanisms:
            code, lines = self.command(b"AUTH PLAIN " + sasl_plain(user, password))
        else:
            code, lines = self.command(b"AUTH LOGIN")
            if code == 334:
                code, lines = self.command(b64(user))
            if code == 334:
                code, lines = self.command(b64(password))
        return code == 235, f"{code} {' '.join(lines)}"

    def logout(self) -> None:
        self.wire.begin("logout")
        with contextlib.suppress(ProbeError):  # a goodbye that fails changes nothing
            self.command(b"QUIT")

    def close(self) -> None:
        self.wire.close()
