"""Writing an imported provider as the YAML file a person would write: the key order of
SPEC §2.1, block style, and comments where the import made a choice."""

from __future__ import annotations

import re
import textwrap
from typing import Any, Final

import yaml

from mailgitops import schema
from mailgitops.ispdb.parse import IspdbProvider
from mailgitops.model import DEFAULT_LOGIN_FORMAT

SCHEMA_COMMENT: Final = schema.header("provider")


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
    if p.login_format != DEFAULT_LOGIN_FORMAT or p.smtp_username is not None:
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
