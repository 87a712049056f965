"""`mailgitops validate`: schema and semantic checks; no state and no secrets needed."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from mailgitops import output
from mailgitops.cache import open_cache
from mailgitops.commands.common import add_cache_argument, add_root_argument
from mailgitops.diagnostics import Diagnostic
from mailgitops.output import github_escape
from mailgitops.validate import check_config


def register(sub: argparse._SubParsersAction[Any]) -> None:
    parser = sub.add_parser(
        "validate",
        help="check the config (schema and semantic rules)",
        description="Check the config: JSON Schema and semantic rules. "
        "Needs no state and no secrets.",
    )
    add_root_argument(parser)
    add_cache_argument(parser)
    parser.add_argument("--format", choices=("text", "json", "github"), default="text")
    parser.add_argument("--strict", action="store_true", help="warnings fail too")
    parser.set_defaults(func=run)


def render_text(diags: list[Diagnostic], color: bool) -> str:
    lines = []
    for d in diags:
        sev = output.paint(d.severity, "red" if d.severity == "error" else "yellow", color)
        lines.append(
            f"{output.visible(d.file)}:{d.line}:{d.col}: {sev}: "
            f"{output.visible(d.message)} [{d.rule}]"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    checked = check_config(Path(args.root), open_cache(disabled=args.no_cache))
    diags = checked.diagnostics.sorted()
    errors = sum(1 for d in diags if d.severity == "error")
    warnings = len(diags) - errors
    failed = errors > 0 or (args.strict and warnings > 0)
    if args.format == "json":
        output.out(
            json.dumps(
                {
                    "format_version": 1,
                    "valid": not failed,
                    "summary": {
                        "errors": errors,
                        "warnings": warnings,
                        "providers": len(checked.providers),
                        "mailboxes": len(checked.mailboxes),
                    },
                    "diagnostics": [d.to_json() for d in diags],
                },
                indent=2,
            )
        )
    elif args.format == "github":
        # Annotations name files relative to the checkout (the working directory in CI), so
        # with -C DIR the config root's own path is put in front.
        prefix = os.path.relpath(args.root)
        for d in diags:
            file = os.path.normpath(os.path.join(prefix, d.file))
            level = "error" if d.severity == "error" else "warning"
            output.out(
                f"::{level} file={github_escape(file, True)},line={d.line},"
                f"col={d.col},title={github_escape(d.rule, True)}::"
                f"{github_escape(d.message)}"
            )
    else:
        color = output.use_color(sys.stdout)
        if diags:
            output.out(render_text(diags, color))
        summary = (
            f"{len(checked.providers)} provider(s), {len(checked.mailboxes)} "
            f"mailbox(es): {errors} error(s), {warnings} warning(s)"
        )
        output.out(("FAILED: " if failed else "OK: ") + summary)
    return 1 if failed else 0
