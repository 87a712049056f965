"""What the marks of parsed data tell about a node: its place in the file, the text YAML 1.1
re-typed, and whether it is (part of) a secret."""

from __future__ import annotations

from typing import Any

from mailgitops.model import is_secret_path


def place_of(data: Any, path: Any) -> tuple[int, int]:
    """The place of the node at `path` (keys and indexes) inside parsed data: the value for a
    scalar, the key for a mapping or sequence, the nearest existing ancestor otherwise."""
    line, col = getattr(data, "line", 1) or 1, getattr(data, "col", 1) or 1
    node = data
    for part in path:
        marks = getattr(node, "marks", None)
        if not marks or part not in marks:
            break
        kline, kcol, vline, vcol = marks[part]
        node = node[part]
        if isinstance(node, (dict, list)):
            line, col = kline, kcol
        else:
            line, col = vline, vcol
    return line, col


def key_place_of(data: Any, key: str | int) -> tuple[int, int]:
    """The place of a key itself (for unknown and duplicate keys)."""
    marks = getattr(data, "marks", None)
    if marks and key in marks:
        return marks[key][0], marks[key][1]
    return getattr(data, "line", 1) or 1, getattr(data, "col", 1) or 1


def note(data: Any, path: Any) -> str | None:
    """The original text of a plain scalar at `path` that YAML 1.1 re-typed (`no` -> false)."""
    *parents, last = list(path) or [None]
    node = data
    for part in parents:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    notes = getattr(node, "notes", None)
    return notes.get(last) if notes else None


def is_secret(data: Any, path: Any) -> bool:
    """Whether the value at `path` inside marked data is, or is part of, a secret: under a
    secret key, or reached through an alias of a secret's value. A message about such a value
    never quotes it."""
    if is_secret_path(path):
        return True
    node = data
    for part in path:
        hidden = getattr(node, "hidden", None)
        if hidden and part in hidden:
            return True
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return False
    return False
