"""Checks of a config: the JSON Schemas first (validate/schema.py), then the rules a schema
cannot say, one function per rule: providers (providers.py), mailboxes (mailboxes.py),
mailgitops.yaml (settings.py), invisible characters (identifiers.py). Every check runs on
every entry it can, so one run reports all problems; an entry with errors still takes part in
the checks of the entries that depend on it."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from mailgitops.cache import Cache
from mailgitops.config.files import (
    MAILBOXES_DIR,
    PROVIDERS_DIR,
    SETTINGS_FILE,
    TEMPLATE_SUFFIX,
    read,
    remember,
    settings_diagnostics,
)
from mailgitops.config.parse import Document
from mailgitops.config.tree import Tree, load_tree
from mailgitops.diagnostics import Diagnostic, Diagnostics
from mailgitops.validate import schema
from mailgitops.validate.entries import CheckedConfig, MailboxEntry, ProviderEntry
from mailgitops.validate.identifiers import check_identifiers
from mailgitops.validate.mailboxes import check_mailboxes, check_secret_policy, collect_mailboxes
from mailgitops.validate.providers import check_providers
from mailgitops.validate.settings import check_settings_file

__all__ = [
    "CheckedConfig",
    "MailboxEntry",
    "ProviderEntry",
    "check_config",
    "check_settings",
    "check_tree",
]

_SCHEMA_OF = {PROVIDERS_DIR: "provider", MAILBOXES_DIR: "mailboxes"}


def _early_schema_check(doc: Document, folder: str) -> int:
    """The schema check of a file right after it is parsed (the result is kept for
    check_tree): its error count charges the run's parse budget."""
    if not isinstance(doc.data, dict):
        return 0
    return len(schema.check(doc, _SCHEMA_OF[folder]))


def check_config(root: Path, cache: Cache | None = None) -> CheckedConfig:
    tree = load_tree(root, cache, _early_schema_check)
    checked = check_tree(tree)
    for doc in (*tree.providers, *tree.mailboxes):
        remember(doc, cache)
    return checked


def check_settings(root: Path) -> CheckedConfig:
    """mailgitops.yaml alone, read from the file (never the cache) and checked: what the rules
    of a plan read when the rest of the config came from the cache."""
    checked = CheckedConfig(root, Diagnostics())
    checked.diagnostics.extend(settings_diagnostics(root))  # a near-named settings file
    if os.path.lexists(root / SETTINGS_FILE):  # a directory or FIFO there is an error
        check_settings_file(read(root, SETTINGS_FILE), checked)
    return checked


def check_tree(tree: Tree) -> CheckedConfig:
    found = Diagnostics()
    found.extend(tree.diagnostics)
    checked = CheckedConfig(tree.root, found)
    if tree.settings is not None:
        check_settings_file(tree.settings, checked)
    for doc in tree.providers:
        if _schema_checked(doc, "provider", "a provider file must be a mapping", found):
            checked.providers.append(ProviderEntry(doc, doc.data))
    for doc in tree.mailboxes:
        if _schema_checked(
            doc, "mailboxes", "a mailboxes file must be a mapping with `mailboxes:`", found
        ):
            collect_mailboxes(doc, checked)
    check_providers(checked)
    check_mailboxes(checked)
    check_secret_policy(checked)
    check_identifiers(checked)
    found.items = [_rendered_place(d) for d in found.items]
    return checked


def _schema_checked(doc: Document, schema_name: str, not_mapping: str, found: Diagnostics) -> bool:
    """The findings of a file and its schema check; whether it is a mapping to read entries
    from."""
    found.extend(doc.diagnostics)
    if doc.data is None:
        return False
    if not isinstance(doc.data, dict):
        found.add(doc.path, 1, 1, not_mapping, "type")
        return False
    schema_problems = schema.check(doc, schema_name)
    doc.diagnostics.extend(schema_problems)  # a document with problems is never cached
    found.extend(schema_problems)
    return True


# ValidationResult about the template file itself (its name and bytes), before anything is rendered.
_TEMPLATE_FILE_RULES = frozenset({"file-too-large", "encoding", "io", "ignored-file"})


def _rendered_place(diag: Diagnostic) -> Diagnostic:
    """A finding in the text a template rendered is at a line of that text, not of the
    template: say so, and how to see it."""
    if (
        not diag.file.endswith(TEMPLATE_SUFFIX)
        or diag.rule.startswith("template-")
        or diag.rule in _TEMPLATE_FILE_RULES
    ):
        return diag
    hint = f" (line {diag.line} of the rendered text: mailgitops render {diag.file})"
    return dataclasses.replace(diag, message=diag.message + hint)
