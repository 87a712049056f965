"""`mailgitops validate`: schema and semantic checks; no state and no secrets needed."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailgitops import output
from mailgitops.cache import open_cache
from mailgitops.commands.common import add_cache_argument, add_command
from mailgitops.render.diagnostics import REPORTERS, ValidationResult, report
from mailgitops.validate import check_config


@dataclass(frozen=True)
class Options:
    root: str
    no_cache: bool
    format: str
    strict: bool


def register(sub: argparse._SubParsersAction[Any]) -> None:
    parser = add_command(
        sub,
        "validate",
        run,
        Options,
        help="check the config (schema and semantic rules)",
        description="Check the config: JSON Schema and semantic rules. "
        "Needs no state and no secrets.",
    )
    add_cache_argument(parser)
    parser.add_argument("--format", choices=tuple(REPORTERS), default="text")
    parser.add_argument("--strict", action="store_true", help="warnings fail too")


def run(options: Options) -> int:
    checked = check_config(Path(options.root), open_cache(disabled=options.no_cache))
    found = ValidationResult(
        checked.diagnostics.sorted(),
        len(checked.providers),
        len(checked.mailboxes),
        strict=options.strict,
    )
    color = output.use_color(sys.stdout)
    output.out(report(found, options.format, options.root, color), end="")
    return 1 if found.failed else 0
