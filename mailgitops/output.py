"""All terminal output goes through here: results to stdout, other messages to stderr, colour
only on a TTY and never when NO_COLOR is set (https://no-color.org)."""

from __future__ import annotations

import os
import sys
from typing import TextIO

_CODES = {"red": "31", "green": "32", "yellow": "33", "cyan": "36", "bold": "1", "dim": "2"}


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
    sys.stdout.write(text + end)


def err(text: str, end: str = "\n") -> None:
    """A message that is not the result: stderr."""
    sys.stderr.write(text + end)


def error(message: str) -> None:
    err(f"{paint('error', 'red', use_color(sys.stderr))}: {message}")


def warn(message: str) -> None:
    err(f"{paint('warning', 'yellow', use_color(sys.stderr))}: {message}")


def github_escape(text: str, prop: bool = False) -> str:
    """Text for a GitHub Actions workflow command (`::error file=F,line=L::MESSAGE`)."""
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        text = text.replace(":", "%3A").replace(",", "%2C")
    return text


class Progress:
    """A progress bar on stderr for long runs, drawn only when stderr is a terminal (a CI log
    gets the lines alone). `line()` prints a result line on stdout without tearing the bar."""

    WIDTH = 30

    def __init__(self, total: int, label: str, minimum: int = 20) -> None:
        self.total = total
        self.done = 0
        self.label = label
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
            sys.stderr.write(f"\r{self.label} [{bar}] {self.done}/{self.total}")
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
