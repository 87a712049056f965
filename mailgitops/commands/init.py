"""`mailgitops init [-C DIR]`: make a config root (SPEC §8) — providers.d/, mailboxes.d/, a
commented mailgitops.yaml, a .gitignore for the local state, and the JSON Schemas in schemas/
so that the `# yaml-language-server: $schema=…` headers of the files we write resolve.
Never overwrites a file: running it again fills in only what is missing."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from mailgitops import output, schema
from mailgitops.commands.common import add_command
from mailgitops.config.files import (
    MAILBOXES_DIR,
    PROVIDERS_DIR,
    SETTINGS_FILE,
    settings_diagnostics,
)
from mailgitops.diagnostics import Diagnostic
from mailgitops.errors import MailgitopsError, UsageError
from mailgitops.fsutil import atomic_write
from mailgitops.render.diagnostics import to_stderr

SCHEMAS_DIR = "schemas"


@dataclass(frozen=True)
class Options:
    root: str


def register(sub: argparse._SubParsersAction[Any]) -> None:
    add_command(
        sub,
        "init",
        run,
        Options,
        help="make a config repository (folders, settings, .gitignore, schemas)",
        description="Make DIR (default: the current directory) a mailgitops config root: "
        "providers.d/, mailboxes.d/, a commented mailgitops.yaml, a .gitignore for the local "
        "state, and the JSON Schemas in schemas/. Existing files are never overwritten.",
    )


def _template(name: str) -> bytes:
    return resources.files("mailgitops").joinpath("templates", name).read_bytes()


def _new_file(path: Path, data: bytes) -> bool:
    """Write `path` whole unless it exists (then it is kept, whatever it holds)."""
    try:
        atomic_write(path, data, mode=0o644, overwrite=False)
    except FileExistsError:
        return False
    return True


def run(options: Options) -> int:
    root = Path(options.root)
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} exists and is not a directory")
    # A root that validate would refuse for its settings is not initialised: a settings file
    # under another name, or a mailgitops.yaml that is not a file, stays a finding after init.
    problems = settings_diagnostics(root) if root.is_dir() else []
    settings = root / SETTINGS_FILE
    if os.path.lexists(settings) and not settings.is_file():
        problems.append(
            Diagnostic(SETTINGS_FILE, 1, 1, "error", "not a regular file", "not-a-file")
        )
    if problems:
        to_stderr(problems)
        raise UsageError(
            f"{root} was not initialised: fix its settings file first (nothing was written)"
        )
    created: list[str] = []
    kept: list[str] = []
    try:
        root.mkdir(parents=True, exist_ok=True)
        for folder in (PROVIDERS_DIR, MAILBOXES_DIR):
            directory = root / folder
            if directory.exists() and not directory.is_dir():
                raise MailgitopsError(f"{directory} exists and is not a directory")
            directory.mkdir(exist_ok=True)
            # Git keeps no empty folder; dotfiles are not read as config (SPEC §2).
            if _new_file(directory / ".gitkeep", b""):
                created.append(f"{folder}/")
        files = {
            SETTINGS_FILE: _template("mailgitops.yaml.example"),
            ".gitignore": _template("gitignore.example"),
        }
        for name, data in files.items():
            (created if _new_file(root / name, data) else kept).append(name)
        for path, written in schema.export(root / SCHEMAS_DIR, overwrite=False):
            (created if written else kept).append(f"{SCHEMAS_DIR}/{path.name}")
    except OSError as exc:
        raise MailgitopsError(
            f"cannot initialise {root}: {exc.strerror or exc}"
            + (f" ({exc.filename})" if exc.filename else "")
        ) from None
    for name in created:
        output.out(f"created {name}")
    for name in kept:
        output.out(f"kept    {name} (exists; not overwritten)")
    output.out(
        f"Initialised a mailgitops config in {root}. Next: add providers "
        "(`mailgitops import-ispdb`, or providers.d/NAME.yaml) and mailboxes, then "
        "`mailgitops validate` and `mailgitops plan`."
    )
    return 0
