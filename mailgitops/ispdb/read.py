"""Reading one ISPDB file safely: hostile input is expected. A size limit before reading,
strict UTF-8, and expat with DOCTYPE/ENTITY declarations refused outright, so there is no
entity expansion and no external entity at all."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from xml.etree.ElementTree import Element, TreeBuilder
from xml.parsers import expat

from mailgitops.fsutil import TooLarge, read_bounded

MAX_FILE_BYTES: Final = 1024 * 1024
_ENCODING_RE: Final = re.compile(
    rb"""^(?:\xef\xbb\xbf)?\s*<\?xml[^>]*?\bencoding\s*=\s*["']([^"']*)["']"""
)


@dataclass(frozen=True)
class Skip:
    """A file that cannot be imported faithfully, and why."""

    reason: str


class _Refused(Exception):
    """Raised from expat handlers to stop at a DOCTYPE or ENTITY declaration."""


def read_limited(path: Path) -> bytes | Skip:
    """The file's bytes, or a Skip: not a regular file, unreadable, or over MAX_FILE_BYTES."""
    if path.exists() and not path.is_file():
        # A directory, FIFO or device: reading a FIFO would block the whole import.
        return Skip("not a regular file")
    try:
        return read_bounded(path, MAX_FILE_BYTES)
    except TooLarge:
        return Skip("larger than 1 MiB; not an ISPDB file")
    except OSError as exc:
        return Skip(f"cannot be read: {exc.strerror or exc}")


def parse_xml(data: bytes) -> Element | Skip:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Skip(f"not UTF-8 (invalid byte at offset {exc.start})")
    declared = _ENCODING_RE.match(data)
    if declared:
        encoding = declared.group(1).decode("ascii", "replace").lower()
        if encoding not in ("utf-8", "utf8", "us-ascii", "ascii"):
            return Skip(f"declares encoding {encoding!r}; only UTF-8 files are read")

    builder = TreeBuilder()
    # The encoding argument overrides whatever the document declares: we checked UTF-8.
    parser = expat.ParserCreate(encoding="utf-8")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)

    def refuse(*_args: Any) -> None:
        raise _Refused

    # A clientConfig never needs a DTD; refusing it removes entity expansion ("billion
    # laughs") and external entities before they can happen.
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse  # type: ignore[assignment]
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(data, True)
    except _Refused:
        return Skip("not a clientConfig document (DOCTYPE/ENTITY declarations are refused)")
    except expat.ExpatError as exc:
        message = expat.errors.messages[exc.code] if exc.code else str(exc)
        return Skip(f"broken XML: {message} at line {exc.lineno}, column {exc.offset + 1}")
    root = builder.close()
    if root.tag != "clientConfig":
        return Skip(f"not a clientConfig document (root element is <{root.tag}>)")
    return root
