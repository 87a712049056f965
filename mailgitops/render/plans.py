"""Output formats of a plan, chosen by name (`plan --format`), beside the diagnostics reporters
(render/diagnostics.py). Each renderer returns the whole document ending in one newline; the
caller prints it as it is (`output.out(..., end="")`)."""

from __future__ import annotations

from collections.abc import Callable

from mailgitops.plan.result import Plan
from mailgitops.render import json, text

Renderer = Callable[[Plan, bool], str]

# json and markdown are read by programs and by GitHub, never by a terminal: no colour.
RENDERERS: dict[str, Renderer] = {
    "text": text.render,
    "json": lambda plan, _color: json.render(plan),
    "markdown": lambda plan, _color: _markdown(plan),
}


def _markdown(plan: Plan) -> str:
    # Jinja2 is imported only for the format that needs it.
    from mailgitops.render import markdown

    return markdown.render(plan)


def render(plan: Plan, fmt: str, color: bool) -> str:
    """`fmt` is one of RENDERERS (the CLI restricts --format to them)."""
    return RENDERERS[fmt](plan, color)
