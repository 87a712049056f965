"""The attribute-level diff of one entry: what the plan shows for each change (SPEC §4)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mailgitops.model import SENSITIVE_PATHS
from mailgitops.plan.changes import AttrChange


def _dotted(parts: list[Any]) -> str:
    return ".".join(str(p) for p in parts)


def attribute_diff(before: dict[str, Any], after: dict[str, Any]) -> tuple[AttrChange, ...]:
    """Attribute-level differences, in path order. Mappings are walked; secret references are
    compared whole; the lists whose elements mean something on their own are diffed element by
    element (one user added to a `shared_with` of thirty is one line, not two lists of thirty):
    `domains`, `shared_with` (keyed by user) and its `rights` ignore order, `sync.folders`
    keeps it. Paths name the element: `domains["b.com"]`, `shared_with["bob"].rights["send"]`,
    `sync.folders[2]`.

    Entries are small JSON objects, so a direct walk does the mappings; deepdiff, which costs
    half a second of imports, is imported only when such a list differs (docs/performance.md)."""
    out: list[AttrChange] = []
    _walk(before, after, (), out)
    return tuple(out)


def _walk(
    before: dict[str, Any], after: dict[str, Any], prefix: tuple[str, ...], out: list[AttrChange]
) -> None:
    for key in sorted({*before, *after}):
        b, a = before.get(key), after.get(key)
        if b == a:
            continue
        path = (*prefix, key)
        sensitive = path in SENSITIVE_PATHS
        if isinstance(b, dict) and isinstance(a, dict) and not sensitive:
            _walk(b, a, path, out)
            continue
        elements = None
        if path in ELEMENT_LISTS and isinstance(b, list) and isinstance(a, list):
            elements = _list_diff(path, b, a)
        if elements:
            out.extend(elements)
        else:  # not comparable element by element, or only the order of a set changed
            out.append(AttrChange(_dotted(list(path)), b, a, sensitive))


# The lists diffed element by element, and whether their order means something (SPEC §2).
ELEMENT_LISTS: dict[tuple[str, ...], bool] = {
    ("domains",): False,
    ("shared_with",): False,
    ("sync", "folders"): True,
}


def _as_set(values: list[Any]) -> _Set | None:
    """An unordered list as a mapping from each element to itself, so that deepdiff compares
    it key by key, in linear time; or None when an element is not a plain value (an entry made
    outside mailgitops may hold anything), and then the list is compared whole. (deepdiff's
    own ignore_order pairs up changed elements by similarity, which takes minutes on a few
    thousand domains: a pull request must not be able to stall the plan.)"""
    if not all(isinstance(v, str) for v in values):
        return None
    return _Set((_SetElement(v), v) for v in values)


class _Set(dict[Any, Any]):
    """An unordered list made a mapping for deepdiff (`_as_set`)."""


def _by_user(shares: list[Any]) -> dict[str, Any] | None:
    """`shared_with` keyed by user, its rights as a set; or None when it is not a list of
    distinct users with lists of rights (then it is compared whole)."""
    out: dict[str, Any] = {}
    for share in shares:
        if not isinstance(share, dict) or not isinstance(share.get("user"), str):
            return None
        if share["user"] in out:
            return None
        rights = share.get("rights")
        keyed = _as_set(rights) if isinstance(rights, list) else None
        out[share["user"]] = {**share, "rights": keyed} if keyed is not None else share
    return out


@dataclass(frozen=True)
class _SetElement:
    """An element of an unordered list, as a key: shown as `["value"]` in a path."""

    value: Any


def _show_key(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _element_path(base: str, parts: list[Any], keyed: bool) -> str:
    """`shared_with["bob"].rights["send"]`: a user key and a set element are written as JSON
    in brackets (a hostile name cannot pass for another path); a position in an ordered list
    as `[2]`; an attribute inside an element as `.name`."""
    text = base
    for i, part in enumerate(parts):
        if isinstance(part, _SetElement):
            text += f"[{_show_key(part.value)}]"
        elif isinstance(part, int):
            text += f"[{part}]"
        elif keyed and i == 0:
            text += f"[{_show_key(part)}]"
        else:
            text += f".{part}"
    return text


def _sort_key(parts: list[Any]) -> tuple[tuple[int, int, str], ...]:
    return tuple(
        (0, p, "")
        if isinstance(p, int)
        else (1, 0, _show_key(p.value if isinstance(p, _SetElement) else p))
        for p in parts
    )


def _plain(value: Any) -> Any:
    """A value for the plan: the sets made for deepdiff turned back into lists."""
    if isinstance(value, _Set):
        return list(value.values())
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _list_diff(path: tuple[str, ...], before: list[Any], after: list[Any]) -> list[AttrChange]:
    from deepdiff import DeepDiff
    from deepdiff.helper import notpresent

    keyed = path == ("shared_with",)
    left: Any
    right: Any
    if ELEMENT_LISTS[path]:
        left, right = before, after  # ordered: deepdiff aligns the sequences (difflib)
    elif keyed:
        left, right = _by_user(before), _by_user(after)
    else:
        left, right = _as_set(before), _as_set(after)
    if left is None or right is None:
        return []
    found = DeepDiff(left, right, view="tree")
    out: list[tuple[tuple[Any, ...], AttrChange]] = []
    for levels in found.values():
        for level in levels:
            parts: list[Any] = list(level.path(output_format="list"))
            old = None if level.t1 is notpresent else _plain(level.t1)
            new = None if level.t2 is notpresent else _plain(level.t2)
            text = _element_path(_dotted(list(path)), parts, keyed)
            out.append((_sort_key(parts), AttrChange(text, old, new)))
    out.sort(key=lambda pair: pair[0])
    return [change for _key, change in out]
