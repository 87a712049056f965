"""`mailgitops render`: the YAML that templates (`*.yaml.j2`) render to, with the line
numbers that validate and plan cite for them."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from mailgitops import output, templating
from mailgitops.commands.common import add_root_argument
from mailgitops.errors import UsageError
from mailgitops.load import (
    MAILBOXES_DIR,
    PROVIDERS_DIR,
    SETTINGS_FILE,
    TEMPLATE_SUFFIX,
    Document,
    check_root,
    config_files,
    read,
    read_raw,
)
from mailgitops.pipeline import report_findings


def register(sub: argparse._SubParsersAction[Any]) -> None:
    parser = sub.add_parser(
        "render",
        help="print what templates (*.yaml.j2) render to",
        description="Print the YAML that templates render to, each preceded by "
        "`# rendered from FILE`, with numbered lines: the line numbers that validate and plan "
        "cite for a template. Renders every template of the config when no FILE is named.",
    )
    add_root_argument(parser)
    parser.add_argument(
        "files", nargs="*", metavar="FILE", help="templates, relative to the config root"
    )
    parser.add_argument(
        "--no-line-numbers",
        action="store_true",
        help="print the rendered YAML as it is, without line numbers",
    )
    parser.set_defaults(func=run)


def _relative(root: Path, name: str) -> str:
    """FILE as the config root names it: given relative to the root, or as a path from the
    working directory that lies inside the root."""
    rel = Path(name)
    if not rel.is_absolute() and (root / rel).is_file():
        candidate = rel.as_posix()
    else:
        try:
            candidate = Path(os.path.relpath(Path(name).resolve(), root.resolve())).as_posix()
        except ValueError:  # another drive
            candidate = name
    folder, _, base = candidate.rpartition("/")
    if folder not in (PROVIDERS_DIR, MAILBOXES_DIR) or not base.endswith(TEMPLATE_SUFFIX):
        raise UsageError(
            f"{name} is not a template of the config: templates are "
            f"{PROVIDERS_DIR}/*{TEMPLATE_SUFFIX} and {MAILBOXES_DIR}/*{TEMPLATE_SUFFIX}"
        )
    if not (root / candidate).is_file():
        raise UsageError(f"{name}: no such template in {root}")
    return candidate


def run(args: argparse.Namespace) -> int:
    root = Path(args.root)
    check_root(root)
    if args.files:
        names = [_relative(root, name) for name in args.files]
    else:
        names = [name for name in config_files(root) if name.endswith(TEMPLATE_SUFFIX)]
    settings = read(root, SETTINGS_FILE) if (root / SETTINGS_FILE).is_file() else None
    inputs = templating.template_inputs(root, settings)
    problems = list(inputs.problems)
    for name in names:
        # As validate reads it: a link out of the root or a FIFO is refused, never printed.
        raw = read_raw(root, name, templating.MAX_TEMPLATE_BYTES)
        if isinstance(raw, Document):
            problems += raw.problems
            continue
        rendered = templating.render_file(root, name, raw, inputs)
        problems += rendered.problems
        if rendered.text is None:
            continue
        output.out(f"# rendered from {name}")
        lines = rendered.text.splitlines()
        if args.no_line_numbers:
            output.out("\n".join(lines))
        else:
            width = max(len(str(len(lines))), 4)
            output.out(
                "\n".join(f"{n:>{width}}  {line}".rstrip() for n, line in enumerate(lines, 1))
            )
    report_findings(sorted(problems))
    return 1 if any(p.severity == "error" for p in problems) else 0
