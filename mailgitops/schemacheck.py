"""JSON Schema errors as Diagnostics: mapped to FILE:LINE:COL through the loader's marks, one
clear message per problem (the best match for oneOf/anyOf), and never echoing a secret."""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from mailgitops import schema
from mailgitops.config.parse import Document
from mailgitops.config.places import is_secret, key_place_of, note, place_of
from mailgitops.diagnostics import Diagnostic
from mailgitops.model import REFERENCE_ONLY_KEYS

if TYPE_CHECKING:  # jsonschema is imported only once a document failed the fast check
    from jsonschema import ValidationError

# A hostile file gives millions of schema errors (10 MB of `1,` in a list: 5 million, at about
# 3 KB and 0.1 ms each, so more than 8 GB before the process was stopped). The first thousand
# tell the story; the count bounds the time and memory a file can cost.
MAX_ERRORS_PER_FILE = 1_000
_TYPE_NAMES = {
    "integer": "an integer",
    "string": "a string",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
    "number": "a number",
}


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return "null" if value is None else type(value).__name__


def _field(path: Sequence[Any]) -> str:
    named = [str(p) for p in path if isinstance(p, str)]
    return named[-1] if named else "document"


def _yaml11(text: str, value: Any) -> str:
    return f"`{text}` is read as {str(value).lower()} by YAML 1.1, not as text; quote it: '{text}'"


def _message(error: ValidationError, data: Any) -> tuple[str, str]:
    """(message, rule) for one schema error."""
    path = list(error.absolute_path)
    name = _field(path)
    kind = error.validator
    sub: dict[str, Any] = dict(error.schema) if isinstance(error.schema, dict) else {}
    expected: Any = error.validator_value
    value = error.instance
    # Every branch below that would quote the value asks `secret` first (model.SECRET_KEYS).
    secret = is_secret(data, path)
    if secret and isinstance(value, str) and path and path[-1] in REFERENCE_ONLY_KEYS:
        return (
            f"`{name}` is a literal secret: write a reference, {{env: NAME}} or "
            "{file: PATH}, and keep the value out of Git (the value is not shown)",
            "plaintext-secret",
        )
    original = note(data, path)
    if kind in ("type", "enum", "const") and original is not None:
        rule = "yaml-boolean" if isinstance(value, bool) else "yaml-number"
        if secret:
            fix = (
                "write a reference, {env: NAME} or {file: PATH}"
                if path[-1] in REFERENCE_ONLY_KEYS
                else "quote it"
            )
            return (
                f"`{name}` is read as {_type_name(value)} by YAML 1.1, not as text (the value "
                f"is not shown); {fix}",
                rule,
            )
        return _yaml11(original, value), rule
    if secret and kind in ("enum", "minimum", "maximum"):
        return f"`{name}` has a value that is not allowed here (the value is not shown)", (
            "enum" if kind == "enum" else "range"
        )
    if (
        not secret
        and sub.get("x-rule") == "host-format"
        and isinstance(value, str)
        and "@" in value
    ):
        local, _, domain = value.partition("@")
        return (
            f"`{value}` is an address, not a host; did you mean `{local}.{domain}`?",
            "host-format",
        )
    if "x-message" in sub and kind in ("pattern", "oneOf", "anyOf", "not", "format"):
        return str(sub["x-message"]), str(sub.get("x-rule", "schema"))
    if kind == "type":
        types: list[str] = expected if isinstance(expected, list) else [str(expected)]
        wanted = " or ".join(_TYPE_NAMES.get(t, t) for t in types)
        hint = ""
        if (
            not secret
            and expected == "integer"
            and isinstance(value, str)
            and value.strip().isdigit()
        ):
            hint = f"; write {value.strip()} without quotes"
        return f"`{name}` must be {wanted}, not {_type_name(value)}{hint}", "type"
    if kind == "enum":
        options = ", ".join(str(o) for o in expected)
        shown = repr(value)
        if len(shown) > 60:  # a hostile 15 MB value must not become a 15 MB message
            shown = shown[:57] + "..."
        return f"`{name}` must be one of: {options} (got {shown})", "enum"
    if kind == "const":
        return f"`{name}` must be {error.validator_value!r}", "enum"
    if kind in ("minimum", "maximum"):
        low, high = sub.get("minimum"), sub.get("maximum")
        if low is not None and high is not None:
            return f"`{name}` must be between {low} and {high} (got {value})", "range"
        return (
            f"`{name}` must be {'at least' if kind == 'minimum' else 'at most'} "
            f"{error.validator_value} (got {value})",
            "range",
        )
    if kind == "pattern":
        return f"`{name}` has an invalid format (expected {error.validator_value})", "format"
    if kind == "minLength":
        return f"`{name}` must not be empty", "empty"
    if kind == "minItems":
        return f"`{name}` must have at least {error.validator_value} item(s)", "empty"
    if kind == "uniqueItems":
        return f"`{name}` lists the same item twice", "duplicate-item"
    if kind == "not":
        return f"`{name}` is not allowed here", "not-allowed"
    if kind in ("oneOf", "anyOf") and error.context:
        from jsonschema.exceptions import best_match

        return _message(best_match(error.context), data)
    return f"`{name}` is invalid ({kind})", "schema"


def _required(error: ValidationError, data: Any) -> Iterable[tuple[list[Any], str, str]]:
    instance: dict[str, Any] = error.instance if isinstance(error.instance, dict) else {}
    required: list[str] = list(error.validator_value)  # type: ignore[arg-type]
    path = list(error.absolute_path)
    why = ""
    schema_path = list(error.relative_schema_path)
    if "then" in schema_path or "else" in schema_path:
        service = instance.get("service_type", "imap")
        why = f" for service_type: {service}"
    for key in required:
        if key not in instance:
            yield path, f"missing required key `{key}`{why}", "missing-key"


def _unknown(error: ValidationError) -> Iterable[tuple[list[Any], str, str]]:
    instance: dict[str, Any] = error.instance if isinstance(error.instance, dict) else {}
    sub: Any = error.schema
    known = [str(k) for k in (sub.get("properties", {}) if isinstance(sub, dict) else {})]
    path = list(error.absolute_path)
    for key in instance:
        if key in known:
            continue
        close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
        hint = f"; did you mean `{close[0]}`?" if close else f" (known keys: {', '.join(known)})"
        yield [*path, key], f"unknown key `{key}`{hint}", "unknown-key"


def check(doc: Document, schema_name: str) -> list[Diagnostic]:
    """Every schema problem of a document against schema `schema_name`. A compiled pass/fail
    check runs first (clean files are the common case); only a failing document is validated
    again by jsonschema, on its marked data, for messages and places."""
    if doc.schema is None:
        if doc.clean or schema.is_valid(schema_name, doc.data):
            doc.schema = []
        else:
            doc.schema = problems(doc.marked(), schema_name, doc.path)
    return doc.schema


def problems(data: Any, schema_name: str, file: str) -> list[Diagnostic]:
    """Every schema problem of `data` (with marks) against schema `schema_name`."""
    validator = schema.validator(schema_name)
    found: list[tuple[list[Any], str, str, bool]] = []  # path, message, rule, at the key
    type_paths: set[tuple[Any, ...]] = set()
    errors = list(itertools.islice(validator.iter_errors(data), MAX_ERRORS_PER_FILE + 1))
    stopped = len(errors) > MAX_ERRORS_PER_FILE
    del errors[MAX_ERRORS_PER_FILE:]
    for error in errors:
        if error.validator == "type":
            type_paths.add(tuple(error.absolute_path))
    for error in errors:
        path = list(error.absolute_path)
        if error.validator == "required":
            found.extend((p, m, r, False) for p, m, r in _required(error, data))
        elif error.validator == "additionalProperties":
            found.extend((p, m, r, True) for p, m, r in _unknown(error))
        elif error.validator != "type" and tuple(path) in type_paths:
            continue  # a value of the wrong type: other complaints about it are noise
        else:
            message, rule = _message(error, data)
            found.append((path, message, rule, False))
    out: list[Diagnostic] = []
    seen: set[tuple[str, int, int, str]] = set()
    for path, message, rule, at_key in found:
        if at_key:
            parent = data
            for part in path[:-1]:
                parent = parent[part]
            line, col = key_place_of(parent, path[-1])
        else:
            line, col = place_of(data, path)
        ident = (file, line, col, rule)
        if ident in seen:
            continue
        seen.add(ident)
        out.append(Diagnostic(file, line, col, "error", message, rule))
    if stopped:
        out.append(
            Diagnostic(
                file,
                1,
                1,
                "error",
                f"more than {MAX_ERRORS_PER_FILE:,} schema errors: the check of this file "
                f"stopped after the first {MAX_ERRORS_PER_FILE:,}",
                "too-many-errors",
            )
        )
    return out
