"""`mailgitops import-ispdb PATH... [-C DIR] [--force]`: start provider files from
Thunderbird's ISPDB (the logic is in mailgitops/ispdb/, the decisions in docs/ispdb.md)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailgitops import output
from mailgitops.commands.common import add_command, schemas_for_headers
from mailgitops.config.files import PROVIDERS_DIR, check_root
from mailgitops.errors import MailgitopsError, UsageError
from mailgitops.ispdb.batch import expand_paths, import_ispdb


@dataclass(frozen=True)
class Options:
    root: str
    paths: list[Path]
    force: bool


def register(sub: argparse._SubParsersAction[Any]) -> None:
    parser = add_command(
        sub,
        "import-ispdb",
        run,
        Options,
        help="write provider files from Thunderbird ISPDB clientConfig XML",
        description=(
            "Turn Thunderbird ISPDB clientConfig XML files into providers.d/<name>.yaml. "
            "A file that cannot be represented faithfully is skipped with its reason. "
            "Exit 1 if anything was skipped."
        ),
    )
    parser.add_argument(
        "paths",
        nargs="+",
        type=Path,
        metavar="PATH",
        help="a clientConfig XML file, or a directory whose *.xml files are imported",
    )
    parser.add_argument(
        "--force", action="store_true", help="overwrite existing providers.d/<name>.yaml files"
    )


def run(options: Options) -> int:
    root = Path(options.root)
    # It writes into the config: a directory that is not a config root (SPEC §8) is refused,
    # as every command that reads the config refuses it, rather than grown into one here.
    check_root(root)
    paths: list[Path] = options.paths
    # Check every PATH before writing anything: a typo in the last one should not leave the
    # first ones imported.
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise UsageError(f"no such file or directory: {', '.join(missing)}")
    for path in paths:
        if path.is_dir() and not expand_paths([path]):
            output.warn(f"{path} has no *.xml files")
    target = root / PROVIDERS_DIR
    if target.exists() and not target.is_dir():
        raise MailgitopsError(f"{target} exists and is not a directory")
    try:
        report = import_ispdb(paths, root, force=options.force)
    except OSError as exc:
        raise MailgitopsError(f"cannot import into {target}: {exc.strerror or exc}") from exc
    for result in report.results:
        if result.written is not None:
            output.out(f"wrote {output.visible(str(result.written))}")
        else:
            # The reason may quote the XML: one line, control characters shown.
            source, reason = output.visible(str(result.source)), output.visible(str(result.reason))
            output.out(f"skipped {source}: {reason}")
    if report.imported:
        schemas_for_headers(root)
    output.out(f"Imported {report.imported} providers, skipped {report.skipped}.")
    return 1 if report.skipped else 0
