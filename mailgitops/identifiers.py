"""Identifiers are matched whole and shown as they are (SPEC §9): an address, provider name,
owner, user, domain or host must not hold a character a reader cannot see. A trailing
newline, a zero-width space or a right-to-left override makes `alice@example.com` another
mailbox that reads like alice's in a terminal and in a pull-request comment.

Refused: every control, format, surrogate, private-use and unassigned character (Unicode
categories C*), line and paragraph separators, spaces other than U+0020, and the letters and
marks that render as nothing (Hangul fillers, variation selectors, …). The config's checks
(validate/identifiers.py) and the state's (state/validation.py) both use `invisible`."""

from __future__ import annotations

import unicodedata

# Not in a C or Z category, yet they show as nothing (or change the glyph before them).
_BLANK = frozenset(
    {0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x2800, 0x3164, 0xFFA0}
    | set(range(0x180B, 0x1810))
    | set(range(0xFE00, 0xFE10))
    | set(range(0xE0100, 0xE01F0))
)


_CONTROL_NAMES = {
    0x00: "NULL",
    0x09: "TAB",
    0x0A: "LINE FEED",
    0x0D: "CARRIAGE RETURN",
    0x1B: "ESCAPE",
    0x7F: "DELETE",
}


def invisible(text: str) -> str | None:
    """A description of the first character of `text` that a reader cannot see (`U+200B ZERO
    WIDTH SPACE`), or None when there is none."""
    if text.isascii() and text.isprintable():
        # Printable ASCII is letters, digits, punctuation and U+0020: nothing invisible. The
        # usual identifier, and a check that runs for every one of a million mailboxes.
        return None
    for char in text:
        if char == " ":
            continue
        category = unicodedata.category(char)
        if category[0] in "CZ" or ord(char) in _BLANK:
            name = unicodedata.name(char, _CONTROL_NAMES.get(ord(char), "CONTROL CHARACTER"))
            return f"U+{ord(char):04X} {name}"
    return None


def invalid_reason(what: str, text: str) -> str | None:
    """`what` holds an invisible character: the message, with the character by code point
    (never the text itself, which may reorder the line it is printed on)."""
    found = invisible(text)
    if found is None:
        return None
    return (
        f"{what} contains an invisible or control character ({found}): identifiers must "
        "read as they are"
    )
