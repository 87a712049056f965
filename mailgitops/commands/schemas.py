"""`mailgitops schemas --out DIR`: write the JSON Schemas of this version (SPEC §8), for
editors (`# yaml-language-server: $schema=…`) and for refreshing `<root>/schemas/` after an
upgrade. Unlike `init`, it replaces the schema files it writes: that is its purpose."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mailgitops import output, schema
from mailgitops.errors import MailgitopsError


def register(sub: argparse._SubParsersAction[Any]) -> None:
    parser = sub.add_parser(
        "schemas",
        help="write the JSON Schemas into a directory",
        description="Write the JSON Schemas (provider, mailboxes, settings, state, plan, "
        "apply) into DIR, replacing older copies of them.",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="the directory to write")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    target = Path(args.out)
    if target.exists() and not target.is_dir():
        raise MailgitopsError(f"{target} exists and is not a directory")
    try:
        written = schema.export(target, overwrite=True)
    except OSError as exc:
        raise MailgitopsError(f"cannot write the schemas to {target}: {exc.strerror}") from None
    for path, _ in written:
        output.out(f"wrote {path}")
    return 0
