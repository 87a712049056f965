"""The JSON Schemas (schemas/ in the repository, `mailgitops.schemas` in the wheel): loaded and
compiled once per process."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

NAMES = ("provider", "mailboxes", "settings", "state", "plan", "apply")


def _directory() -> Traversable:
    """Installed: the package `mailgitops.schemas`. Run from a source checkout that shadows an
    installed copy (`python -m mailgitops` in the repository): the repository's schemas/."""
    try:
        return resources.files("mailgitops.schemas")
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "schemas"


@functools.cache
def load(name: str) -> dict[str, Any]:
    """The schema document `schemas/<name>.schema.json`."""
    text = _directory().joinpath(f"{name}.schema.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


@functools.cache
def validator(name: str) -> Draft202012Validator:
    """The reference validator: complete error reports, used once a document failed."""
    from jsonschema import Draft202012Validator

    return Draft202012Validator(load(name))


@functools.cache
def _compiled(name: str) -> Callable[[Any], Any]:
    # fastjsonschema turns the schema into Python code: an order of magnitude faster than
    # jsonschema for the yes/no answer on clean files. Its messages are not used.
    import fastjsonschema

    # use_default=False: by default it writes schema defaults into the data it checks.
    return fastjsonschema.compile(load(name), use_default=False)


def is_valid(name: str, data: Any) -> bool:
    """Pass/fail against schema `name`. tests/test_schema_fastpath.py holds it to the same
    verdict as the reference validator."""
    import fastjsonschema

    try:
        _compiled(name)(data)
    except fastjsonschema.JsonSchemaException:
        return False
    return True


@functools.cache
def fingerprint() -> str:
    """Changes whenever any schema changes: part of the cache key of parsed files."""
    import hashlib

    digest = hashlib.sha256()
    for name in NAMES:
        try:
            digest.update(json.dumps(load(name), sort_keys=True).encode())
        except FileNotFoundError:
            continue
    return digest.hexdigest()


def header(name: str) -> str:
    """The editor comment of a file that we write into providers.d/ or mailboxes.d/: relative
    to the file, it names <root>/schemas/, which `init` and the imports fill."""
    return f"# yaml-language-server: $schema=../schemas/{name}.schema.json"


def text(name: str) -> bytes:
    """The schema document's bytes as shipped, for writing into a user's repository."""
    return _directory().joinpath(f"{name}.schema.json").read_bytes()


def export(directory: Path, overwrite: bool) -> list[tuple[Path, bool]]:
    """Write every schema into `directory` (`<root>/schemas/` for `init`, so that the
    `# yaml-language-server: $schema=../schemas/…` headers of the files we write resolve).
    Returns (path, written); an existing file is kept unless `overwrite`."""
    from mailgitops.fsutil import atomic_write

    directory.mkdir(parents=True, exist_ok=True)
    out: list[tuple[Path, bool]] = []
    for name in NAMES:
        path = directory / f"{name}.schema.json"
        try:
            atomic_write(path, text(name), mode=0o644, overwrite=overwrite)
        except FileExistsError:
            out.append((path, False))
        else:
            out.append((path, True))
    return out
