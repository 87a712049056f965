"""The whole config tree, parsed under one ParseBudget: settings, providers and mailboxes,
templates rendered on the way."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mailgitops.config.budget import ParseBudget
from mailgitops.config.files import (
    MAILBOXES_DIR,
    PROVIDERS_DIR,
    SETTINGS_FILE,
    TEMPLATE_SUFFIX,
    check_root,
    listing,
    read,
    settings_diagnostics,
    unusable,
)
from mailgitops.config.parse import Document, ParsedCache
from mailgitops.config.templates.inputs import template_inputs
from mailgitops.diagnostics import Diagnostic


@dataclass
class Tree:
    """The files of a config repository, parsed, in sorted order."""

    root: Path
    settings: Document | None
    providers: list[Document]
    mailboxes: list[Document]
    diagnostics: list[Diagnostic] = field(default_factory=list)


Inspect = Callable[[Document, str], int]


def load_tree(root: Path, cache: ParsedCache | None = None, inspect: Inspect | None = None) -> Tree:
    """Every file of the config, parsed under one ParseBudget. `inspect(doc, folder)` runs
    on each file as soon as it is parsed and returns its error count (the schema check): the
    budget stops parsing once the run has too many errors."""
    check_root(root)
    notices: list[Diagnostic] = settings_diagnostics(root)
    # Whatever is there under the name is read: a directory or FIFO named mailgitops.yaml is
    # an error, never a config without settings.
    budget = ParseBudget()  # one for the whole run: many hostile files cost no more than one
    settings = (
        read(root, SETTINGS_FILE, budget=budget) if os.path.lexists(root / SETTINGS_FILE) else None
    )
    provider_files = listing(root, PROVIDERS_DIR, notices)
    mailbox_files = listing(root, MAILBOXES_DIR, notices)
    one: Callable[[str], Document] = lambda rel: read(root, rel, cache, budget)  # noqa: E731
    if any(name.endswith(TEMPLATE_SUFFIX) for name in provider_files + mailbox_files):
        # Imported here: Jinja2 takes a while to import, and only a config with templates
        # needs it.
        from mailgitops.config.templates.render import read_template

        inputs = template_inputs(root, settings)
        notices += inputs.diagnostics

        def one(rel: str) -> Document:
            if rel.endswith(TEMPLATE_SUFFIX):
                return read_template(root, rel, cache, inputs, budget)
            return read(root, rel, cache, budget)

    folders: dict[str, list[Document]] = {PROVIDERS_DIR: [], MAILBOXES_DIR: []}
    for folder, files in ((PROVIDERS_DIR, provider_files), (MAILBOXES_DIR, mailbox_files)):
        for rel in files:
            stopped = budget.stopped()
            doc = unusable(rel, *stopped) if stopped is not None else one(rel)
            budget.errors += len(doc.diagnostics) + (inspect(doc, folder) if inspect else 0)
            folders[folder].append(doc)
    return Tree(root, settings, folders[PROVIDERS_DIR], folders[MAILBOXES_DIR], notices)
