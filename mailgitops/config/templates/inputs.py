"""What templates see: `vars:` of mailgitops.yaml and the data files of <root>/data/ (never the
environment, a clock, a file or the network), and the digests of every input of a render
that key the caches."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailgitops.config.budget import MAX_FILE_BYTES
from mailgitops.config.files import DATA_DIR, TEMPLATES_DIR
from mailgitops.config.parse import Document, parse
from mailgitops.config.templates.limits import (
    MAX_DATA_BYTES,
    MAX_TEMPLATE_BYTES,
    RUN_TIME_BUDGET_SECONDS,
)
from mailgitops.diagnostics import Diagnostic
from mailgitops.fsutil import TooLarge, read_bounded

DATA_SUFFIXES = (".yaml", ".yml", ".json")


def _plain(value: Any) -> Any:
    """Plain dicts, lists and scalars (no marks, nothing a template could reach through)."""
    return json.loads(json.dumps(value))


def _is_readme(name: str) -> bool:
    return name.upper().startswith("README")


@dataclass
class Inputs:
    """What every template of a run sees, and the digest of it that keys their cache."""

    variables: dict[str, Any]
    diagnostics: list[Diagnostic] = field(default_factory=list)
    digest: bytes = b""
    deadline: float = field(default_factory=lambda: time.monotonic() + RUN_TIME_BUDGET_SECONDS)


def _data_files(root: Path, problems: list[Diagnostic]) -> list[tuple[str, str, bytes]]:
    """(relative path, stem, bytes) of the data files, in sorted order."""
    directory = root / DATA_DIR
    if not directory.is_dir():
        return []
    found: list[tuple[str, str, bytes]] = []
    base = directory.resolve()
    if not base.is_relative_to(root.resolve()):
        problems.append(
            Diagnostic(
                DATA_DIR, 1, 1, "error", "resolves outside the config root (a symlink?)", "io"
            )
        )
        return found
    total = 0
    for name in sorted(os.listdir(directory)):
        if name.startswith(".") or _is_readme(name):
            continue
        rel = f"{DATA_DIR}/{name}"
        path = directory / name
        suffix = next((s for s in DATA_SUFFIXES if name.endswith(s)), None)
        if suffix is None or not path.is_file():
            problems.append(
                Diagnostic(
                    rel,
                    1,
                    1,
                    "warning",
                    "ignored: only *.yaml, *.yml and *.json files of data/ are read",
                    "ignored-file",
                )
            )
            continue
        if not path.resolve().is_relative_to(base):
            problems.append(
                Diagnostic(rel, 1, 1, "error", f"resolves outside {DATA_DIR}/ (a symlink?)", "io")
            )
            continue
        try:
            with open(path, "rb") as fh:
                raw = fh.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            problems.append(Diagnostic(rel, 1, 1, "error", f"cannot read: {exc.strerror}", "io"))
            continue
        total += len(raw)
        if total > MAX_DATA_BYTES:
            problems.append(
                Diagnostic(
                    rel,
                    1,
                    1,
                    "error",
                    f"the data files hold more than {MAX_DATA_BYTES:,} bytes in all, the limit",
                    "file-too-large",
                )
            )
            break
        found.append((rel, name[: -len(suffix)], raw))
    return found


def _load_json(raw: bytes, rel: str) -> Document:
    doc = Document(rel, None, raw=raw)
    if len(raw) > MAX_FILE_BYTES:
        doc.error(1, 1, f"file is larger than {MAX_FILE_BYTES:,} bytes", "file-too-large")
        return doc

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise ValueError(f"duplicate key {key!r}")
            out[key] = value
        return out

    try:
        doc.data = json.loads(raw.decode("utf-8-sig"), object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as exc:
        doc.error(exc.lineno, exc.colno, f"invalid JSON: {exc.msg}", "json-syntax")
    except UnicodeDecodeError:
        doc.error(1, 1, "not UTF-8", "encoding")
    except ValueError as exc:
        doc.error(1, 1, f"invalid JSON: {exc}", "json-syntax")
    except RecursionError:
        doc.error(1, 1, "the document is nested too deeply", "yaml-depth")
    return doc


def template_inputs(root: Path, settings: Document | None) -> Inputs:
    """`vars` and `data` for the templates of one run, with the problems of the data files."""
    problems: list[Diagnostic] = []
    raw_vars = settings.data.get("vars") if settings and isinstance(settings.data, dict) else None
    variables: dict[str, Any] = {"vars": _plain(raw_vars) if isinstance(raw_vars, dict) else {}}
    data: dict[str, Any] = {}
    digest = hashlib.sha256(json.dumps(variables, sort_keys=True).encode())
    seen: dict[str, str] = {}
    for rel, stem, raw in _data_files(root, problems):
        digest.update(f"\0{rel}\0{len(raw)}\0".encode())
        digest.update(raw)
        if stem in seen:
            problems.append(
                Diagnostic(
                    rel,
                    1,
                    1,
                    "error",
                    f"`data.{stem}` is defined by {seen[stem]} already",
                    "duplicate-data",
                )
            )
            continue
        seen[stem] = rel
        doc = _load_json(raw, rel) if rel.endswith(".json") else parse(raw, rel)
        problems.extend(doc.diagnostics)
        if doc.data is not None and not doc.diagnostics:
            data[stem] = _plain(doc.data)
    variables["data"] = data
    digest.update(b"\0templates\0" + shared_templates_digest(root))
    return Inputs(variables, problems, digest.digest())


def shared_templates_digest(root: Path) -> bytes:
    """A digest of the names and bytes of every file under <root>/templates/ (a symlink by
    its target's name, never followed: the loader refuses one that leads outside)."""
    digest = hashlib.sha256()
    base = root / TEMPLATES_DIR
    if not base.is_dir():
        return digest.digest()
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            parts = [str(path.relative_to(root)).encode()]
            try:
                if path.is_symlink():
                    parts.append(os.readlink(path).encode())
                else:
                    parts.append(read_bounded(path, MAX_TEMPLATE_BYTES))
            except TooLarge:
                parts.append(b"\0too-large")  # the include loader refuses it
            except OSError:
                parts.append(b"\0unreadable")
            for part in parts:
                digest.update(len(part).to_bytes(8, "big"))
                digest.update(part)
    return digest.digest()


def input_parts(root: Path) -> list[bytes]:
    """What a template depends on besides itself and mailgitops.yaml (data/ and templates/),
    for the key of the whole-config cache."""
    parts: list[bytes] = []
    for rel, _stem, raw in _data_files(root, []):
        parts += [rel.encode(), raw]
    return [*parts, b"\0templates", shared_templates_digest(root)]
