"""Rendering a template of providers.d/ or mailboxes.d/ (SPEC §7) in the sandbox, and placing
what goes wrong at the template's lines (Jinja2 knows lines; the column is found from the
name the message quotes).

The rendered text is then parsed and checked exactly like a `.yaml` file of that folder, as a
Document whose path is the template's: findings in the rendered YAML are at rendered lines
(`mailgitops render FILE` prints them numbered), template errors at the template's lines."""

from __future__ import annotations

import contextlib
import re
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2.exceptions import (
    SecurityError,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
)

from mailgitops.config.budget import ParseBudget
from mailgitops.config.files import TEMPLATES_DIR, parse_cached, read_raw
from mailgitops.config.parse import Document, ParsedCache
from mailgitops.config.templates.inputs import Inputs
from mailgitops.config.templates.limits import MAX_TEMPLATE_BYTES, TemplateLimit, collect
from mailgitops.config.templates.sandbox import IncludeLoader, SandboxEnvironment, printable
from mailgitops.diagnostics import Diagnostic


@dataclass
class Rendered:
    text: str | None  # None when the render failed
    diagnostics: list[Diagnostic]


_RULES: tuple[tuple[type[BaseException], str], ...] = (
    (TemplateSyntaxError, "template-syntax"),
    (UndefinedError, "template-undefined"),
    (TemplateNotFound, "template-undefined"),
    (SecurityError, "template-sandbox"),
    (TemplateLimit, "template-limit"),
    (RecursionError, "template-limit"),
    (MemoryError, "template-limit"),
)
_QUOTED = re.compile(r"'([A-Za-z_][A-Za-z0-9_]*)'")
_TAG = re.compile(r"\{[{%].*?(?:[}%]\}|$)")


def render_source(root: Path, relpath: str, source: str, inputs: Inputs) -> Rendered:
    """Render one template's text. Never raises for bad input."""
    loader = IncludeLoader(root)
    env = SandboxEnvironment(loader, inputs.deadline)
    # globals, not render arguments: an imported template sees them too
    env.globals.update(inputs.variables)
    files = {relpath: source}
    try:
        env.budget.check()  # the run's budget may be spent by the templates before this one
        template = _compile(env, source, relpath)
        text = collect(
            template.generate(),
            "the rendered text is larger than the limit of a YAML file",
            env.budget.tick,  # a chunk is a loop's step too: the clock is looked at as it goes
        )
        return Rendered(text, [])
    except Exception as exc:  # every failure of a render becomes a finding, see _diagnose
        return Rendered(None, [_diagnose(exc, relpath, files, loader)])


def _compile(env: SandboxEnvironment, source: str, relpath: str) -> Any:
    code = env.compile(source, name=relpath, filename=relpath)
    return env.template_class.from_code(env, code, env.make_globals(None), None)


def _diagnose(
    exc: BaseException, relpath: str, files: dict[str, str], loader: IncludeLoader
) -> Diagnostic:
    rule = next((r for kind, r in _RULES if isinstance(exc, kind)), "template-error")
    file, line = relpath, 1
    if isinstance(exc, TemplateSyntaxError):
        file, line = exc.filename or relpath, exc.lineno or 1
    else:
        known = {relpath, *loader.filenames}
        for frame, lineno in traceback.walk_tb(exc.__traceback__):
            if frame.f_code.co_filename in known:
                file, line = frame.f_code.co_filename, lineno
    if isinstance(exc, RecursionError):
        message = "templates nested too deeply (a recursive include or macro?)"
    elif isinstance(exc, MemoryError):
        message = "the render ran out of memory"
    elif isinstance(exc, TemplateNotFound):
        message = f"template `{printable(str(exc.name or exc))}` not found in {TEMPLATES_DIR}/"
    elif isinstance(exc, TemplateError | TemplateLimit):
        message = printable(str(exc.message if isinstance(exc, TemplateError) else exc))
    else:  # a Python error inside an expression: 1/0, int("x"), …
        message = f"{type(exc).__name__}: {printable(str(exc))}"
    return Diagnostic(file, line, _column(exc, file, line, files, loader), "error", message, rule)


def _column(
    exc: BaseException, file: str, line: int, files: dict[str, str], loader: IncludeLoader
) -> int:
    """Jinja2 knows lines, not columns: the column of the name the message quotes, if that
    name is on the line."""
    source = files.get(file)
    if source is None and file.startswith(f"{TEMPLATES_DIR}/"):
        with contextlib.suppress(OSError, UnicodeDecodeError):
            source = (loader.base / file[len(TEMPLATES_DIR) + 1 :]).read_text("utf-8-sig")
    if source is None:
        return 1
    lines = source.splitlines()
    if not 0 < line <= len(lines):
        return 1
    text = lines[line - 1]
    # a name inside {{ … }} or {% … %} first: `owner: {{ owner }}` means the second one
    spans = [(m.start(), m.end()) for m in _TAG.finditer(text)] + [(0, len(text))]
    for name in reversed(_QUOTED.findall(str(exc))):
        for start, end in spans:
            match = re.compile(rf"\b{re.escape(name)}\b").search(text, start, end)
            if match:
                return match.start() + 1
    indent = len(text) - len(text.lstrip())
    return indent + 1


def read_template(
    root: Path,
    relpath: str,
    cache: ParsedCache | None,
    inputs: Inputs,
    budget: ParseBudget | None = None,
) -> Document:
    """A template of providers.d/ or mailboxes.d/, rendered and parsed: a Document like any
    YAML file's, named by the template, at the lines of the rendered text. The rendered text
    is charged to the run's parse budget like a file's."""
    raw = read_raw(root, relpath, MAX_TEMPLATE_BYTES)
    if isinstance(raw, Document):
        return raw
    if cache is not None:
        text = cache.rendered(relpath, raw, inputs.digest)
        if text is not None:
            return parse_cached(text.encode(), relpath, cache, budget)
    rendered = render_file(root, relpath, raw, inputs)
    if rendered.text is None:
        return Document(relpath, None, diagnostics=rendered.diagnostics)
    doc = parse_cached(rendered.text.encode(), relpath, cache, budget)
    if cache is not None and not doc.diagnostics:
        cache.remember_rendered(relpath, raw, inputs.digest, rendered.text)
    return doc


def render_file(root: Path, relpath: str, raw: bytes, inputs: Inputs) -> Rendered:
    if len(raw) > MAX_TEMPLATE_BYTES:
        message = f"the template is larger than {MAX_TEMPLATE_BYTES:,} bytes, the limit"
        return Rendered(None, [Diagnostic(relpath, 1, 1, "error", message, "file-too-large")])
    try:
        source = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        message = f"not UTF-8: byte 0x{raw[exc.start]:02x} cannot be decoded"
        return Rendered(None, [Diagnostic(relpath, line, 1, "error", message, "encoding")])
    return render_source(root, relpath, source, inputs)
