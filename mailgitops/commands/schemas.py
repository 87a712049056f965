"""`mailgitops schemas --out DIR`: write the JSON Schemas of this version (SPEC §8), for
editors (`# yaml-language-server: $schema=…`) and for refreshing `<root>/schemas/` after an
upgrade. Unlike `init`, it replaces the schema files it writes: that is its purpose."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailgitops import output, schema
from mailgitops.commands.common import add_command
from mailgitops.errors import MailgitopsError


@dataclass(frozen=True)
class Options:
    """`--out DIR`, required: no default place to write the schemas into."""

    out: str


def register(sub: argparse._SubParsersAction[Any]) -> None:
    parser = add_command(
        sub,
        "schemas",
        run,
        Options,
        root=False,
        help="write the JSON Schemas into a directory",
        description="Write the JSON Schemas (provider, mailboxes, settings, state, plan, "
        "apply) into DIR, replacing older copies of them.",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="the directory to write")


def run(options: Options) -> int:
    target = Path(options.out)
    if target.exists() and not target.is_dir():
        raise MailgitopsError(f"{target} exists and is not a directory")
    try:
        written = schema.export(target, overwrite=True)
    except OSError as exc:
        raise MailgitopsError(f"cannot write the schemas to {target}: {exc.strerror}") from None
    for path, _ in written:
        output.out(f"wrote {path}")
    return 0
