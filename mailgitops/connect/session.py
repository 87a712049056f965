"""What the probes need from a mail protocol (imap.py, smtp.py): the greeting, the
capabilities, STARTTLS, a login and a goodbye."""

from __future__ import annotations

import base64
import ssl
from typing import NamedTuple, Protocol


class Capabilities(NamedTuple):
    mechanisms: frozenset[str]  # SASL mechanisms, upper-case
    starttls: bool
    login_disabled: bool = False  # IMAP LOGINDISABLED
    size: int | None = None  # SMTP SIZE
    text: str = ""  # for the user: the capabilities as announced (escaped, cut)


class Session(Protocol):
    def greet(self) -> str: ...

    def capabilities(self) -> Capabilities: ...

    def starttls(self, context: ssl.SSLContext, host: str) -> ssl.SSLSocket: ...

    def login(self, user: str, password: str, caps: Capabilities) -> tuple[bool, str]:
        """(accepted, the server's answer as raw text)."""
        ...

    def logout(self) -> None: ...

    def close(self) -> None: ...


def sasl_plain(user: str, password: str) -> bytes:
    return base64.b64encode(f"\0{user}\0{password}".encode())


def b64(text: str) -> bytes:
    return base64.b64encode(text.encode())
