"""What parsing may cost: the size of a file, the depth of its nesting, the nodes its aliases
expand to, and the YAML nodes of one file and of a whole run (docs/reliability.md). Every
limit is checked before PyYAML composes the nodes it would cost."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from mailgitops.config.loaders import BaseLoader
from mailgitops.errors import UsageError

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


class AliasBomb(Exception):
    """The aliases of a document expand it past MAX_EXPANDED_NODES."""


class TooDeep(Exception):
    """The aliases of a document nest it past MAX_DEPTH."""


def check_expansion(root: Node) -> None:
    """Count the nodes the document would have with every alias expanded, without expanding:
    post-order over the node graph, memoized by node identity. Measures the nesting depth of
    the expanded data too: aliases nest it without nesting events, past what too_deep saw
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
                    raise TooDeep
            if sizes[nid] > MAX_EXPANDED_NODES and sizes[nid] > MAX_EXPANSION_FACTOR * len(sizes):
                raise AliasBomb(
                    "aliases expand this document beyond "
                    f"{MAX_EXPANDED_NODES:,} nodes (an alias bomb?)"
                )
            continue
        if nid in sizes:
            continue
        if nid in on_path:
            raise AliasBomb("an alias refers to a node that contains it (a recursive structure)")
        on_path.add(nid)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)


def too_deep(text: str) -> bool:
    """Whether the document nests more than MAX_DEPTH collections, by our limit alone.

    libyaml since 0.2.6 has a nesting limit of its own, checked while it scans ahead, so the C
    event stream can fail before it has emitted the levels we count. Its failure is therefore
    no verdict: the pure-Python parser, which has no such limit and emits events after at most
    a 1,024-character look-ahead, counts again and stops at our limit or at the syntax error.
    """
    if not _DEEP_HINT.search(text) and _flow_depth_bound(text) <= MAX_DEPTH:
        return False
    try:
        return _deeper_than_limit(yaml.parse(text, Loader=BaseLoader))
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
