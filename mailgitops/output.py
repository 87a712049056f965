"""All terminal output goes through here: results to stdout, other messages to stderr, colour
only on a TTY and never when NO_COLOR is set (https://no-color.org)."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import sys
import unicodedata
from typing import TextIO

_CODES = {"red": "31", "green": "32", "yellow": "33", "cyan": "36", "bold": "1", "dim": "2"}
# Characters a reader cannot see, or that a terminal interprets (ESC, BEL, C1 controls such
# as the OSC introducer, bidi overrides, zero-width characters, line separators).
_INVISIBLE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})
# The last step looks only at what is not printable ASCII (a line break, a colour code of
# paint(), a letter such as é, or something to escape): C-speed for the common output.
_SUSPECT = re.compile(r"\x1b\[(?:" + "|".join(_CODES.values()) + r"|0)m|[^\x20-\x7e\n]")


def _escape_char(ch: str) -> str:
    if ord(ch) > 0xFFFF:  # as a UTF-16 surrogate pair, the way JSON writes it
        units = ch.encode("utf-16-be")
        return "".join(f"\\u{units[i] << 8 | units[i + 1]:04x}" for i in (0, 2))
    return f"\\u{ord(ch):04x}"


def visible(text: str) -> str:
    """The one escaping step for text from a config, a state or the system (key names, file
    names, addresses, messages): every invisible or terminal-interpreted character, line
    breaks included, is written as a `\\uXXXX` escape, so it can neither paint the terminal,
    hide a change, nor forge a line. Inside a JSON string the escape means the same
    character, so JSON output stays valid and exact."""
    if text.isprintable():  # the common case, fast: no Cc/Cf/Z*/surrogates at all
        return text
    return "".join(
        _escape_char(ch) if unicodedata.category(ch) in _INVISIBLE else ch for ch in text
    )


def _final(text: str) -> str:
    """The last step before the terminal: whatever a caller forgot to pass through visible(),
    nothing but our own line breaks and colour codes reaches the stream raw."""
    if _printable(text):  # the common case (no colour, no control): no copy, no regex
        return text
    return _SUSPECT.sub(_keep_or_escape, text)


def _printable(text: str, step: int = 1 << 20) -> bool:
    """Whether `text` holds only printable characters and line breaks: str.isprintable over
    slices of 1 MB, so a 100 MB plan costs neither a second nor a copy of itself."""
    return all(
        text[i : i + step].replace("\n", "").isprintable() for i in range(0, len(text), step)
    )


def _keep_or_escape(match: re.Match[str]) -> str:
    found = match.group()
    if len(found) > 1:  # a colour code of paint()
        return found
    return _escape_char(found) if unicodedata.category(found) in _INVISIBLE else found


def use_color(stream: TextIO) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def paint(text: str, color: str, enabled: bool) -> str:
    if not enabled or color not in _CODES:
        return text
    return f"\033[{_CODES[color]}m{text}\033[0m"


def out(text: str = "", end: str = "\n") -> None:
    """A result (validate findings, a plan, show): stdout."""
    if sys.stdout is None:  # started with stdout closed (`mailgitops plan >&-`)
        raise OSError(errno.EBADF, "standard output is closed")
    sys.stdout.write(_final(text + end))


def discard_stdout() -> None:
    """After writing to stdout failed (a full disk, a closed descriptor): what is still in its
    buffer goes to /dev/null, so that Python's flush at exit does not fail a second time."""
    if sys.stdout is None:
        return
    with contextlib.suppress(OSError, ValueError):
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)


def err(text: str, end: str = "\n") -> None:
    """A message that is not the result: stderr."""
    sys.stderr.write(_final(text + end))


def error(message: str) -> None:
    err(f"{paint('error', 'red', use_color(sys.stderr))}: {message}")


def warn(message: str) -> None:
    err(f"{paint('warning', 'yellow', use_color(sys.stderr))}: {message}")


def github_escape(text: str, prop: bool = False) -> str:
    """Text for a GitHub Actions workflow command (`::error file=F,line=L::MESSAGE`), through
    visible() first: a control character in a key name must not reach the log raw."""
    text = visible(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        text = text.replace(":", "%3A").replace(",", "%2C")
    return text


class Progress:
    """A progress bar on stderr for long runs, drawn only when stderr is a terminal (a CI log
    gets the lines alone). `line()` prints a result line on stdout without tearing the bar."""

    WIDTH = 30

    def __init__(self, total: int, label: str, minimum: int = 20, unit: str = "") -> None:
        self.total = total
        self.done = 0
        self.label = f"{label} " if label else ""
        self.unit = unit
        isatty = getattr(sys.stderr, "isatty", None)
        self.shown = total >= minimum and bool(isatty and isatty())

    def _clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()

    def _draw(self) -> None:
        if self.shown:
            filled = self.WIDTH * self.done // max(self.total, 1)
            bar = "#" * filled + "." * (self.WIDTH - filled)
            sys.stderr.write(f"\r{self.label}[{bar}] {self.done}/{self.total}{self.unit}")
            sys.stderr.flush()

    def line(self, text: str) -> None:
        self._clear()
        out(text)
        sys.stdout.flush()
        self._draw()

    def step(self) -> None:
        self.done += 1
        self._draw()

    def close(self) -> None:
        self._clear()
