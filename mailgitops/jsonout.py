"""JSON documents for people and programs alike: the top level indented, and each item of the
large lists or mappings on a line of its own. Every piece is written by json's C encoder;
`indent=` would switch to its pure-Python encoder, which costs more than the whole rest of a
plan at 100,000 mailboxes (docs/performance.md)."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator
from typing import Any

_encode = json.JSONEncoder(allow_nan=False).encode


def lines(document: dict[str, Any], expand: Collection[str] = ()) -> Iterator[str]:
    """The document's lines (each without its newline), keys in the document's order. The
    values of the keys in `expand`, when a non-empty list or mapping, have one item per line."""
    yield "{"
    last = len(document) - 1
    for index, (key, value) in enumerate(document.items()):
        comma = "," if index < last else ""
        if key in expand and isinstance(value, list | dict) and value:
            yield from _expanded(_encode(key), value, comma)
        else:
            yield f"  {_encode(key)}: {_encode(value)}{comma}"
    yield "}"


def _expanded(name: str, value: list[Any] | dict[str, Any], comma: str) -> Iterator[str]:
    is_list = isinstance(value, list)
    yield f"  {name}: {'[' if is_list else '{'}"
    last = len(value) - 1
    if isinstance(value, list):
        for index, item in enumerate(value):
            yield f"    {_encode(item)}{',' if index < last else ''}"
    else:
        for index, (key, item) in enumerate(value.items()):
            yield f"    {_encode(key)}: {_encode(item)}{',' if index < last else ''}"
    yield f"  {']' if is_list else '}'}{comma}"


def dumps(document: dict[str, Any], expand: Collection[str] = ()) -> str:
    """The whole document (`lines`), ending in one newline."""
    return "\n".join(lines(document, expand)) + "\n"
