"""The two PyYAML loaders of a config file. The fast one builds plain dicts and lists for the
common case, a clean file; the marking one builds MarkedDict and MarkedList, which remember
where each key and item is, and reports what only marks can place: duplicate and non-string
keys, YAML 1.1 readings that change meaning (`security: no` is a boolean; `port: 0143` is
octal 99) and unsupported tags. It also notes which values are secrets (under SECRET_KEYS,
or reached through an alias of one), so that no message quotes them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from mailgitops.model import SECRET_KEYS

try:  # the C parser is several times faster; fall back where libyaml is missing
    from yaml import CSafeLoader as _Parser
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _Parser  # type: ignore[assignment]

BaseLoader = _Parser  # also the parser of budget.py's depth check

_MERGE_TAG = "tag:yaml.org,2002:merge"
_BOOL_TAG = "tag:yaml.org,2002:bool"
_INT_TAG = "tag:yaml.org,2002:int"
_STR_TAG = "tag:yaml.org,2002:str"
_STRICT_BOOLS = frozenset({"true", "false"})
_SURPRISING_INT = re.compile(r"^[-+]?(0[0-7_]+|[0-9][0-9_]*(:[0-5]?[0-9])+)$")

# (key line, key col, value line, value col), 1-based
Mark = tuple[int, int, int, int]


class MarkedDict(dict[str, Any]):
    """A YAML mapping that remembers where it and each of its keys and values are."""

    line: int = 0
    col: int = 0
    marks: dict[str, Mark]
    notes: dict[str, str] | None = None  # key -> plain scalar text that YAML 1.1 re-typed
    hidden: set[str] | None = None  # keys whose value is (an alias of) a secret's value


class MarkedList(list[Any]):
    """A YAML sequence that remembers where it and each of its items are."""

    line: int = 0
    col: int = 0
    marks: dict[int, Mark]
    notes: dict[int, str] | None = None
    hidden: set[int] | None = None


class MarkingLoader(BaseLoader):
    """The loader that builds MarkedDict and MarkedList, and collects what marks can place."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.diagnostics: list[tuple[int, int, str, str]] = []  # line, col, message, rule
        self.secret_ids: set[int] = set()


def secret_nodes(root: Node) -> set[int]:
    """The ids of every node that is, or is inside, the value of a secret key (SECRET_KEYS),
    however it is reached: an anchor defined under `password:` and used elsewhere is still
    the password, and so is a value used under `password:` through an alias. Each node is
    visited once, so aliases cost nothing extra. Only a document with aliases needs this
    walk: without them _construct_map marks each secret value as it meets its key."""
    secret: set[int] = set()
    for node in _unseen(root, set()):
        if isinstance(node, MappingNode):
            for key, value in node.value:
                if isinstance(key, ScalarNode) and key.value in SECRET_KEYS:
                    _add_subtree(value, secret)
    return secret


def _add_subtree(top: Node, into: set[int]) -> None:
    for _node in _unseen(top, into):
        pass


def _unseen(top: Node, seen: set[int]) -> Iterator[Node]:
    """Each node reachable from `top` whose id is not in `seen`, once (its id is added)."""
    stack = [top]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        yield node
        if isinstance(node, MappingNode):
            stack.extend(part for pair in node.value for part in pair)
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)


def place_of_node(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _retyped(node: Any) -> bool:
    """A plain scalar that YAML 1.1 reads as something a reader would not expect: `no` as
    false, `0143` as 99, `1:30` as 90. Plain scalars have style None in PyYAML, "" in libyaml."""
    tag = node.tag
    if tag not in (_BOOL_TAG, _INT_TAG) or node.style:  # only scalar nodes have a style
        return False
    text = node.value
    if tag == _BOOL_TAG:
        return text.lower() not in _STRICT_BOOLS
    return _SURPRISING_INT.match(text) is not None


def _scalar_note(loader: MarkingLoader, node: Node) -> str | None:
    """The text of a plain scalar whose YAML 1.1 type differs from what a reader sees."""
    if not isinstance(node, ScalarNode) or not _retyped(node):
        return None
    if node.tag == _BOOL_TAG:
        return str(node.value)
    if node.tag == _INT_TAG:
        if id(node) in loader.secret_ids:
            # The schema refuses a number there, with a message that does not quote it.
            return str(node.value)
        value = loader.construct_object(node)
        line, col = place_of_node(node)
        loader.diagnostics.append(
            (
                line,
                col,
                f"`{node.value}` is read as the number {value} by YAML 1.1 (leading zero: octal; "
                f"colons: base 60); write the number without them, or quote it",
                "yaml-number",
            )
        )
        return str(node.value)
    return None


def _construct_map(loader: MarkingLoader, node: MappingNode) -> Iterator[MarkedDict]:
    data = MarkedDict()
    data.line, data.col = place_of_node(node)
    data.marks = {}
    yield data
    secret = loader.secret_ids
    own = len(node.value)
    if any(k.tag == _MERGE_TAG for k, _ in node.value):
        own -= sum(1 for k, _ in node.value if k.tag == _MERGE_TAG)
        loader.flatten_mapping(node)
    first_own = len(node.value) - own
    seen: dict[str, int] = {}
    for index, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node, deep=False)
        kline, kcol = place_of_node(key_node)
        if not isinstance(key, str):
            if isinstance(key_node, ScalarNode) and id(key_node) in secret:
                loader.diagnostics.append(
                    (kline, kcol, "a key inside a secret must be a string", "yaml-key")
                )
                key = str(key_node.value)
            elif isinstance(key_node, ScalarNode):
                loader.diagnostics.append(
                    (
                        kline,
                        kcol,
                        f"key `{key_node.value}` is not a string (YAML reads it as "
                        f"{type(key).__name__} {key!r}); quote it",
                        "yaml-key",
                    )
                )
                key = str(key_node.value)
            else:
                loader.diagnostics.append((kline, kcol, "a key must be a plain string", "yaml-key"))
                continue
        if index >= first_own:
            if key in seen:
                loader.diagnostics.append(
                    (
                        kline,
                        kcol,
                        f"duplicate key `{key}` (first defined at line {seen[key]}); "
                        "YAML would silently keep only the last one",
                        "duplicate-key",
                    )
                )
            seen[key] = kline
        vline, vcol = place_of_node(value_node)
        data.marks[key] = (kline, kcol, vline, vcol)
        if key in SECRET_KEYS and id(value_node) not in secret:
            _add_subtree(value_node, secret)  # before its note is taken, and its children built
        _annotate(loader, data, key, value_node)
        data[key] = loader.construct_object(value_node, deep=False)


def _annotate(loader: MarkingLoader, data: MarkedDict | MarkedList, key: Any, node: Node) -> None:
    """Note on `data` that its `key` holds a secret (its value is never quoted) or a plain
    scalar YAML 1.1 re-typed (its text, for the message that explains it)."""
    if id(node) in loader.secret_ids:
        if data.hidden is None:
            data.hidden = set()
        data.hidden.add(key)
    note = _scalar_note(loader, node)
    if note is not None:
        if data.notes is None:
            data.notes = {}
        data.notes[key] = note


def _construct_seq(loader: MarkingLoader, node: SequenceNode) -> Iterator[MarkedList]:
    data = MarkedList()
    data.line, data.col = place_of_node(node)
    data.marks = {}
    yield data
    for index, child in enumerate(node.value):
        line, col = place_of_node(child)
        data.marks[index] = (line, col, line, col)
        _annotate(loader, data, index, child)
        data.append(loader.construct_object(child, deep=False))


def _construct_text(loader: MarkingLoader, node: ScalarNode) -> str:
    # Dates stay text: they are compared and stored as ISO strings, and the schema checks them.
    return str(node.value)


def _construct_unsupported(loader: MarkingLoader, node: Node) -> None:
    line, col = place_of_node(node)
    loader.diagnostics.append(
        (line, col, f"the YAML tag {node.tag} is not supported here", "yaml-tag")
    )


MarkingLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
MarkingLoader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)
MarkingLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_text)
for _tag in ("binary", "set", "omap", "pairs"):
    MarkingLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _construct_unsupported)


class FastLoader(BaseLoader):
    """The loader for the common case, a clean file: builds plain dicts and lists as fast as
    PyYAML's own SafeLoader, and only notices what the marking loader would report (a
    duplicate or non-string key, a YAML 1.1 re-typed scalar, an unsupported tag). A file it
    flags is parsed again by the marking loader, which says where and why."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.suspicious = False


def _fast_map(loader: FastLoader, node: MappingNode) -> Iterator[dict[str, Any]]:
    data: dict[str, Any] = {}
    yield data
    pairs = node.value
    for key_node, _ in pairs:
        if key_node.tag == _MERGE_TAG:
            loader.flatten_mapping(node)
            pairs = node.value
            break
    construct = loader.construct_object
    for key_node, value_node in pairs:
        if key_node.tag != _STR_TAG:
            loader.suspicious = True
            continue
        key = key_node.value
        if key in data:
            loader.suspicious = True  # a duplicate, or a merged key overridden (checked again)
        if _retyped(value_node):
            loader.suspicious = True
        data[key] = construct(value_node)


def _fast_seq(loader: FastLoader, node: SequenceNode) -> Iterator[list[Any]]:
    data: list[Any] = []
    yield data
    construct = loader.construct_object
    for child in node.value:
        if _retyped(child):
            loader.suspicious = True
        data.append(construct(child))


def _fast_unsupported(loader: FastLoader, node: Node) -> None:
    loader.suspicious = True


FastLoader.add_constructor("tag:yaml.org,2002:map", _fast_map)
FastLoader.add_constructor("tag:yaml.org,2002:seq", _fast_seq)
FastLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_text)
for _tag in ("binary", "set", "omap", "pairs"):
    FastLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _fast_unsupported)
