"""The state file's bytes and the State they hold, both ways (SPEC §3): a strict reading that
refuses anything mailgitops would not have written, and the layout it writes."""

from __future__ import annotations

import functools
import json
import re
from typing import Any, Protocol

from mailgitops.model import SECRET_KEYS
from mailgitops.state.base import (
    FORMAT_VERSION,
    State,
    format_refusal,
    refuse_invalid_write,
    schema_refusal,
)
from mailgitops.state.validation import MAX_INT, is_ref, schema_problems


class StateVerdicts(Protocol):
    """Remembers which state files passed the schema check, by the sha256 of their bytes, so
    that a warm run does not check an unchanged state again (cache.Cache is one). Untrusted
    like the rest of the cache: it only ever skips the schema check of bytes that passed it
    under the same key, and a forged entry is a miss."""

    def state_known_valid(self, digest: bytes) -> bool: ...

    def remember_state_valid(self, digest: bytes) -> None: ...


class Unusable(Exception):
    """The bytes are no state mailgitops can use; the message says why."""


class _DuplicateKeyError(ValueError):
    pass


class _HugeIntError(ValueError):
    pass


def parse(box: list[bytes], digest: bytes, verdicts: StateVerdicts | None) -> State:
    """The state in the bytes `box` holds, whose sha256 is `digest`; the box is emptied, so
    that the bytes can be freed before the JSON parse (450 MB at a million mailboxes,
    docs/performance.md). Raises Unusable."""
    raw = box.pop()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Unusable(
            f"it is not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
        ) from None
    del raw
    if not text.strip():
        raise Unusable("it is empty")
    try:
        odd: list[str] = []
        data = json.loads(
            text,
            object_pairs_hook=functools.partial(_checked_object, odd),
            parse_int=_bounded_int,
            parse_constant=functools.partial(_odd_constant, odd),
        )
    except json.JSONDecodeError as exc:
        raise Unusable(
            f"it is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except (_DuplicateKeyError, _HugeIntError) as exc:
        raise Unusable(f"it is not valid JSON: {exc}") from None
    except RecursionError:
        raise Unusable("it is nested too deeply to be a state") from None
    refusal = format_refusal(data.get("format_version") if isinstance(data, dict) else None)
    if refusal is not None:
        raise Unusable(refusal)
    if verdicts is None or not verdicts.state_known_valid(digest):
        # The exact walk over every value only when parsing saw something odd: a lone
        # surrogate escape, NaN or infinity, a secret key holding a value.
        problems = schema_problems(data, check_values=bool(odd or _SURROGATE.search(text)))
        if problems:
            raise Unusable(schema_refusal(problems))
        if verdicts is not None:
            verdicts.remember_state_valid(digest)
    return State(
        lineage=data["lineage"],
        serial=int(data["serial"]),
        providers=data["providers"],
        mailboxes=data["mailboxes"],
        format_version=FORMAT_VERSION,
    )


def serialize(new: State, where: str) -> bytes:
    """The bytes of the state file for `new`; StateError for a state read() would refuse."""
    document = new.to_json()
    refuse_invalid_write(schema_problems(document), where)
    return _layout(document).encode("utf-8")


def _bounded_int(text: str) -> int:
    """An integer of the JSON text, refused before conversion when it cannot be one of ours:
    Python's own limit (4,300 digits) would raise a bare ValueError, and a number that long
    costs quadratic time to convert."""
    if len(text.lstrip("-")) > 19:
        raise _HugeIntError(f"the integer {text[:20]}… has {len(text)} digits")
    value = int(text)
    if abs(value) > MAX_INT:
        raise _HugeIntError(f"the integer {text} is larger than 64 bits")
    return value


_SURROGATE = re.compile(r"\\u[dD][89abAB]")


def _odd_constant(odd: list[str], name: str) -> float:
    odd.append(name)
    return float(name)


def _checked_object(odd: list[str], pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = _reject_duplicate_keys(pairs)
    if not SECRET_KEYS.isdisjoint(result):  # in C: most objects hold no secret key
        for key in SECRET_KEYS.intersection(result):
            value = result[key]
            if value is not None and not is_ref(value):
                odd.append(key)
    return result


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)  # in C; a key seen twice leaves the dict shorter than the pairs
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _value in pairs:
            if key in seen:
                raise _DuplicateKeyError(f"the key {json.dumps(key)} appears twice in one object")
            seen.add(key)
    return result


def _layout(document: dict[str, Any]) -> str:
    """The state as JSON with one entry per line, keys sorted: readable, diff-friendly (a
    changed mailbox is a changed line), and written by json's C encoder — `indent=` would
    switch to its pure-Python encoder, seconds for 100,000 mailboxes."""

    def dump(value: Any) -> str:
        return json.dumps(value, sort_keys=True, ensure_ascii=False, allow_nan=False)

    lines = ["{"]
    keys = sorted(document)
    for index, key in enumerate(keys):
        comma = "," if index < len(keys) - 1 else ""
        value = document[key]
        if key in ("providers", "mailboxes") and isinstance(value, dict) and value:
            lines.append(f"  {dump(key)}: {{")
            names = sorted(value)
            for n, name in enumerate(names):
                inner = "," if n < len(names) - 1 else ""
                lines.append(f"    {dump(name)}: {dump(value[name])}{inner}")
            lines.append(f"  }}{comma}")
        else:
            lines.append(f"  {dump(key)}: {dump(value)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"
