"""A real SMTP server for the check tests (aiosmtpd, run as a subprocess): several listeners
from a JSON description on stdin — implicit TLS, STARTTLS or plain, each with its own
certificate and AUTH mechanisms. Prints `ready` once every listener accepts connections."""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Smtp(SMTP):
    async def auth_XOAUTH2(self, _server: Any, _args: list[str]) -> AuthResult:
        await self.push("535 5.7.8 XOAUTH2 not accepted here")
        return AuthResult(success=False, handled=True)


class Handler:
    async def handle_DATA(self, _server: Any, _session: Any, _envelope: Any) -> str:
        # A check never sends a message; if one arrives, the test that reads stderr sees it.
        print("DATA RECEIVED", file=sys.stderr, flush=True)
        return "554 5.7.1 this test server accepts no mail"


def authenticator(user: str, password: str) -> Any:
    def check(_server: Any, _session: Any, _env: Any, _mech: str, data: Any) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == user
            and data.password.decode() == password
        )
        return AuthResult(success=ok, handled=False)  # False: aiosmtpd sends the 535

    return check


def context(cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


async def main() -> None:
    spec = json.load(sys.stdin)
    loop = asyncio.get_running_loop()
    handler = Handler()
    for item in spec["listeners"]:
        tls = context(item["cert"], item["key"]) if item.get("cert") else None
        every = {"PLAIN", "LOGIN", "XOAUTH2"}
        kwargs: dict[str, Any] = {
            "hostname": "smtp.test",
            "authenticator": authenticator(spec["user"], spec["password"]),
            "auth_exclude_mechanism": sorted(every - set(item["mechanisms"])),
            # aiosmtpd knows TLS only when it did the STARTTLS itself: on an implicit-TLS
            # listener it would hide AUTH. A plain listener accepts a password in clear text.
            "auth_require_tls": item["mode"] == "starttls",
        }
        if item["mode"] == "starttls":
            kwargs["tls_context"] = tls

        def factory(kwargs: dict[str, Any] = kwargs) -> Smtp:
            return Smtp(handler, **kwargs)

        await loop.create_server(
            factory,
            "127.0.0.1",
            item["port"],
            ssl=tls if item["mode"] == "ssl_tls" else None,
        )
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
