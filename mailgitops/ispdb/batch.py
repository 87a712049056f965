"""Importing a batch of ISPDB files into providers.d/ (`import-ispdb`): per file all or
nothing, one file's failure never stops the others, and every file is read and every domain
checked before the first one is written. The command module only parses arguments and prints
the report."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mailgitops.config.files import PROVIDERS_DIR, config_files, read
from mailgitops.fsutil import atomic_write
from mailgitops.ispdb.parse import IspdbProvider, parse_client_config
from mailgitops.ispdb.read import Skip
from mailgitops.ispdb.write import render_provider_yaml
from mailgitops.model import fold_domain


@dataclass(frozen=True)
class FileResult:
    """The outcome for one input file: `written` (relative to the root) or `reason`."""

    source: str
    written: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class ImportReport:
    results: tuple[FileResult, ...]

    @property
    def imported(self) -> int:
        return sum(1 for r in self.results if r.written is not None)

    @property
    def skipped(self) -> int:
        return sum(1 for r in self.results if r.written is None)


def expand_paths(paths: Sequence[Path]) -> list[Path]:
    """Directories become their `*.xml` files (sorted, dotfiles ignored); files stay."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(
                sorted(
                    (
                        p
                        for p in path.iterdir()
                        if p.suffix == ".xml" and not p.name.startswith(".")
                    ),
                    key=lambda p: p.name,
                )
            )
        else:
            files.append(path)
    return files


def _existing_domains(root: Path) -> dict[str, str]:
    """domain -> the existing provider file that lists it, read leniently (validate reports
    the files' own errors): a provider file that cannot be read claims nothing here."""
    out: dict[str, str] = {}
    for rel in config_files(root):
        if not rel.startswith(f"{PROVIDERS_DIR}/"):
            continue
        data = read(root, rel).data
        domains = data.get("domains") if isinstance(data, dict) else None
        for domain in domains if isinstance(domains, list) else []:
            if isinstance(domain, str):
                out.setdefault(fold_domain(domain), rel)
    return out


def _collisions(
    parsed: list[tuple[Path, IspdbProvider | Skip]], root: Path, force: bool
) -> dict[Path, str]:
    """Why each input must be skipped for its domains: a domain belongs to at most one
    provider (SPEC §2.1), so two inputs that claim it are both skipped (which one is right is
    the user's call), and so is an input that claims a domain an existing provider serves —
    unless --force replaces exactly that provider's file."""
    existing = _existing_domains(root)
    claims: dict[str, list[Path]] = {}
    for path, p in parsed:
        if isinstance(p, IspdbProvider):
            for domain in p.domains:
                claims.setdefault(domain, []).append(path)
    out: dict[Path, str] = {}
    for path, p in parsed:
        if not isinstance(p, IspdbProvider):
            continue
        own = f"{PROVIDERS_DIR}/{p.name}.yaml"
        for domain in p.domains:
            others = [q.name for q in claims[domain] if q != path]
            holder = existing.get(domain)
            if others:
                out[path] = f"domain {domain} is also claimed by {', '.join(others)}"
                break
            if holder is not None and not (force and holder == own):
                out[path] = f"domain {domain} is already served by {holder}"
                break
    return out


def import_ispdb(paths: Sequence[Path], root: Path, force: bool) -> ImportReport:
    """Import every file of `paths` into `root/providers.d/`. Per file all or nothing; one
    file's failure never stops the others. Every file is read and every domain checked
    before the first one is written."""
    target_dir = root / PROVIDERS_DIR
    parsed = [(path, parse_client_config(path)) for path in expand_paths(paths)]
    collisions = _collisions(parsed, root, force)
    target_dir.mkdir(exist_ok=True)
    results: list[FileResult] = []
    claimed: dict[str, str] = {}  # provider name -> source that wrote it in this run
    for path, parsed_one in parsed:
        source = path.name
        if isinstance(parsed_one, Skip):
            results.append(FileResult(source, reason=parsed_one.reason))
            continue
        if path in collisions:
            results.append(FileResult(source, reason=collisions[path]))
            continue
        if parsed_one.name in claimed:
            results.append(
                FileResult(source, reason=f"same provider name as {claimed[parsed_one.name]}")
            )
            continue
        relative = f"{PROVIDERS_DIR}/{parsed_one.name}.yaml"
        target = target_dir / f"{parsed_one.name}.yaml"
        if not force and os.path.lexists(target):
            results.append(FileResult(source, reason=f"{relative} exists, use --force"))
            continue
        try:
            text = render_provider_yaml(parsed_one, source)
        except AssertionError:
            # A bug in the writer must not put a wrong file in the repository.
            results.append(
                FileResult(
                    source, reason="cannot be written as YAML faithfully (a bug; please report)"
                )
            )
            continue
        problem = _write_atomically(target, text, force)
        if problem is not None:
            results.append(FileResult(source, reason=f"could not write {relative}: {problem}"))
            continue
        claimed[parsed_one.name] = source
        results.append(FileResult(source, written=relative))
    return ImportReport(tuple(results))


def _write_atomically(target: Path, text: str, overwrite: bool) -> str | None:
    """Write `text` whole or not at all (fsutil.atomic_write); without `overwrite`, a file that
    appeared since we looked is kept. Returns a problem, or None."""
    try:
        atomic_write(target, text.encode("utf-8"), mode=0o644, overwrite=overwrite)
    except FileExistsError:
        return "it appeared while importing; use --force"
    except OSError as exc:
        return exc.strerror or str(exc)
    return None
