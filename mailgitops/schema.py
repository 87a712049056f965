"""The JSON Schemas (schemas/ in the repository, `mailgitops.schemas` in the wheel): loaded and
compiled once per process."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

NAMES = ("provider", "mailboxes", "settings", "state", "plan", "check", "apply")


def _directory() -> Traversable:
    """Installed: the package `mailgitops.schemas`. Run from a source checkout that shadows an
    installed copy (`python -m mailgitops` in the repository): the repository's schemas/."""
    try:
        return resources.files("mailgitops.schemas")
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "schemas"


@functools.cache
def load(name: str) -> dict[str, Any]:
    """The schema document `schemas/<name>.schema.json`, with every `pattern` anchored at the
    very end of the string (`_whole`)."""
    text = _directory().joinpath(f"{name}.schema.json").read_text("utf-8")
    data: dict[str, Any] = _whole(json.loads(text))
    return data


_DOLLAR = re.compile(r"(?<!\\)\$")


def _whole(node: Any) -> Any:
    """The schema with `$` in every `pattern` read as the end of the string. In Python's re
    (which jsonschema uses) `$` also matches before a final newline, so
    `"alice@example.com\n"` passed `^…$`; the schema files keep `$` for editors, whose
    ECMA-262 regexes have no `\\Z`. fastjsonschema makes the same substitution itself."""
    if isinstance(node, dict):
        return {
            k: _DOLLAR.sub(r"\\Z", v) if k == "pattern" and isinstance(v, str) else _whole(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_whole(v) for v in node]
    return node


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
    # (Annotated because fastjsonschema ships type hints only since 2.22.)
    validate: Callable[[Any], Any] = fastjsonschema.compile(load(name), use_default=False)
    code = getattr(validate, "__globals__", {})
    for function in [f for f in code if _MEMOIZED.search(f) and callable(code[f])]:
        code[function] = _memoized(code[function])
    return validate


# The generated check of a secret reference raises and catches an exception per branch of its
# `anyOf` and `not: {anyOf}` even for a valid reference: a third of the config's check. The
# same few references ({env: MB_PW}) recur in every mailbox, so a valid one is remembered.
_MEMOIZED = re.compile(r"_defs_secret(_ref)?$")
_SCALARS = (str, int, float, bool, type(None))


def _memoized(check: Callable[..., Any]) -> Callable[..., Any]:
    valid: set[tuple[Any, ...]] = set()

    def memoized(data: Any, custom_formats: Any = None, name_prefix: Any = None) -> Any:
        # The key keeps each value's type: True == 1, but only one of them is an integer.
        key = (
            tuple((k, type(v), v) for k, v in data.items())
            if type(data) is dict and all(type(v) in _SCALARS for v in data.values())
            else None
        )
        if key is not None and key in valid:
            return data
        result = check(data, custom_formats or {}, name_prefix)
        if key is not None:
            valid.add(key)  # reached only when the check did not raise
        return result

    return memoized


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
