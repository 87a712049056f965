"""What a PostgreSQL DSN holds, read the way libpq reads it.

A DSN is parsed by libpq itself (PQconninfoParse, through psycopg's conninfo_to_dict), never by
urllib: the two disagree (`postgresql://u:PW#X@h/db` is a fragment to urllib, a password to
libpq), and a redaction that parses differently from the driver prints the password it missed.
psycopg is an optional dependency: without it nothing of a DSN is shown, and any DSN that might
hold a password counts as one that does."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote_plus, urlsplit, urlunsplit

from mailgitops.errors import StateError

URL_SCHEMES = ("postgres://", "postgresql://")
# libpq parameters whose value is a secret.
SECRET_PARAMS = frozenset({"password", "sslpassword"})
_NOT_SHOWN = "(a PostgreSQL connection string; not shown: {why})"


class Unparsable(Exception):
    """libpq refuses the DSN, or psycopg is not installed to ask it."""


def is_url(location: str) -> bool:
    return location.startswith(URL_SCHEMES)


def _query_items(query: str) -> list[tuple[str, str]]:
    """(decoded key, raw item) pairs: items are kept as written, so that removing one leaves
    the others' encoding alone."""
    return [(unquote_plus(item.split("=", 1)[0]), item) for item in query.split("&") if item]


def split_workspace(dsn: str) -> tuple[str, str | None]:
    """`postgresql://…?workspace=NAME` -> the DSN without that parameter (libpq refuses unknown
    ones) and NAME. Only URLs carry a workspace; a key=value DSN is returned unchanged."""
    if not is_url(dsn):
        return dsn, None
    parts = urlsplit(dsn)
    items = _query_items(parts.query)
    names = [unquote_plus(item.partition("=")[2]) for key, item in items if key == "workspace"]
    if not names:
        return dsn, None
    if len(names) > 1:
        raise StateError("the PostgreSQL URL names `workspace` more than once")
    rest = "&".join(item for key, item in items if key != "workspace")
    return urlunsplit(parts._replace(query=rest)), names[0]


def params(dsn: str) -> dict[str, Any]:
    """The DSN's parameters as libpq reads them; `?workspace=` (ours, not libpq's) removed."""
    try:
        from psycopg import Error, conninfo
    except ImportError:
        raise Unparsable("psycopg is not installed to parse it") from None
    try:
        parsed = conninfo.conninfo_to_dict(split_workspace(dsn)[0])
    except Error:
        raise Unparsable("it cannot be parsed") from None
    except Exception:  # split_workspace's own refusals and urllib's ValueError
        raise Unparsable("it cannot be parsed") from None
    return {k: v for k, v in parsed.items() if v is not None}


def _naive_password(dsn: str, query_aware: bool = True) -> bool:
    """A URL whose text before its last `@` holds a colon: a reader sees a password there,
    whatever libpq makes of it (`postgresql://u:P/W@h/db` is host `u`, port `P` to libpq).
    `query_aware`: a `?` before the `@` starts the query (`?options=a@b`), so no user part
    is there; only libpq's own reading can confirm that."""
    if not is_url(dsn):
        return False
    before, at, _ = dsn.split("://", 1)[1].rpartition("@")
    return bool(at) and ":" in before and not (query_aware and "?" in before)


def has_password(dsn: str) -> bool:
    """Whether the DSN carries a secret parameter (a password in the URL's user part, as
    `?password=`, or as `password=` among key=value pairs), or looks as if it did. When
    libpq cannot tell, any mention of a password counts."""
    try:
        found = params(dsn)
    except Unparsable:
        return (
            _naive_password(dsn, query_aware=False)
            or re.search("password", dsn, re.IGNORECASE) is not None
        )
    return bool(SECRET_PARAMS.intersection(found)) or _naive_password(dsn)


def _shown_params(dsn: str) -> dict[str, Any] | str:
    """The parameters that may be shown, or why none may."""
    try:
        found = params(dsn)
    except Unparsable as exc:
        return str(exc)
    if _naive_password(dsn) and not SECRET_PARAMS.intersection(found):
        return "libpq does not read its user part as a password"
    return {k: v for k, v in found.items() if k not in SECRET_PARAMS}


def showable(dsn: str) -> bool:
    """Whether redact() shows anything of the DSN; when not, every parameter's value is to
    be scrubbed from driver messages (libpq quotes a bad port, say, which may be the
    password a reader wrote there)."""
    return isinstance(_shown_params(dsn), dict)


def redact(dsn: str) -> str:
    """The DSN without its secret parameters, as libpq key=value pairs, for messages. A DSN
    that libpq cannot parse (or that cannot be parsed here), or one that libpq reads
    differently from how it looks, is not shown at all."""
    kept = _shown_params(dsn)
    if isinstance(kept, str):
        return _NOT_SHOWN.format(why=kept)
    from psycopg import conninfo

    return conninfo.make_conninfo("", **kept) or "(the libpq defaults)"
