"""Checking a state document against schemas/state.schema.json, shared by every backend so that
they accept and refuse exactly the same states, with the same messages."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from mailgitops import identifiers, schema
from mailgitops.model import SECRET_KEYS, is_secret_path

if TYPE_CHECKING:  # jsonschema is imported only for a state that failed the compiled check
    from jsonschema import ValidationError

_MAX_SCHEMA_ERRORS = 10
_MAX_MESSAGE = 200
# Integers a state holds (serial, ports, versions) fit a PostgreSQL bigint; anything larger is
# not a state we wrote, and past 4,300 digits Python refuses even to print it.
MAX_INT = 2**63 - 1
_SECRET_MESSAGE = (
    "{path}: must be a secret reference {{env: NAME}} or {{file: PATH}} (optionally with "
    "version), never a value (the value is not shown)"
)
_REF_KEYS = frozenset({"env", "file", "version"})
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TYPE_NAMES = {
    "object": "an object",
    "array": "an array",
    "string": "a string",
    "boolean": "a boolean",
    "integer": "an integer",
    "number": "a number",
    "null": "null",
}
_TYPE_OF = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    type(None): "null",
}


def schema_problems(document: Any, check_values: bool = True) -> list[str]:
    """Every way `document` fails schemas/state.schema.json, one readable line each (at most
    ten, then a count); never the value of a secret. Empty when it is valid. A backend that
    already knows the values are sane (the file backend checks them while parsing, at no
    cost) passes check_values=False."""
    bad_values = value_problems(document) if check_values else []
    if bad_values:
        return _capped(bad_values)
    if schema.is_valid("state", document):  # the compiled check: most states are valid
        return _invisible(document)
    errors = sorted(
        schema.validator("state").iter_errors(document), key=lambda e: list(map(str, e.path))
    )
    return _capped(list(dict.fromkeys(_describe(error) for error in errors)))


def _capped(problems: list[str]) -> list[str]:
    if len(problems) > _MAX_SCHEMA_ERRORS:
        hidden = len(problems) - _MAX_SCHEMA_ERRORS
        problems = [*problems[:_MAX_SCHEMA_ERRORS], f"... and {hidden} more"]
    return problems


def is_ref(value: Any) -> bool:
    if not isinstance(value, dict) or not value or not _REF_KEYS.issuperset(value):
        return False
    named = [k for k in ("env", "file") if k in value]
    return len(named) == 1 and isinstance(value[named[0]], str)


def value_problems(document: Any) -> list[str]:
    """What JSON (or a jsonb column) can carry but no state of ours holds, found before the
    schema and before anything prints or compares the values: NaN and infinities, lone
    surrogates (text that cannot be written out again), integers past 64 bits, and a secret
    value under a secret key (model.SECRET_KEYS) anywhere in an entry, however deep. Each is a
    clear refusal of the state instead of a crash later; a secret is never quoted."""
    problems: list[str] = []
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), document)]
    while stack and len(problems) <= _MAX_SCHEMA_ERRORS:
        path, value = stack.pop()
        if isinstance(value, dict):
            for key, sub in value.items():
                if not _valid_text(key):
                    problems.append(f"{_json_path(path)}: a key is not valid Unicode text")
                    continue
                here = (*path, key)
                if key in SECRET_KEYS and len(path) >= 2 and sub is not None and not is_ref(sub):
                    problems.append(_SECRET_MESSAGE.format(path=_json_path(here)))
                    continue
                stack.append((here, sub))
        elif isinstance(value, list):
            stack.extend(((*path, i), sub) for i, sub in enumerate(value))
        elif isinstance(value, str):
            if not _valid_text(value):
                problems.append(f"{_json_path(path)}: not valid Unicode text (a lone surrogate)")
        elif isinstance(value, float):
            if not math.isfinite(value):
                problems.append(f"{_json_path(path)}: not a finite number (NaN or infinity)")
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
            problems.append(f"{_json_path(path)}: an integer larger than 64 bits")
    return problems


def _valid_text(text: Any) -> bool:
    if not isinstance(text, str):
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _invisible(document: dict[str, Any]) -> list[str]:
    """Identifiers of a schema-valid state with characters a reader cannot see (SPEC §9):
    keys, and the owner, provider, users, domains and hosts of each entry."""
    problems = []
    for kind in ("providers", "mailboxes"):
        for key, entry in document[kind].items():
            values: list[tuple[tuple[str | int, ...], Any]] = [((kind, key), key)]
            for attr in ("owner", "provider"):
                values.append(((kind, key, attr), entry.get(attr)))
            for server in ("imap", "smtp", "exchange"):
                sub = entry.get(server)
                if isinstance(sub, dict):
                    values.append(((kind, key, server, "host"), sub.get("host")))
            for index, domain in enumerate(entry.get("domains") or []):
                values.append(((kind, key, "domains", index), domain))
            for index, share in enumerate(entry.get("shared_with") or []):
                if isinstance(share, dict):
                    values.append(((kind, key, "shared_with", index, "user"), share.get("user")))
            for where, value in values:
                found = identifiers.invisible(value) if isinstance(value, str) else None
                if found is not None:
                    problems.append(
                        f"{_json_path(where)}: contains an invisible or control character ({found})"
                    )
    return problems[:_MAX_SCHEMA_ERRORS]


def _describe(error: ValidationError) -> str:
    path = list(error.absolute_path)
    if is_secret_path(path):
        # Never echo the instance here: it may be the secret itself.
        return _SECRET_MESSAGE.format(path=_json_path(path))
    if error.context:
        from jsonschema.exceptions import best_match

        return _describe(best_match(error.context))
    if error.validator == "type":
        # jsonschema's message repeats the whole instance, which may be a large object.
        expected = error.validator_value
        names = expected if isinstance(expected, list) else [expected]
        wanted = " or ".join(_TYPE_NAMES.get(str(name), str(name)) for name in names)
        found = _TYPE_NAMES.get(
            _TYPE_OF.get(type(error.instance), ""), f"a Python {type(error.instance).__name__}"
        )
        return f"{_json_path(path)}: must be {wanted}, not {found}"
    explained = error.schema.get("description") if isinstance(error.schema, Mapping) else None
    if error.validator == "pattern" and explained:
        return f"{_json_path(path)}: {error.instance!r} is not {explained}"
    message = error.message
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 1] + "…"
    return f"{_json_path(path)}: {message}"


def _json_path(parts: Iterable[str | int]) -> str:
    """`mailboxes["a@x.com"].provider`: the path a reader finds in the file."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENTIFIER.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return out or "(top level)"
