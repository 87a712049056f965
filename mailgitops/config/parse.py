"""Parsing one config file: its bytes to a Document, with a place (line, column) for every key
and item.

Like octoDNS's loader, mappings and sequences carry their marks, so every later check can name
FILE:LINE:COL. Unlike plain PyYAML it refuses duplicate keys, flags YAML 1.1 readings that
change meaning, refuses alias bombs before expanding them (config/budget.py), and turns every
decoding or syntax problem into a Diagnostic."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

from mailgitops.config.budget import (
    MAX_DEPTH,
    MAX_FILE_BYTES,
    AliasBomb,
    ParseBudget,
    TooDeep,
    check_expansion,
    too_deep,
)
from mailgitops.config.loaders import (
    FastLoader,
    MarkedDict,
    MarkedList,
    MarkingLoader,
    place_of_node,
    secret_nodes,
)
from mailgitops.diagnostics import Diagnostic


@dataclass
class Document:
    """One YAML file: its data (None when it could not be read) and its diagnostics."""

    path: str  # relative to the config root, with forward slashes
    data: Any
    diagnostics: list[Diagnostic] = field(default_factory=list)
    raw: bytes = b""
    root_place: tuple[int, int] = (1, 1)
    item_places: list[tuple[int, int]] = field(default_factory=list)
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

    def error(self, line: int, col: int, message: str, rule: str) -> None:
        self.diagnostics.append(Diagnostic(self.path, line, col, "error", message, rule))


class ParsedCache(Protocol):
    """What reading a config asks of a cache (cache.Cache is one): files parsed before and the
    text templates rendered before, for these exact bytes. Declared here, so that config/ does
    not import the cache: the cache is a layer above that callers hand in."""

    def document(self, relpath: str, raw: bytes) -> Document | None: ...

    def remember_document(self, doc: Document) -> None: ...

    def rendered(self, relpath: str, raw: bytes, inputs: bytes) -> str | None: ...

    def remember_rendered(self, relpath: str, raw: bytes, inputs: bytes, text: str) -> None: ...


def _tab_at(text: str, mark: Any) -> bool:
    """libyaml's message for a tab does not name it; look at the offending character."""
    if mark is None:
        return False
    lines = text.splitlines()
    if mark.line >= len(lines):
        return False
    line = lines[mark.line]
    return "\t" in line[: mark.column + 1]


def _place_at(raw: bytes, offset: int) -> tuple[int, int]:
    before = raw[:offset]
    line = before.count(b"\n") + 1
    col = offset - (before.rfind(b"\n") + 1) + 1
    return line, col


def parse(raw: bytes, relpath: str, budget: ParseBudget | None = None) -> Document:
    """Parse one YAML file's bytes. Never raises for bad input: problems go into the Document.
    `budget` is charged before anything is composed; without one, the file gets a fresh
    budget of its own."""
    doc = Document(relpath, None, raw=raw)
    if len(raw) > MAX_FILE_BYTES:
        doc.error(
            1, 1, f"file is {len(raw):,} bytes; the limit is {MAX_FILE_BYTES:,}", "file-too-large"
        )
        return doc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line, col = _place_at(raw, exc.start)
        doc.error(
            line,
            col,
            f"not UTF-8: byte 0x{raw[exc.start]:02x} cannot be decoded; save the file as UTF-8",
            "encoding",
        )
        return doc
    if not text.strip():
        doc.error(1, 1, "file is empty", "empty-file")
        return doc
    if too_deep(text):
        doc.error(1, 1, f"the document is nested more than {MAX_DEPTH} levels deep", "yaml-depth")
        return doc
    refusal = (budget or ParseBudget()).refusal(text)
    if refusal is not None:
        doc.error(1, 1, *refusal)
        return doc
    fast = FastLoader(text)
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
    loader = MarkingLoader(text)
    data = _load(loader, text, doc)
    for line, col, message, rule in loader.diagnostics:
        doc.error(line, col, message, rule)
    return data


def _load(loader: FastLoader | MarkingLoader, text: str, doc: Document) -> Any:
    """Compose and construct one document; a problem goes into `doc` and gives None."""
    try:
        node = loader.get_single_node()
        if node is None:
            doc.error(1, 1, "file holds no YAML document (only comments?)", "empty-file")
            return None
        if "*" in text:
            check_expansion(node)
        doc.root_place = place_of_node(node)
        doc.item_places = _item_places(node)
        if isinstance(loader, MarkingLoader) and "*" in text:
            loader.secret_ids = secret_nodes(node)
        return loader.construct_document(node)
    except AliasBomb as exc:
        doc.error(1, 1, str(exc), "alias-bomb")
    except TooDeep:
        doc.error(
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
            doc.error(line, col, "a tab character: YAML indentation must use spaces", "yaml-tab")
        else:
            context = f" ({exc.context})" if exc.context and exc.problem else ""
            doc.error(line, col, f"invalid YAML: {problem}{context}", "yaml-syntax")
    except yaml.YAMLError as exc:  # ReaderError: control characters such as NUL
        position = getattr(exc, "position", 0)
        line = text[:position].count("\n") + 1
        col = position - (text.rfind("\n", 0, position) + 1) + 1
        reason = getattr(exc, "reason", None) or "unreadable YAML"
        doc.error(line, col, f"invalid YAML: {reason}", "yaml-syntax")
    except RecursionError:
        doc.error(1, 1, "the document is nested too deeply", "yaml-depth")
    finally:
        loader.dispose()
    return None


def _item_places(root: Node) -> list[tuple[int, int]]:
    """Where each item of a top-level `mailboxes:` list starts: the place of every mailbox,
    kept even when the data is loaded without marks."""
    if not isinstance(root, MappingNode):
        return []
    for key_node, value_node in root.value:
        if key_node.value == "mailboxes" and isinstance(value_node, SequenceNode):
            return [place_of_node(item) for item in value_node.value]
    return []
