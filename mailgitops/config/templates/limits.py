"""The bounds of one render, and the checks that keep a template inside them: every way to
spend time or memory is bounded (loops, calls, the operators that grow values, every buffer
joined and the output itself), estimated before a C call allocates where it can be."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from mailgitops.config.budget import MAX_FILE_BYTES

# The bounds of one render. A roster of 100,000 mailboxes stays far below each of them.
TIME_BUDGET_SECONDS = 10.0  # one template
RUN_TIME_BUDGET_SECONDS = 30.0  # all templates of one run: many hostile files stay bounded too
MAX_OUTPUT_BYTES = MAX_FILE_BYTES  # what a hand-written YAML file may be
MAX_ITERATIONS = 2_000_000  # loop iterations of one render, all loops together
MAX_RANGE = 100_000  # items of one range()
MAX_CALL_DEPTH = 40  # nested macro calls (recursion)
MAX_INT_ARGUMENT = MAX_FILE_BYTES  # a width or count beyond this can only be a bomb
MAX_ITEMS = 1_000_000  # items of a list or tuple built by `*` or `+`
MAX_INT_BITS = 4096  # `**` and `*` on integers
MEMORY_BUDGET_BYTES = 512 * 1024 * 1024  # growth of the process while rendering
# A template is short (the many entries come from data): a bigger one would take Jinja2 seconds
# to compile, before any bound of the render can look.
MAX_TEMPLATE_BYTES = 256 * 1024
MAX_DATA_BYTES = MAX_FILE_BYTES  # all data files together
_CHECK_EVERY = 64  # iterations between two looks at the clock and the memory
# a format width of 8+ digits, `%*d`, or a width taken from an argument: `{0:{1}}`
_BIG_WIDTH = re.compile(r"\d{8,}|%[-#0 +]*\*|\{[^{}]*:[^{}]*\{")


class TemplateLimit(Exception):
    """A render went past one of the bounds above."""


def current_rss() -> int | None:
    """The resident memory of this process, where /proc tells it cheaply."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class RenderBudget:
    deadline: float
    rss_start: int | None
    iterations: int = 0
    depth: int = 0
    produced: int = 0  # bytes returned by calls and operators, all together
    checks: int = 0

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateLimit(
                f"the render took longer than its time budget ({TIME_BUDGET_SECONDS:g} s for a "
                f"template, {RUN_TIME_BUDGET_SECONDS:g} s for all templates of the config; a "
                "loop bomb?)"
            )
        self.checks += 1
        # /proc is read every few checks only: each call and filter checks, and a roster of
        # 10,000 makes tens of thousands of them
        if self.rss_start is not None and self.checks % _CHECK_EVERY == 0:
            rss = current_rss()
            if rss is not None and rss - self.rss_start > MEMORY_BUDGET_BYTES:
                raise TemplateLimit(
                    f"the render used more than {MEMORY_BUDGET_BYTES // 2**20} MiB of memory"
                )

    def tick(self) -> None:
        self.iterations += 1
        if self.iterations > MAX_ITERATIONS:
            raise TemplateLimit(
                f"the loops of this template ran more than {MAX_ITERATIONS:,} iterations "
                "(a loop bomb?)"
            )
        if self.iterations % _CHECK_EVERY == 0:
            self.check()  # the memory every _CHECK_EVERY ** 2 iterations

    def produce(self, value: Any) -> Any:
        if value is None or type(value) in (bool, int, float):
            return value
        size = size_of(value)
        if size > MAX_OUTPUT_BYTES:
            raise TemplateLimit(
                f"a value of {size:,} characters or items is larger than the output limit "
                f"of {MAX_OUTPUT_BYTES:,} bytes"
            )
        self.produced += size
        if self.produced > 16 * MAX_OUTPUT_BYTES:
            raise TemplateLimit(
                f"the template built more than {16 * MAX_OUTPUT_BYTES:,} characters in all"
            )
        return value


def size_of(value: Any) -> int:
    return len(value) if isinstance(value, (str, list, tuple, dict)) else 0


def check_int(value: Any) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT_ARGUMENT:
        raise TemplateLimit(f"the number {value:.3g} is too large for an argument here")


def check_format(text: Any) -> None:
    if isinstance(text, str) and _BIG_WIDTH.search(text):
        raise TemplateLimit("a format with a width of 8 digits or more, or `*`, is refused")


def check_join(items: Any, sep: Any) -> None:
    """`join` is one C call: estimate its result before it allocates."""
    if isinstance(items, (list, tuple)):
        estimate = size_of(sep) * max(len(items) - 1, 0)
        estimate += sum(size_of(x) if isinstance(x, str) else 16 for x in items)
        if estimate > MAX_OUTPUT_BYTES:
            raise TemplateLimit(
                f"joining these values would give about {estimate:,} characters, more than "
                f"the output limit of {MAX_OUTPUT_BYTES:,} bytes"
            )


def check_replace(text: Any, old: Any, new: Any) -> None:
    if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
        count = len(text) + 1 if not old else text.count(old)
        if len(text) + count * len(new) > MAX_OUTPUT_BYTES:
            raise TemplateLimit("this replace would give more than the output limit")


def _join_filter(values: list[Any], kwargs: dict[str, Any]) -> None:
    if values:
        items = values[0]
        check_join(
            list(items) if isinstance(items, (list, tuple)) else items,
            values[1] if len(values) > 1 else kwargs.get("d", ""),
        )


def _replace_filter(values: list[Any], kwargs: dict[str, Any]) -> None:
    if len(values) >= 3:
        check_replace(values[0], values[1], values[2])


def _format_filter(values: list[Any], kwargs: dict[str, Any]) -> None:
    if values:
        check_format(values[0])


def _indent_filter(values: list[Any], kwargs: dict[str, Any]) -> None:
    if values and isinstance(values[0], str):
        width = values[1] if len(values) > 1 else kwargs.get("width", 4)
        lines = values[0].count("\n") + 1
        if isinstance(width, int) and lines * width + len(values[0]) > MAX_OUTPUT_BYTES:
            raise TemplateLimit("this indent would give more than the output limit")


def _slice_filter(values: list[Any], kwargs: dict[str, Any]) -> None:
    slices = values[1] if len(values) > 1 else kwargs.get("slices")
    if isinstance(slices, int) and slices > MAX_RANGE:
        raise TemplateLimit(f"slice() into more than {MAX_RANGE:,} parts")


# The filters that are one C call, or a loop of them, whose result can be far larger than
# their arguments: estimated before they run.
FILTER_CHECKS: dict[str, Callable[[list[Any], dict[str, Any]], None]] = {
    "join": _join_filter,
    "replace": _replace_filter,
    "format": _format_filter,
    "indent": _indent_filter,
    "slice": _slice_filter,
}


def check_power(left: Any, right: Any) -> None:
    if (
        isinstance(left, int)
        and isinstance(right, int)
        and right > 0
        and max(abs(left), 2).bit_length() * right > MAX_INT_BITS
    ):
        raise TemplateLimit(f"`**` would make a number of more than {MAX_INT_BITS} bits")


def check_product(left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int):
        if abs(left).bit_length() + abs(right).bit_length() > MAX_INT_BITS:
            raise TemplateLimit(f"`*` would make a number of more than {MAX_INT_BITS} bits")
        return
    for seq, count in ((left, right), (right, left)):
        if isinstance(seq, (str, list, tuple)) and isinstance(count, int):
            limit = MAX_OUTPUT_BYTES if isinstance(seq, str) else MAX_ITEMS
            if len(seq) * count > limit:
                raise TemplateLimit(
                    f"`*` would make a value of {len(seq) * count:,} characters or items; "
                    f"the limit is {limit:,}"
                )


def collect(parts: Iterable[str], too_big: str, tick: Callable[[], None] | None) -> str:
    """Text made of parts, refused as soon as it passes the output limit."""
    if isinstance(parts, list):  # a macro's buffer: already in memory, measured in C
        if sum(map(len, parts)) > MAX_OUTPUT_BYTES:
            raise TemplateLimit(f"{too_big} ({MAX_OUTPUT_BYTES:,} bytes)")
        return "".join(parts)
    size = 0
    collected: list[str] = []
    for part in parts:
        size += len(part)
        if size > MAX_OUTPUT_BYTES:
            raise TemplateLimit(f"{too_big} ({MAX_OUTPUT_BYTES:,} bytes)")
        collected.append(part)
        if tick is not None:
            tick()
    return "".join(collected)
