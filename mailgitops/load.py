"""Reading the config tree: YAML with a place (line, column) for every key and item.

Like octoDNS's loader, mappings and sequences carry their marks, so every later check can name
FILE:LINE:COL. Unlike plain PyYAML it refuses duplicate keys, flags YAML 1.1 readings that
change meaning (`security: no` is a boolean; `port: 0143` is octal 99), refuses alias bombs
before expanding them, and turns every decoding or syntax problem into a Diagnostic."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from mailgitops.cache import Cache
from mailgitops.diagnostics import Diagnostic
from mailgitops.errors import NotConfigRoot, UsageError
from mailgitops.model import SECRET_KEYS, is_secret_path

try:  # the C parser is several times faster; fall back where libyaml is missing
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

MAX_FILE_BYTES = 16 * 1024 * 1024
# An alias-heavy document is refused when its expanded size passes both numbers: a legitimate
# file reuses anchors a few times; a "billion laughs" grows exponentially.
MAX_EXPANDED_NODES = 200_000
MAX_EXPANSION_FACTOR = 20
# libyaml's composer recurses in C: a deeply nested document would crash the process, so the
# depth is measured on the (iterative) event stream first when the text could be that deep.
MAX_DEPTH = 100
_BRACKETS = re.compile(r"[\[\]{}]")
_DEEP_HINT = re.compile(rf"^[ \t?:-]{{{MAX_DEPTH},}}", re.MULTILINE)

# The parse budget (docs/reliability.md). PyYAML's composer holds every node of a file at
# once, at about 700 bytes each: 10 MB of `[1,1,1,…]` is 5 million nodes, 3.6 GB and 40 s.
# The nodes a file would have are estimated before composing, from the characters that
# separate them (C-speed str.count, about as many as the nodes in real configs), and refused
# when a file is denser than any config or past the per-file or per-run limit. A generated
# config with 100,000 mailboxes is about 1.4 million nodes over 14 MB. The run limit is what
# bounds the memory of a run of many files; a team with a larger config raises it explicitly
# (MAX_RUN_NODES_ENV, set by whoever runs CI, not by a file of the config).
MAX_FILE_NODES = 200_000
MAX_RUN_NODES = 3_000_000
MAX_RUN_NODES_ENV = "MAILGITOPS_MAX_NODES"
# Once a run has this many errors, the files not yet read are not parsed: a few hostile files
# cost one file's work, not each their own.
MAX_RUN_ERRORS = 1_000
BYTES_PER_NODE = 5  # a real config has about 10 bytes per node; `1,` has 2
_SEPARATORS = (",", ":", "\n", "-", "[", "{", "?")

PROVIDERS_DIR = "providers.d"
MAILBOXES_DIR = "mailboxes.d"
SETTINGS_FILE = "mailgitops.yaml"
ROOT_MARKERS = (PROVIDERS_DIR, MAILBOXES_DIR, SETTINGS_FILE)

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


class _Bomb(Exception):
    pass


class _TooDeep(Exception):
    pass


class _Loader(_BaseLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.diagnostics: list[tuple[int, int, str, str]] = []  # line, col, message, rule
        self.secret_ids: set[int] = set()


def _secret_nodes(root: Node) -> set[int]:
    """The ids of every node that is, or is inside, the value of a secret key (SECRET_KEYS),
    however it is reached: an anchor defined under `password:` and used elsewhere is still
    the password, and so is a value used under `password:` through an alias. Each node is
    visited once, so aliases cost nothing extra. Only a document with aliases needs this
    walk: without them _construct_map marks each secret value as it meets its key."""
    secret: set[int] = set()
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, MappingNode):
            for key, value in node.value:
                if isinstance(key, ScalarNode) and key.value in SECRET_KEYS:
                    _add_subtree(value, secret)
                stack.extend((key, value))
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)
    return secret


def _add_subtree(top: Node, into: set[int]) -> None:
    stack = [top]
    while stack:
        node = stack.pop()
        if id(node) in into:
            continue
        into.add(id(node))
        if isinstance(node, MappingNode):
            stack.extend(part for pair in node.value for part in pair)
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)


def _mark(node: Node) -> tuple[int, int]:
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


def _scalar_note(loader: _Loader, node: Node) -> str | None:
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
        line, col = _mark(node)
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


def _construct_map(loader: _Loader, node: MappingNode) -> Iterator[MarkedDict]:
    data = MarkedDict()
    data.line, data.col = _mark(node)
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
        kline, kcol = _mark(key_node)
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
        vline, vcol = _mark(value_node)
        data.marks[key] = (kline, kcol, vline, vcol)
        if key in SECRET_KEYS and id(value_node) not in secret:
            _add_subtree(value_node, secret)  # before its note is taken, and its children built
        if id(value_node) in secret:
            if data.hidden is None:
                data.hidden = set()
            data.hidden.add(key)
        note = _scalar_note(loader, value_node)
        if note is not None:
            if data.notes is None:
                data.notes = {}
            data.notes[key] = note
        data[key] = loader.construct_object(value_node, deep=False)


def _construct_seq(loader: _Loader, node: SequenceNode) -> Iterator[MarkedList]:
    data = MarkedList()
    data.line, data.col = _mark(node)
    data.marks = {}
    yield data
    for index, child in enumerate(node.value):
        line, col = _mark(child)
        data.marks[index] = (line, col, line, col)
        if id(child) in loader.secret_ids:
            if data.hidden is None:
                data.hidden = set()
            data.hidden.add(index)
        note = _scalar_note(loader, child)
        if note is not None:
            if data.notes is None:
                data.notes = {}
            data.notes[index] = note
        data.append(loader.construct_object(child, deep=False))


def _construct_text(loader: _Loader, node: ScalarNode) -> str:
    # Dates stay text: they are compared and stored as ISO strings, and the schema checks them.
    return str(node.value)


def _construct_unsupported(loader: _Loader, node: Node) -> None:
    line, col = _mark(node)
    loader.diagnostics.append(
        (line, col, f"the YAML tag {node.tag} is not supported here", "yaml-tag")
    )


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_text)
for _tag in ("binary", "set", "omap", "pairs"):
    _Loader.add_constructor(f"tag:yaml.org,2002:{_tag}", _construct_unsupported)


class _FastLoader(_BaseLoader):
    """The loader for the common case, a clean file: builds plain dicts and lists as fast as
    PyYAML's own SafeLoader, and only notices what the marking loader would report (a
    duplicate or non-string key, a YAML 1.1 re-typed scalar, an unsupported tag). A file it
    flags is parsed again by the marking loader, which says where and why."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.suspicious = False


def _fast_map(loader: _FastLoader, node: MappingNode) -> Iterator[dict[str, Any]]:
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


def _fast_seq(loader: _FastLoader, node: SequenceNode) -> Iterator[list[Any]]:
    data: list[Any] = []
    yield data
    construct = loader.construct_object
    for child in node.value:
        if _retyped(child):
            loader.suspicious = True
        data.append(construct(child))


def _fast_unsupported(loader: _FastLoader, node: Node) -> None:
    loader.suspicious = True


_FastLoader.add_constructor("tag:yaml.org,2002:map", _fast_map)
_FastLoader.add_constructor("tag:yaml.org,2002:seq", _fast_seq)
_FastLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_text)
for _tag in ("binary", "set", "omap", "pairs"):
    _FastLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _fast_unsupported)


def _check_expansion(root: Node) -> None:
    """Count the nodes the document would have with every alias expanded, without expanding:
    post-order over the node graph, memoized by node identity. Measures the nesting depth of
    the expanded data too: aliases nest it without nesting events, past what _too_deep saw
    (a chain of 600 anchors, each holding the previous one, made the schema check recurse
    until RecursionError)."""
    sizes: dict[int, int] = {}
    depths: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        nid = id(node)
        children: list[Node]
        if isinstance(node, SequenceNode):
            children = list(node.value)
        elif isinstance(node, MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = []
        if done:
            on_path.discard(nid)
            sizes[nid] = 1 + sum(sizes[id(c)] for c in children)
            if not isinstance(node, ScalarNode):
                depths[nid] = 1 + max((depths.get(id(c), 0) for c in children), default=0)
                if depths[nid] > MAX_DEPTH:
                    raise _TooDeep
            if sizes[nid] > MAX_EXPANDED_NODES and sizes[nid] > MAX_EXPANSION_FACTOR * len(sizes):
                raise _Bomb(
                    "aliases expand this document beyond "
                    f"{MAX_EXPANDED_NODES:,} nodes (an alias bomb?)"
                )
            continue
        if nid in sizes:
            continue
        if nid in on_path:
            raise _Bomb("an alias refers to a node that contains it (a recursive structure)")
        on_path.add(nid)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)


@dataclass
class Document:
    """One YAML file: its data (None when it could not be read) and the problems found."""

    path: str  # relative to the config root, with forward slashes
    data: Any
    diagnostics: list[Diagnostic] = field(default_factory=list)
    raw: bytes = b""
    root_mark: tuple[int, int] = (1, 1)
    item_marks: list[tuple[int, int]] = field(default_factory=list)
    cache_key: str | None = None
    schema: list[Diagnostic] | None = None  # the schema check's findings, once it ran
    clean: bool = False  # from the cache: loaded and schema-valid before, with these bytes
    _marked: Any = None

    def marked(self) -> Any:
        """The data with marks (MarkedDict/MarkedList), for placing a finding: parsed again on
        first use when the file was loaded the fast way, which only happens for files that
        have a finding."""
        if isinstance(self.data, (MarkedDict, MarkedList)):
            return self.data
        if self._marked is None:
            scratch = Document(self.path, None)
            self._marked = _marked(self.raw.decode("utf-8-sig"), scratch)
        return self._marked

    def problem(self, line: int, col: int, message: str, rule: str) -> None:
        self.diagnostics.append(Diagnostic(self.path, line, col, "error", message, rule))


def _too_deep(text: str) -> bool:
    """Whether the document nests more than MAX_DEPTH collections, by our limit alone.

    libyaml since 0.2.6 has a nesting limit of its own, checked while it scans ahead, so the C
    event stream can fail before it has emitted the levels we count. Its failure is therefore
    no verdict: the pure-Python parser, which has no such limit and emits events after at most
    a 1,024-character look-ahead, counts again and stops at our limit or at the syntax error.
    """
    if not _DEEP_HINT.search(text) and _flow_depth_bound(text) <= MAX_DEPTH:
        return False
    try:
        return _deeper_than_limit(yaml.parse(text, Loader=_BaseLoader))
    except yaml.YAMLError:
        pass
    try:
        return _deeper_than_limit(yaml.parse(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError:
        return False  # the real parse reports the syntax error with its place


def _deeper_than_limit(events: Iterator[yaml.Event]) -> bool:
    depth = 0
    for event in events:
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
    return False


def _flow_depth_bound(text: str) -> int:
    """An upper bound of the flow nesting depth ([ and { in quoted text count too), looking
    only at the bracket characters: cheap for files with few brackets."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return 0
    depth = deepest = 0
    for match in _BRACKETS.finditer(text):
        if match.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth = max(depth - 1, 0)
    return deepest


def _tab_at(text: str, mark: Any) -> bool:
    """libyaml's message for a tab does not name it; look at the offending character."""
    if mark is None:
        return False
    lines = text.splitlines()
    if mark.line >= len(lines):
        return False
    line = lines[mark.line]
    return "\t" in line[: mark.column + 1]


def _position(raw: bytes, offset: int) -> tuple[int, int]:
    before = raw[:offset]
    line = before.count(b"\n") + 1
    col = offset - (before.rfind(b"\n") + 1) + 1
    return line, col


def run_node_limit() -> int:
    """The run's node limit: MAX_RUN_NODES, or $MAILGITOPS_MAX_NODES for a larger config."""
    raw = os.environ.get(MAX_RUN_NODES_ENV)
    if raw is None or not raw.strip():
        return MAX_RUN_NODES
    try:
        value = int(raw.strip().replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise UsageError(f"${MAX_RUN_NODES_ENV} must be a positive whole number of YAML nodes")
    return value


class ParseBudget:
    """What one run may spend on parsing, across all its files: estimated YAML nodes."""

    def __init__(self, nodes: int | None = None) -> None:
        self.limit = run_node_limit() if nodes is None else nodes
        self.remaining = self.limit
        self.errors = 0  # found so far in this run's files (their schema checks included)

    def stopped(self) -> tuple[str, str] | None:
        """(message, rule) once the run has too many errors to read more files."""
        if self.errors <= MAX_RUN_ERRORS:
            return None
        return (
            f"not read: the config already has more than {MAX_RUN_ERRORS:,} errors in the "
            "files before this one; fix those first",
            "parse-budget",
        )

    def refusal(self, text: str) -> tuple[str, str] | None:
        """(message, rule) when `text` may not be composed; else it is charged."""
        stopped = self.stopped()
        if stopped is not None:
            return stopped
        estimate = sum(text.count(sep) for sep in _SEPARATORS) + 1
        if estimate > MAX_FILE_NODES:
            return (
                f"the file holds about {estimate:,} YAML nodes; the limit is "
                f"{MAX_FILE_NODES:,} per file: split it",
                "too-many-nodes",
            )
        if estimate > 1_000 + len(text) // BYTES_PER_NODE:
            return (
                f"the file holds about {estimate:,} YAML nodes in {len(text):,} characters, "
                "denser than any config (a list like [1,1,1,…]?)",
                "too-many-nodes",
            )
        if estimate > self.remaining:
            return (
                f"the config holds more than {self.limit:,} YAML nodes in all; this file "
                f"is not read (the budget of one run: set ${MAX_RUN_NODES_ENV} higher for a "
                "config this large, or split it into several roots)",
                "parse-budget",
            )
        self.remaining -= estimate
        return None


def parse(raw: bytes, relpath: str, budget: ParseBudget | None = None) -> Document:
    """Parse one YAML file's bytes. Never raises for bad input: problems go into the Document.
    `budget` is charged before anything is composed; without one, the file gets a fresh
    budget of its own."""
    doc = Document(relpath, None, raw=raw)
    if len(raw) > MAX_FILE_BYTES:
        doc.problem(
            1, 1, f"file is {len(raw):,} bytes; the limit is {MAX_FILE_BYTES:,}", "file-too-large"
        )
        return doc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line, col = _position(raw, exc.start)
        doc.problem(
            line,
            col,
            f"not UTF-8: byte 0x{raw[exc.start]:02x} cannot be decoded; save the file as UTF-8",
            "encoding",
        )
        return doc
    if not text.strip():
        doc.problem(1, 1, "file is empty", "empty-file")
        return doc
    if _too_deep(text):
        doc.problem(1, 1, f"the document is nested more than {MAX_DEPTH} levels deep", "yaml-depth")
        return doc
    refusal = (budget or ParseBudget()).refusal(text)
    if refusal is not None:
        doc.problem(1, 1, *refusal)
        return doc
    fast = _FastLoader(text)
    data = _load(fast, text, doc)
    if doc.diagnostics or data is None:
        return doc
    if fast.suspicious:
        doc.data = _marked(text, doc)
    else:
        doc.data = data
    return doc


def _marked(text: str, doc: Document) -> Any:
    """The data with marks on every mapping and sequence, and the problems only marks can
    place (duplicate keys, YAML 1.1 surprises) added to `doc`."""
    loader = _Loader(text)
    data = _load(loader, text, doc)
    for line, col, message, rule in loader.diagnostics:
        doc.problem(line, col, message, rule)
    return data


def _load(loader: _FastLoader | _Loader, text: str, doc: Document) -> Any:
    """Compose and construct one document; a problem goes into `doc` and gives None."""
    try:
        node = loader.get_single_node()
        if node is None:
            doc.problem(1, 1, "file holds no YAML document (only comments?)", "empty-file")
            return None
        if "*" in text:
            _check_expansion(node)
        doc.root_mark = _mark(node)
        doc.item_marks = _item_marks(node)
        if isinstance(loader, _Loader) and "*" in text:
            loader.secret_ids = _secret_nodes(node)
        return loader.construct_document(node)
    except _Bomb as exc:
        doc.problem(1, 1, str(exc), "alias-bomb")
    except _TooDeep:
        doc.problem(
            1,
            1,
            f"the document is nested more than {MAX_DEPTH} levels deep (counting the nodes "
            "its aliases refer to)",
            "yaml-depth",
        )
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        if _tab_at(text, mark):
            doc.problem(line, col, "a tab character: YAML indentation must use spaces", "yaml-tab")
        else:
            context = f" ({exc.context})" if exc.context and exc.problem else ""
            doc.problem(line, col, f"invalid YAML: {problem}{context}", "yaml-syntax")
    except yaml.YAMLError as exc:  # ReaderError: control characters such as NUL
        position = getattr(exc, "position", 0)
        line = text[:position].count("\n") + 1
        col = position - (text.rfind("\n", 0, position) + 1) + 1
        reason = getattr(exc, "reason", None) or "unreadable YAML"
        doc.problem(line, col, f"invalid YAML: {reason}", "yaml-syntax")
    except RecursionError:
        doc.problem(1, 1, "the document is nested too deeply", "yaml-depth")
    finally:
        loader.dispose()
    return None


def _item_marks(root: Node) -> list[tuple[int, int]]:
    """Where each item of a top-level `mailboxes:` list starts: the place of every mailbox,
    kept even when the data is loaded without marks."""
    if not isinstance(root, MappingNode):
        return []
    for key_node, value_node in root.value:
        if key_node.value == "mailboxes" and isinstance(value_node, SequenceNode):
            return [_mark(item) for item in value_node.value]
    return []


def _outside(root: Path, relpath: str) -> bool:
    """Whether the file resolves (symbolic links followed) outside the config root: a pull
    request could otherwise make the tool read, and echo parts of, any file of the runner."""
    real = Path(os.path.realpath(root / relpath))
    return not real.is_relative_to(os.path.realpath(root))


def _unusable(relpath: str, message: str, rule: str) -> Document:
    doc = Document(relpath, None)
    doc.problem(1, 1, message, rule)
    return doc


def read_raw(root: Path, relpath: str, limit: int = MAX_FILE_BYTES) -> bytes | Document:
    """A file's bytes (one more than `limit` at most, so that the size check sees it), or a
    Document with the reason it cannot be read. Only a regular file inside the root is read;
    it is opened without blocking (a FIFO named x.yaml must not hang validate) and checked on
    the open descriptor."""
    if _outside(root, relpath):
        return _unusable(
            relpath, "the file resolves outside the config root (a symbolic link?)", "outside-root"
        )
    try:
        fd = os.open(root / relpath, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        return _unusable(relpath, f"cannot read: {exc.strerror}", "io")
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return _unusable(relpath, "not a regular file", "not-a-file")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read(limit + 1)
    except OSError as exc:
        return _unusable(relpath, f"cannot read: {exc.strerror}", "io")
    finally:
        os.close(fd)


def read(
    root: Path, relpath: str, cache: Cache | None = None, budget: ParseBudget | None = None
) -> Document:
    raw = read_raw(root, relpath)
    if isinstance(raw, Document):
        return raw
    return parse_cached(raw, relpath, cache, budget)


def parse_cached(
    raw: bytes, relpath: str, cache: Cache | None, budget: ParseBudget | None = None
) -> Document:
    """parse(), through the cache: the bytes of a file, or the text a template rendered."""
    if cache is None:
        return parse(raw, relpath, budget)
    # The folder decides the schema, so it is part of the key; the name is not.
    key = cache.key("file", relpath.rpartition("/")[0].encode(), raw)
    hit = cache.get(key)
    if isinstance(hit, dict) and isinstance(hit.get("data"), dict):
        try:
            return Document(
                relpath,
                hit["data"],
                raw=raw,
                root_mark=(hit["root_mark"][0], hit["root_mark"][1]),
                item_marks=[(m[0], m[1]) for m in hit["item_marks"]],
                cache_key=key,
                clean=True,
            )
        except (KeyError, TypeError, IndexError):
            pass  # a mangled entry: parse, and the entry is rewritten
    doc = parse(raw, relpath, budget)
    doc.cache_key = key
    return doc


def remember(doc: Document, cache: Cache | None) -> None:
    """Cache a document that has no finding of its own: loaded and schema-valid."""
    if cache is None or doc.clean or doc.cache_key is None or doc.diagnostics or doc.data is None:
        return
    cache.put(
        doc.cache_key,
        {"data": doc.data, "root_mark": doc.root_mark, "item_marks": doc.item_marks},
    )


@dataclass
class Tree:
    """The files of a config repository, parsed, in sorted order."""

    root: Path
    settings: Document | None
    providers: list[Document]
    mailboxes: list[Document]
    diagnostics: list[Diagnostic] = field(default_factory=list)


TEMPLATE_SUFFIX = ".yaml.j2"


def _ignored_reason(directory: Path, name: str) -> str | None:
    """Why a file of providers.d/ or mailboxes.d/ is not read, or None when it is. Only
    dotfiles and READMEs are passed over without a word (SPEC §2): anything else that is not
    read is a warning, so that a renamed or misnamed file never drops entries silently."""
    path = directory / name
    if name.endswith((".yaml", TEMPLATE_SUFFIX)) and path.is_file():
        return None
    if path.is_dir():
        return f"a folder inside {directory.name}/ is not read (files of the folder itself are)"
    if name.endswith(".yaml") or name.endswith(TEMPLATE_SUFFIX):
        return "not a regular file"
    if name.endswith(".yml"):
        return "only *.yaml files are read (rename to .yaml)"
    if name.endswith((".yml.j2", ".j2", ".jinja", ".jinja2")):
        return f"only *.yaml and *{TEMPLATE_SUFFIX} files are read (rename to *{TEMPLATE_SUFFIX})"
    return f"only *.yaml files and *{TEMPLATE_SUFFIX} templates are read"


def _listing(root: Path, folder: str, notices: list[Diagnostic]) -> list[str]:
    directory = root / folder
    if not directory.is_dir():
        return []
    names: list[str] = []
    for name in sorted(os.listdir(directory)):
        if name.startswith(".") or name.upper().startswith("README"):
            continue
        reason = _ignored_reason(directory, name)
        if reason is None:
            names.append(f"{folder}/{name}")
        else:
            notices.append(
                Diagnostic(
                    f"{folder}/{name}", 1, 1, "warning", f"ignored: {reason}", "ignored-file"
                )
            )
    return names


def _near_settings(name: str) -> bool:
    """`mailgitops.yml`, `.mailgitops.yaml`, `Mailgitops.YAML`…: a settings file the tool
    would not read, whose author may believe its access rules apply."""
    stem, _, ext = name.lower().lstrip(".").strip().partition(".")
    return stem == "mailgitops" and ext in ("yaml", "yml", "json") and name != SETTINGS_FILE


def settings_problems(root: Path) -> list[Diagnostic]:
    """Settings that cannot be dodged: a settings file under another name beside the root is
    an error, not a file silently ignored."""
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return []
    return [
        Diagnostic(
            name,
            1,
            1,
            "error",
            f"a settings file must be named {SETTINGS_FILE}: this one would be ignored, "
            "access rules and all; rename it or remove it",
            "settings-name",
        )
        for name in names
        if _near_settings(name)
    ]


def settings_files(root: Path) -> list[str]:
    """The files that make up the settings and the config, for a cache key: a near-named
    settings file is part of it, so its appearance is never hidden by a cached result."""
    names = [SETTINGS_FILE] if os.path.lexists(root / SETTINGS_FILE) else []
    names += [d.file for d in settings_problems(root)]
    return names + config_files(root)


def is_config_root(root: Path) -> bool:
    return any(os.path.lexists(root / name) for name in ROOT_MARKERS)


def check_root(root: Path) -> None:
    """Refuse what is not a config root (SPEC §8): a directory with none of providers.d/,
    mailboxes.d/ and mailgitops.yaml is a wrong `-C` or the wrong working directory (inside
    mailboxes.d/, say). Planning it as an empty config would destroy everything managed."""
    if not root.exists():
        raise UsageError(f"config root {root} does not exist")
    if not root.is_dir():
        raise UsageError(f"config root {root} is not a directory")
    if not is_config_root(root):
        raise NotConfigRoot(
            f"{root} is not a mailgitops config root: it has none of {PROVIDERS_DIR}/, "
            f"{MAILBOXES_DIR}/ and {SETTINGS_FILE}. Run the command in the config repository "
            "(or pass -C DIR), or make one with `mailgitops init`."
        )


def config_files(root: Path) -> list[str]:
    """The provider and mailbox files that make up the config, in reading order."""
    ignored: list[Diagnostic] = []
    return _listing(root, PROVIDERS_DIR, ignored) + _listing(root, MAILBOXES_DIR, ignored)


Inspect = Callable[[Document, str], int]


def load_tree(root: Path, cache: Cache | None = None, inspect: Inspect | None = None) -> Tree:
    """Every file of the config, parsed under one ParseBudget. `inspect(doc, folder)` runs
    on each file as soon as it is parsed and returns its error count (the schema check): the
    budget stops parsing once the run has too many errors."""
    check_root(root)
    notices: list[Diagnostic] = settings_problems(root)
    # Whatever is there under the name is read: a directory or FIFO named mailgitops.yaml is
    # an error, never a config without settings.
    budget = ParseBudget()  # one for the whole run: many hostile files cost no more than one
    settings = (
        read(root, SETTINGS_FILE, budget=budget) if os.path.lexists(root / SETTINGS_FILE) else None
    )
    provider_files = _listing(root, PROVIDERS_DIR, notices)
    mailbox_files = _listing(root, MAILBOXES_DIR, notices)
    one: Callable[[str], Document] = lambda rel: read(root, rel, cache, budget)  # noqa: E731
    if any(name.endswith(TEMPLATE_SUFFIX) for name in provider_files + mailbox_files):
        # Imported here: templating builds on this module (parse, Document).
        from mailgitops import templating

        inputs = templating.template_inputs(root, settings)
        notices += inputs.diagnostics

        def one(rel: str) -> Document:
            if rel.endswith(TEMPLATE_SUFFIX):
                return templating.read_template(root, rel, cache, inputs, budget)
            return read(root, rel, cache, budget)

    folders: dict[str, list[Document]] = {PROVIDERS_DIR: [], MAILBOXES_DIR: []}
    for folder, files in ((PROVIDERS_DIR, provider_files), (MAILBOXES_DIR, mailbox_files)):
        for rel in files:
            stopped = budget.stopped()
            doc = _unusable(rel, *stopped) if stopped is not None else one(rel)
            budget.errors += len(doc.diagnostics) + (inspect(doc, folder) if inspect else 0)
            folders[folder].append(doc)
    return Tree(root, settings, folders[PROVIDERS_DIR], folders[MAILBOXES_DIR], notices)


def locate(data: Any, path: Any) -> tuple[int, int]:
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


def key_position(data: Any, key: str | int) -> tuple[int, int]:
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
