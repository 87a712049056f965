"""The files of a config root: which folders and names it has, which files make up the config,
and reading one of them safely (a regular file inside the root, bounded) into a Document,
through the cache of parsed files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from mailgitops.config.budget import MAX_FILE_BYTES, ParseBudget
from mailgitops.config.parse import Document, ParsedCache, parse
from mailgitops.diagnostics import Diagnostic
from mailgitops.errors import NotConfigRoot, UsageError

PROVIDERS_DIR = "providers.d"
MAILBOXES_DIR = "mailboxes.d"
SETTINGS_FILE = "mailgitops.yaml"
ROOT_MARKERS = (PROVIDERS_DIR, MAILBOXES_DIR, SETTINGS_FILE)
TEMPLATE_SUFFIX = ".yaml.j2"
DATA_DIR = "data"  # what templates see as `data` (SPEC §7)
TEMPLATES_DIR = "templates"  # what templates may include


def _outside(root: Path, relpath: str) -> bool:
    """Whether the file resolves (symbolic links followed) outside the config root: a pull
    request could otherwise make the tool read, and echo parts of, any file of the runner."""
    real = Path(os.path.realpath(root / relpath))
    return not real.is_relative_to(os.path.realpath(root))


def unusable(relpath: str, message: str, rule: str) -> Document:
    """The Document of a file that is not parsed, with the reason."""
    doc = Document(relpath, None)
    doc.error(1, 1, message, rule)
    return doc


def read_raw(root: Path, relpath: str, limit: int = MAX_FILE_BYTES) -> bytes | Document:
    """A file's bytes (one more than `limit` at most, so that the size check sees it), or a
    Document with the reason it cannot be read. Only a regular file inside the root is read;
    it is opened without blocking (a FIFO named x.yaml must not hang validate) and checked on
    the open descriptor."""
    if _outside(root, relpath):
        return unusable(
            relpath, "the file resolves outside the config root (a symbolic link?)", "outside-root"
        )
    try:
        fd = os.open(root / relpath, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        return unusable(relpath, f"cannot read: {exc.strerror}", "io")
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return unusable(relpath, "not a regular file", "not-a-file")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read(limit + 1)
    except OSError as exc:
        return unusable(relpath, f"cannot read: {exc.strerror}", "io")
    finally:
        os.close(fd)


def read(
    root: Path, relpath: str, cache: ParsedCache | None = None, budget: ParseBudget | None = None
) -> Document:
    raw = read_raw(root, relpath)
    if isinstance(raw, Document):
        return raw
    return parse_cached(raw, relpath, cache, budget)


def parse_cached(
    raw: bytes, relpath: str, cache: ParsedCache | None, budget: ParseBudget | None = None
) -> Document:
    """parse(), through the cache: the bytes of a file, or the text a template rendered."""
    hit = cache.document(relpath, raw) if cache is not None else None
    return hit if hit is not None else parse(raw, relpath, budget)


def remember(doc: Document, cache: ParsedCache | None) -> None:
    """Cache a document that has no finding of its own: loaded and schema-valid."""
    if cache is not None:
        cache.remember_document(doc)


def _ignored_reason(directory: Path, name: str) -> str | None:
    """Why a file of providers.d/ or mailboxes.d/ is not read, or None when it is. Only
    dotfiles and READMEs are passed over without a word (SPEC §2): anything else that is not
    read is a warning, so that a renamed or misnamed file never drops entries silently."""
    path = directory / name
    if name.endswith((".yaml", TEMPLATE_SUFFIX)) and path.is_file():
        return None
    if path.is_dir():
        return f"a folder inside {directory.name}/ is not read (files of the folder itself are)"
    if name.endswith(".yaml") or name.endswith(TEMPLATE_SUFFIX):
        return "not a regular file"
    if name.endswith(".yml"):
        return "only *.yaml files are read (rename to .yaml)"
    if name.endswith((".yml.j2", ".j2", ".jinja", ".jinja2")):
        return f"only *.yaml and *{TEMPLATE_SUFFIX} files are read (rename to *{TEMPLATE_SUFFIX})"
    return f"only *.yaml files and *{TEMPLATE_SUFFIX} templates are read"


def listing(root: Path, folder: str, notices: list[Diagnostic]) -> list[str]:
    directory = root / folder
    if not directory.is_dir():
        return []
    names: list[str] = []
    for name in sorted(os.listdir(directory)):
        if name.startswith(".") or name.upper().startswith("README"):
            continue
        reason = _ignored_reason(directory, name)
        if reason is None:
            names.append(f"{folder}/{name}")
        else:
            notices.append(
                Diagnostic(
                    f"{folder}/{name}", 1, 1, "warning", f"ignored: {reason}", "ignored-file"
                )
            )
    return names


def _near_settings(name: str) -> bool:
    """`mailgitops.yml`, `.mailgitops.yaml`, `Mailgitops.YAML`…: a settings file the tool
    would not read, whose author may believe its access rules apply."""
    stem, _, ext = name.lower().lstrip(".").strip().partition(".")
    return stem == "mailgitops" and ext in ("yaml", "yml", "json") and name != SETTINGS_FILE


def settings_diagnostics(root: Path) -> list[Diagnostic]:
    """Settings that cannot be dodged: a settings file under another name beside the root is
    an error, not a file silently ignored."""
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return []
    return [
        Diagnostic(
            name,
            1,
            1,
            "error",
            f"a settings file must be named {SETTINGS_FILE}: this one would be ignored, "
            "access rules and all; rename it or remove it",
            "settings-name",
        )
        for name in names
        if _near_settings(name)
    ]


def settings_files(root: Path) -> list[str]:
    """The files that make up the settings and the config, for a cache key: a near-named
    settings file is part of it, so its appearance is never hidden by a cached result."""
    names = [SETTINGS_FILE] if os.path.lexists(root / SETTINGS_FILE) else []
    names += [d.file for d in settings_diagnostics(root)]
    return names + config_files(root)


def is_config_root(root: Path) -> bool:
    return any(os.path.lexists(root / name) for name in ROOT_MARKERS)


def check_root(root: Path) -> None:
    """Refuse what is not a config root (SPEC §8): a directory with none of providers.d/,
    mailboxes.d/ and mailgitops.yaml is a wrong `-C` or the wrong working directory (inside
    mailboxes.d/, say). Planning it as an empty config would destroy everything managed."""
    if not root.exists():
        raise UsageError(f"config root {root} does not exist")
    if not root.is_dir():
        raise UsageError(f"config root {root} is not a directory")
    if not is_config_root(root):
        raise NotConfigRoot(
            f"{root} is not a mailgitops config root: it has none of {PROVIDERS_DIR}/, "
            f"{MAILBOXES_DIR}/ and {SETTINGS_FILE}. Run the command in the config repository "
            "(or pass -C DIR), or make one with `mailgitops init`."
        )


def config_files(root: Path) -> list[str]:
    """The provider and mailbox files that make up the config, in reading order."""
    ignored: list[Diagnostic] = []
    return listing(root, PROVIDERS_DIR, ignored) + listing(root, MAILBOXES_DIR, ignored)
