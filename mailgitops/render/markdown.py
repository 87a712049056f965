"""The plan as a GitHub pull-request comment (SPEC §5), rendered from
`mailgitops/templates/plan.md.j2`: the summary sentence, refusals and warnings above a
`<details>` fold that holds one table row per change.

GitHub refuses comments over 65,536 characters, so the comment is fitted into a budget: the
lists are cut at whole items, in order of importance (refusals, failed connection checks,
warnings, changes, unmanaged entries), and each cut list says how many of its items are not
shown."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, Template

from mailgitops.connect.report import summary_line as check_summary_line
from mailgitops.connect.results import ProviderResult
from mailgitops.plan.changes import Change, Unmanaged
from mailgitops.plan.result import Plan
from mailgitops.render.text import (
    NO_CHECKS_LINE,
    attribute_lines,
    change_notes,
    escape_invisible,
    failed_checks_line,
    unreadable_line,
)

DEFAULT_BUDGET = 60_000  # GitHub's limit is 65,536: room for a bot's header or footer
# One attribute line in a cell: a 20 kB signature would crowd out every other row; the CI log
# and the plan JSON keep it whole.
MAX_LINE = 300

# Every character that could leave a table cell or change how its text looks. A backslash
# becomes an entity, so every backslash in the output is one of these escapes.
_CELL_ESCAPES = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        "\\": "&#92;",
        "`": "&#96;",
        "|": "\\|",
        "*": "\\*",
        "_": "\\_",
        "~": "\\~",
        "[": "\\[",
        "]": "\\]",
        "\n": "<br>",
    }
)


# What makes GitHub notify someone or link somewhere: `@user`, `@org/team`, an address's
# `@` (a mailto link), `#123`, `http://…`, `www.…`. A zero-width space, written as an entity
# (the visible() step would escape the raw character), breaks each of them.
_ZWSP = "&#8203;"
_NOTIFIERS = re.compile(r"@|(?<!&)#|(?<=:)//|(?<=www)\.", re.IGNORECASE)


def _quiet(text: str) -> str:
    """`text` (already escaped: `&#92;` is ours, so a `#` after `&` is not a reference)."""
    return _NOTIFIERS.sub(
        lambda m: m.group() + _ZWSP if m.group() in "@#" else _ZWSP + m.group(), text
    )


def md_cell(value: object) -> str:
    """Text safe inside a Markdown table cell, and so anywhere inline; invisible characters
    (bidi overrides, zero-width) are shown escaped so a reviewer sees what is there; nothing
    in it mentions anyone or links anywhere."""
    return _md_cell(str(value))


# Fitting the comment into its budget draws it a dozen times (_fit): each cell is escaped once.
@functools.lru_cache(maxsize=65536)
def _md_cell(text: str) -> str:
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return _quiet("\n".join(escape_invisible(line) for line in lines).translate(_CELL_ESCAPES))


def pluralize(count: int, noun: str, plural: str | None = None) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {plural or noun + 's'}"


@dataclass(frozen=True)
class Row:
    action: str
    kind: str
    id: str
    lines: tuple[str, ...]  # the Changes cell, one attribute or note per line


@dataclass(frozen=True)
class RefusalLine:
    is_message: bool  # a refusal's message starts a paragraph; its details follow as items
    text: str


def _clip(line: str) -> str:
    if len(line) <= MAX_LINE:
        return line
    return f"{line[:MAX_LINE]}… ({len(line) - MAX_LINE} more characters)"


def _row(change: Change) -> Row:
    upsert = change.action in ("update", "adopt")
    lines = []
    for attr in attribute_lines(change):
        if upsert and attr.note is None and attr.op != "~":
            # Added or removed by an update: both sides, so the reader sees which it was.
            body = " → ".join(v if v is not None else "(unset)" for v in (attr.old, attr.new))
        else:
            body = attr.body("→")
        lines.append(_clip(f"{attr.path}: {body}"))
    if upsert and not lines:
        lines.append("(the live attributes already match the config)")
    lines += [_clip(f"note: {n}") for n in change_notes(change)]
    return Row(change.action, change.kind, change.id, tuple(lines))


@functools.cache
def _template() -> Template:
    env = Environment(
        loader=PackageLoader("mailgitops", "templates"),
        autoescape=False,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["md_cell"] = md_cell
    env.filters["pluralize"] = pluralize
    return env.get_template("plan.md.j2")


def _fit(draw: Callable[[list[int]], str], sizes: Sequence[int], budget: int) -> str:
    """The document with as many items of each list as fit, earlier lists first."""
    shown = list(sizes)
    text = draw(shown)
    if len(text) <= budget:
        return text
    for i, size in enumerate(sizes):
        shown[i + 1 :] = [0] * (len(sizes) - i - 1)
        shown[i] = size
        if len(draw(shown)) <= budget:
            continue
        # With some items hidden the "… N more" line is present, and the length grows with
        # every item shown: the largest count that fits is found by bisection.
        low, high = 0, size - 1
        while low < high:
            mid = (low + high + 1) // 2
            shown[i] = mid
            if len(draw(shown)) <= budget:
                low = mid
            else:
                high = mid - 1
        shown[i] = low
    text = draw(shown)
    if len(text) > budget:
        raise ValueError(f"a plan comment does not fit in {budget} characters")
    return text


def _checks_line(plan: Plan) -> str | None:
    """`plan --check`: the one-sentence outcome, or None when no check ran."""
    if plan.checks is None:
        return None
    if not plan.checks:
        return NO_CHECKS_LINE
    return "Connection checks: " + check_summary_line(
        [ProviderResult.from_json(r) for r in plan.checks]
    )


def _check_warnings(plan: Plan) -> list[str]:
    return [
        f"check {r['name']}: {c['server']} {c['target']} {c['step']}: {c['message']}"
        for r in plan.checks or ()
        for c in r["checks"]
        if c["status"] == "warning"
    ]


def render(plan: Plan, budget: int = DEFAULT_BUDGET) -> str:
    """The comment, at most `budget` characters including its final newline."""
    refusal_lines = [
        RefusalLine(is_message, text)
        for r in plan.refusals
        for is_message, text in [(True, r.message), *((False, d) for d in r.details)]
    ]
    warnings = list(plan.warnings)
    if plan.unreadable_secrets:
        warnings.append(unreadable_line(plan))
    failed_checks = plan.failed_checks()
    warnings += _check_warnings(plan)
    rows = [_row(c) for c in plan.changes]
    unmanaged: list[Unmanaged] = list(plan.unmanaged)
    lists: list[Sequence[Any]] = [refusal_lines, failed_checks, warnings, rows, unmanaged]
    template = _template()

    def draw(shown: list[int]) -> str:
        parts = [items[:n] for items, n in zip(lists, shown, strict=True)]
        hidden = [len(items) - n for items, n in zip(lists, shown, strict=True)]
        return template.render(
            summary=plan.summary_line(),
            total_changes=len(rows),
            refusal_lines=parts[0],
            refusals_hidden=hidden[0],
            failed_checks=parts[1],
            failed_checks_hidden=hidden[1],
            warnings=parts[2],
            warnings_hidden=hidden[2],
            rows=parts[3],
            rows_hidden=hidden[3],
            unmanaged=parts[4],
            unmanaged_hidden=hidden[4],
            failed_checks_line=failed_checks_line(plan),
            checks_line=_checks_line(plan),
        )

    return _fit(draw, [len(items) for items in lists], budget)
