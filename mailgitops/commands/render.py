"""`mailgitops render`: the YAML that templates (`*.yaml.j2`) render to, with the line
numbers that validate and plan cite for them."""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from mailgitops import output
from mailgitops.commands.common import add_command
from mailgitops.config.budget import ParseBudget
from mailgitops.config.files import (
    MAILBOXES_DIR,
    PROVIDERS_DIR,
    SETTINGS_FILE,
    TEMPLATE_SUFFIX,
    check_root,
    config_files,
    read,
    read_raw,
)
from mailgitops.config.parse import Document
from mailgitops.config.templates.inputs import template_inputs
from mailgitops.config.templates.limits import MAX_TEMPLATE_BYTES
from mailgitops.config.templates.render import render_file
from mailgitops.errors import UsageError
from mailgitops.model import SECRET_KEYS
from mailgitops.render.diagnostics import to_stderr

# The shapes of a secret reference ({env: NAME}, {file: PATH}, {keep: live}, each with an
# optional version): shown as they are. Anything else under a secret key is a literal secret.
_REFERENCES = ({"env"}, {"file"}, {"keep"})
# For rendered text that is not YAML: a secret key's value on its own line.
_SECRET_LINE = re.compile(
    r"^(\s*(?:-\s+)?[\"']?(?:" + "|".join(sorted(SECRET_KEYS)) + r")[\"']?\s*:\s+)([^\s{#].*)$"
)


@dataclass(frozen=True)
class Options:
    root: str
    files: list[str]
    no_line_numbers: bool


def register(sub: argparse._SubParsersAction[Any]) -> None:
    parser = add_command(
        sub,
        "render",
        run,
        Options,
        help="print what templates (*.yaml.j2) render to",
        description="Print the YAML that templates render to, each preceded by "
        "`# rendered from FILE`, with numbered lines: the line numbers that validate and plan "
        "cite for a template. Renders every template of the config when no FILE is named.",
    )
    parser.add_argument(
        "files", nargs="*", metavar="FILE", help="templates, relative to the config root"
    )
    parser.add_argument(
        "--no-line-numbers",
        action="store_true",
        help="print the rendered YAML as it is, without line numbers",
    )


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


def _is_reference(node: Node) -> bool:
    if not isinstance(node, MappingNode):
        return False
    keys = {k.value for k, _ in node.value if isinstance(k, ScalarNode)}
    return any(ref <= keys <= ref | {"version"} for ref in _REFERENCES)


def _literal_secrets(root: Node) -> list[ScalarNode]:
    """The scalars that are, or are inside, the literal value of a secret key (through
    aliases too: an anchor's definition is where its text is)."""
    found: list[ScalarNode] = []
    seen: set[tuple[int, bool]] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, secret = stack.pop()
        if (id(node), secret) in seen:
            continue
        seen.add((id(node), secret))
        if isinstance(node, ScalarNode) and secret:
            found.append(node)
        elif isinstance(node, MappingNode):
            for key, value in node.value:
                under = secret or (isinstance(key, ScalarNode) and key.value in SECRET_KEYS)
                stack.append((value, under and not _is_reference(value)))
        elif isinstance(node, SequenceNode):
            stack.extend((child, secret) for child in node.value)
    return found


def _without_secrets(text: str, budget: ParseBudget) -> str:
    """The rendered text with every literal secret replaced by `(sensitive)`, line numbers
    kept: validate reports a literal secret without its value, and render must not print it
    either (SPEC §2.3; a CI log is an output). Text that is not YAML, or that the run's parse
    budget refuses (a dense 16 MB render), is masked line by line instead."""
    try:
        if budget.refusal(text) is not None:
            raise yaml.YAMLError
        root = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (yaml.YAMLError, RecursionError):
        return "\n".join(_SECRET_LINE.sub(r"\1(sensitive)", line) for line in text.split("\n"))
    if root is None:
        return text
    starts = [0]
    for line in text.split("\n"):
        starts.append(starts[-1] + len(line) + 1)
    nodes = _literal_secrets(root)
    nodes.sort(key=lambda n: (n.start_mark.line, n.start_mark.column), reverse=True)
    for node in nodes:
        start = starts[node.start_mark.line] + node.start_mark.column
        end = starts[node.end_mark.line] + node.end_mark.column
        text = text[:start] + "(sensitive)" + "\n" * text.count("\n", start, end) + text[end:]
    return text


def run(options: Options) -> int:
    root = Path(options.root)
    check_root(root)
    if options.files:
        names = [_relative(root, name) for name in options.files]
    else:
        names = [name for name in config_files(root) if name.endswith(TEMPLATE_SUFFIX)]
    settings = read(root, SETTINGS_FILE) if (root / SETTINGS_FILE).is_file() else None
    inputs = template_inputs(root, settings)
    problems = list(inputs.diagnostics)
    budget = ParseBudget()
    for name in names:
        # As validate reads it: a link out of the root or a FIFO is refused, never printed.
        raw = read_raw(root, name, MAX_TEMPLATE_BYTES)
        if isinstance(raw, Document):
            problems += raw.diagnostics
            continue
        rendered = render_file(root, name, raw, inputs)
        problems += rendered.diagnostics
        if rendered.text is None:
            continue
        # The file name and the text are the pull request's: escaped, neither can forge a
        # line (`# rendered from …`, a finding) nor paint the terminal.
        output.out(f"# rendered from {output.visible(name)}")
        lines = [output.visible(x) for x in _without_secrets(rendered.text, budget).splitlines()]
        if options.no_line_numbers:
            output.out("\n".join(lines))
        else:
            width = max(len(str(len(lines))), 4)
            output.out(
                "\n".join(f"{n:>{width}}  {line}".rstrip() for n, line in enumerate(lines, 1))
            )
    to_stderr(sorted(problems))
    return 1 if any(p.severity == "error" for p in problems) else 0
