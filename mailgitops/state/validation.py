"""Checking a state document against schemas/state.schema.json, shared by every backend so that
they accept and refuse exactly the same states, with the same messages."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from mailgitops import identifiers, schema

if TYPE_CHECKING:  # jsonschema is imported only for a state that failed the compiled check
    from jsonschema import ValidationError

_MAX_SCHEMA_ERRORS = 10
_MAX_MESSAGE = 200
_SECRET_KEYS = frozenset({"password", "client_secret"})
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


def schema_problems(document: Any) -> list[str]:
    """Every way `document` fails schemas/state.schema.json, one readable line each (at most
    ten, then a count); never the value of a secret. Empty when it is valid."""
    if schema.is_valid("state", document):  # the compiled check: most states are valid
        return _invisible(document)
    errors = sorted(
        schema.validator("state").iter_errors(document), key=lambda e: list(map(str, e.path))
    )
    problems = list(dict.fromkeys(_describe(error) for error in errors))
    if len(problems) > _MAX_SCHEMA_ERRORS:
        hidden = len(problems) - _MAX_SCHEMA_ERRORS
        problems = [*problems[:_MAX_SCHEMA_ERRORS], f"... and {hidden} more"]
    return problems


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
    if _SECRET_KEYS.intersection(p for p in path if isinstance(p, str)):
        # Never echo the instance here: it may be the secret itself.
        return (
            f"{_json_path(path)}: must be a secret reference {{env: NAME}} or {{file: PATH}} "
            "(optionally with version), never a value (the value is not shown)"
        )
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
