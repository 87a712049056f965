"""Templates: `providers.d/*.yaml.j2` and `mailboxes.d/*.yaml.j2` (SPEC §7).

A template is written by the author of a pull request, who is an attacker (SPEC §9). So it is
rendered in Jinja2's immutable sandbox with StrictUndefined, sees nothing but `vars:` of
mailgitops.yaml and the data files of `<root>/data/` (no environment, clock, file or network),
includes only files inside `<root>/templates/`, and every way to spend time or memory is
bounded: loops (each iteration is counted, with the deadline and the memory checked as it
goes), calls (the depth of macro recursion, integer arguments, the size of what they return),
the operators that grow values (`*`, `**`, `+`, `%`, `~`), every buffer joined and the output
itself. None of this uses sys.settrace: the counting is compiled into the template.

The rendered text is then parsed and checked exactly like a `.yaml` file of that folder, as a
Document whose path is the template's: findings in the rendered YAML are at rendered lines
(`mailgitops render FILE` prints them numbered), template errors at the template's lines."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import BaseLoader, StrictUndefined, nodes
from jinja2.exceptions import (
    SecurityError,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
)
from jinja2.runtime import LoopContext, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment

from mailgitops.cache import Cache
from mailgitops.diagnostics import Diagnostic
from mailgitops.load import (
    MAX_FILE_BYTES,
    Document,
    ParseBudget,
    parse,
    parse_cached,
    read_raw,
)

DATA_DIR = "data"
TEMPLATES_DIR = "templates"
DATA_SUFFIXES = (".yaml", ".yml", ".json")

# The bounds of one render. A roster of 100,000 mailboxes stays far below each of them.
TIME_BUDGET_SECONDS = 10.0  # one template
RUN_TIME_BUDGET_SECONDS = 30.0  # all templates of one run: many hostile files stay bounded too
MAX_OUTPUT_BYTES = MAX_FILE_BYTES  # what a hand-written YAML file may be
MAX_ITERATIONS = 2_000_000  # loop iterations of one render, all loops together
MAX_RANGE = 100_000  # items of one range()
MAX_CALL_DEPTH = 40  # nested macro calls (recursion)
MAX_INT_ARGUMENT = MAX_FILE_BYTES  # a width or count beyond this can only be a bomb
MAX_ITEMS = 1_000_000  # items of a list or tuple built by `*` or `+`
MAX_INT_BITS = 4096  # `**` and `*` on integers
MEMORY_BUDGET_BYTES = 512 * 1024 * 1024  # growth of the process while rendering
# A template is short (the many entries come from data): a bigger one would take Jinja2 seconds
# to compile, before any bound of the render can look.
MAX_TEMPLATE_BYTES = 256 * 1024
MAX_DATA_BYTES = MAX_FILE_BYTES  # all data files together
_CHECK_EVERY = 64  # iterations between two looks at the clock and the memory
# a format width of 8+ digits, `%*d`, or a width taken from an argument: `{0:{1}}`
_BIG_WIDTH = re.compile(r"\d{8,}|%[-#0 +]*\*|\{[^{}]*:[^{}]*\{")


class TemplateLimit(Exception):
    """A render went past one of the bounds above."""


def _rss() -> int | None:
    """The resident memory of this process, where /proc tells it cheaply."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class _Budget:
    deadline: float
    rss_start: int | None
    iterations: int = 0
    depth: int = 0
    produced: int = 0  # bytes returned by calls and operators, all together
    checks: int = 0

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateLimit(
                f"the render took longer than its time budget ({TIME_BUDGET_SECONDS:g} s for a "
                f"template, {RUN_TIME_BUDGET_SECONDS:g} s for all templates of the config; a "
                "loop bomb?)"
            )
        self.checks += 1
        # /proc is read every few checks only: each call and filter checks, and a roster of
        # 10,000 makes tens of thousands of them
        if self.rss_start is not None and self.checks % _CHECK_EVERY == 0:
            rss = _rss()
            if rss is not None and rss - self.rss_start > MEMORY_BUDGET_BYTES:
                raise TemplateLimit(
                    f"the render used more than {MEMORY_BUDGET_BYTES // 2**20} MiB of memory"
                )

    def tick(self) -> None:
        self.iterations += 1
        if self.iterations > MAX_ITERATIONS:
            raise TemplateLimit(
                f"the loops of this template ran more than {MAX_ITERATIONS:,} iterations "
                "(a loop bomb?)"
            )
        if self.iterations % _CHECK_EVERY == 0:
            self.check()  # the memory every _CHECK_EVERY ** 2 iterations

    def produce(self, value: Any) -> Any:
        if value is None or type(value) in (bool, int, float):
            return value
        size = _size(value)
        if size > MAX_OUTPUT_BYTES:
            raise TemplateLimit(
                f"a value of {size:,} characters or items is larger than the output limit "
                f"of {MAX_OUTPUT_BYTES:,} bytes"
            )
        self.produced += size
        if self.produced > 16 * MAX_OUTPUT_BYTES:
            raise TemplateLimit(
                f"the template built more than {16 * MAX_OUTPUT_BYTES:,} characters in all"
            )
        return value


def _size(value: Any) -> int:
    return len(value) if isinstance(value, (str, list, tuple, dict)) else 0


def _check_int(value: Any) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT_ARGUMENT:
        raise TemplateLimit(f"the number {value:.3g} is too large for an argument here")


def _check_format(text: Any) -> None:
    if isinstance(text, str) and _BIG_WIDTH.search(text):
        raise TemplateLimit("a format with a width of 8 digits or more, or `*`, is refused")


def _check_join(items: Any, sep: Any) -> None:
    """`join` is one C call: estimate its result before it allocates."""
    if isinstance(items, (list, tuple)):
        estimate = _size(sep) * max(len(items) - 1, 0)
        estimate += sum(_size(x) if isinstance(x, str) else 16 for x in items)
        if estimate > MAX_OUTPUT_BYTES:
            raise TemplateLimit(
                f"joining these values would give about {estimate:,} characters, more than "
                f"the output limit of {MAX_OUTPUT_BYTES:,} bytes"
            )


def _check_replace(text: Any, old: Any, new: Any) -> None:
    if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
        count = len(text) + 1 if not old else text.count(old)
        if len(text) + count * len(new) > MAX_OUTPUT_BYTES:
            raise TemplateLimit("this replace would give more than the output limit")


class _Loader(BaseLoader):
    """Includes and imports: only regular files inside <root>/templates/, by a relative name
    without `..` (symlinks are resolved, and must stay inside)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.base = root / TEMPLATES_DIR
        self.filenames: set[str] = set()

    def get_source(
        self, environment: Any, template: str
    ) -> tuple[str, str, Callable[[], bool] | None]:
        parts = template.split("/")
        if (
            not template
            or template.startswith("/")
            or any(ch in template for ch in "\\\0:")
            or any(part in ("", ".", "..") for part in parts)
        ):
            raise SecurityError(
                f"`{_printable(template)}` is not a template name inside {TEMPLATES_DIR}/: "
                "includes and imports take a relative path without `..`"
            )
        if isinstance(environment, _Environment):
            environment.budget.check()  # compiling costs time too
        path = self.base.joinpath(*parts)
        try:
            real = path.resolve()
            base = self.base.resolve()
            inside = real.is_relative_to(base) and base.is_relative_to(self.root.resolve())
        except (OSError, RuntimeError):  # a symlink loop
            inside = False
        if not inside:
            raise SecurityError(
                f"`{_printable(template)}` resolves outside {TEMPLATES_DIR}/ (a symlink?)"
            )
        if not real.is_file():
            raise TemplateNotFound(f"{TEMPLATES_DIR}/{template}")
        try:
            with open(real, "rb") as fh:
                raw = fh.read(MAX_TEMPLATE_BYTES + 1)
        except OSError as exc:
            raise TemplateNotFound(f"{TEMPLATES_DIR}/{template}: {exc.strerror}") from None
        if len(raw) > MAX_TEMPLATE_BYTES:
            raise TemplateLimit(
                f"{TEMPLATES_DIR}/{template} is larger than {MAX_TEMPLATE_BYTES:,} bytes, the "
                "limit of a template"
            )
        try:
            source = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise SecurityError(f"{TEMPLATES_DIR}/{template} is not UTF-8") from None
        filename = f"{TEMPLATES_DIR}/{template}"
        self.filenames.add(filename)
        return source, filename, lambda: True


_DROPPED_FILTERS = ("random",)  # a render is reproducible


class _Environment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"+", "*", "**", "%", "//"})

    def __init__(self, loader: _Loader, run_deadline: float) -> None:
        super().__init__(
            loader=loader,
            undefined=StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
            # YAML is all about indentation: a block tag's line leaves no trace in the output
            # (as in Ansible and Salt).
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        deadline = min(time.monotonic() + TIME_BUDGET_SECONDS, run_deadline)
        self.budget = _Budget(deadline, _rss())
        # The default globals: `range` comes back bounded; `dict` is `{}` spelled longer;
        # `lipsum` makes text of any size; `cycler`, `joiner` and `namespace` are the mutable
        # state a loop would need to build something a bound does not see.
        self.globals.clear()
        self.globals["range"] = self._range
        for name in _DROPPED_FILTERS:
            self.filters.pop(name, None)
        self.filters = {name: self._bounded_filter(name, f) for name, f in self.filters.items()}
        self.filters["yaml"] = self._bounded_filter("yaml", to_yaml)
        self.filters["__mgo_loop"] = self._loop
        self.filters["__mgo_concat"] = self._concat_values
        # Through __dict__: Jinja2's type hints for `concat` differ between releases, and the
        # instance attribute is what the compiled templates read.
        self.__dict__["concat"] = self._join_buffer

    # -- compiled into every template ------------------------------------------------------

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        """Every `for` iterates through a counter, and every `~` goes through a size check."""
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Filter(
                loop.iter, "__mgo_loop", [], [], None, None, lineno=loop.lineno
            )
        for parent in tree.find_all(nodes.Node):
            for fieldname, child in parent.iter_fields():
                if isinstance(child, nodes.Concat):
                    setattr(parent, fieldname, self._checked_concat(child))
                elif isinstance(child, list):
                    for index, item in enumerate(child):
                        if isinstance(item, nodes.Concat):
                            child[index] = self._checked_concat(item)
        return tree

    @staticmethod
    def _checked_concat(node: nodes.Concat) -> nodes.Filter:
        items = nodes.Tuple(node.nodes, "load", lineno=node.lineno)
        return nodes.Filter(items, "__mgo_concat", [], [], None, None, lineno=node.lineno)

    def _loop(self, iterable: Any) -> Iterator[Any]:
        tick = self.budget.tick
        for item in iterable:
            tick()
            yield item

    def _concat_values(self, values: tuple[Any, ...]) -> str:
        size = sum(len(v) if isinstance(v, str) else 32 for v in values)
        if size > MAX_OUTPUT_BYTES:
            raise TemplateLimit(
                f"`~` would make a text of about {size:,} characters, more than the output "
                f"limit of {MAX_OUTPUT_BYTES:,} bytes"
            )
        result: str = self.budget.produce("".join(str(v) for v in values))
        return result

    def _join_buffer(self, parts: Iterable[str]) -> str:
        """The output of a macro, a block or `{% set %}…{% endset %}`, as it is collected."""
        text = _collect(parts, "a macro or block made more than the output limit", None)
        result: str = self.budget.produce(text)
        return result

    def _range(self, *args: Any) -> range:
        for arg in args:
            _check_int(arg)
        rng = range(*args)
        if len(rng) > MAX_RANGE:
            raise TemplateLimit(f"range() of {len(rng):,} items; the limit is {MAX_RANGE:,}")
        return rng

    def _bounded_filter(self, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        precheck = _FILTER_CHECKS.get(name)

        def bounded(*args: Any, **kwargs: Any) -> Any:
            for value in (*args, *kwargs.values()):
                _check_int(value)
            if precheck is not None:
                precheck([a for a in args if not _is_context(a)], kwargs)
            self.budget.check()
            return self.budget.produce(func(*args, **kwargs))

        pass_arg = getattr(func, "jinja_pass_arg", None)  # @pass_context and its kind
        if pass_arg is not None:
            bounded.jinja_pass_arg = pass_arg  # type: ignore[attr-defined]
        bounded.__name__ = getattr(func, "__name__", name)
        return bounded

    # -- the sandbox's own hooks -------------------------------------------------------------

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            _check_power(left, right)
        elif operator == "*":
            _check_product(left, right)
        elif operator == "%":
            _check_format(left)
            for value in right if isinstance(right, tuple) else (right,):
                _check_int(value)
        elif operator == "+":
            limit = MAX_OUTPUT_BYTES if isinstance(left, str) else MAX_ITEMS
            if _size(left) + _size(right) > limit:
                raise TemplateLimit(f"`+` would make a value larger than {limit:,}")
        return self.budget.produce(super().call_binop(context, operator, left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget = __self.budget
        budget.check()
        for value in (*args, *kwargs.values()):
            _check_int(value)
        # str.format comes wrapped by the sandbox (its own formatter), the str it is bound to
        # one level down
        owner = getattr(getattr(__obj, "__wrapped__", __obj), "__self__", None)
        method = getattr(__obj, "__name__", "")
        if isinstance(owner, str):
            if method == "join" and args:
                _check_join(list(args[0]) if isinstance(args[0], tuple) else args[0], owner)
            elif method == "replace" and len(args) >= 2:
                _check_replace(owner, args[0], args[1])
            elif method in ("format", "format_map"):
                _check_format(owner)
        nested = isinstance(__obj, (Macro, LoopContext))
        if isinstance(__obj, LoopContext) and args:
            # `loop(children)` of a recursive loop: its items are counted like a for's
            args = (__self._loop(args[0]), *args[1:])
        if nested:
            if budget.depth >= MAX_CALL_DEPTH:
                raise TemplateLimit(
                    f"macro calls nested more than {MAX_CALL_DEPTH} deep (a recursive macro?)"
                )
            budget.depth += 1
        try:
            result = super().call(__context, __obj, *args, **kwargs)
        finally:
            if nested:
                budget.depth -= 1
        return budget.produce(result)


_UNSAFE_IN_YAML = re.compile(
    r"[^\t\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]|[\u2028\u2029\ufeff]"
)


def to_yaml(value: Any) -> str:
    """The `yaml` filter: a value as a YAML flow scalar or collection that reads back as the
    same value, whatever it holds (quotes, `: `, `#`, a leading `*` or `!`, newlines): JSON,
    which is YAML, with non-ASCII text kept readable and every character YAML would not keep
    as it is escaped."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return _UNSAFE_IN_YAML.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _join_filter(values: list[Any], kwargs: dict[str, Any]) -> None:
    if values:
        items = values[0]
        _check_join(
            list(items) if isinstance(items, (list, tuple)) else items,
            values[1] if len(values) > 1 else kwargs.get("d", ""),
        )


def _replace_filter(values: list[Any], kwargs: dict[str, Any]) -> None:
    if len(values) >= 3:
        _check_replace(values[0], values[1], values[2])


def _format_filter(values: list[Any], kwargs: dict[str, Any]) -> None:
    if values:
        _check_format(values[0])


def _indent_filter(values: list[Any], kwargs: dict[str, Any]) -> None:
    if values and isinstance(values[0], str):
        width = values[1] if len(values) > 1 else kwargs.get("width", 4)
        lines = values[0].count("\n") + 1
        if isinstance(width, int) and lines * width + len(values[0]) > MAX_OUTPUT_BYTES:
            raise TemplateLimit("this indent would give more than the output limit")


def _slice_filter(values: list[Any], kwargs: dict[str, Any]) -> None:
    slices = values[1] if len(values) > 1 else kwargs.get("slices")
    if isinstance(slices, int) and slices > MAX_RANGE:
        raise TemplateLimit(f"slice() into more than {MAX_RANGE:,} parts")


# The filters that are one C call, or a loop of them, whose result can be far larger than
# their arguments: estimated before they run.
_FILTER_CHECKS: dict[str, Callable[[list[Any], dict[str, Any]], None]] = {
    "join": _join_filter,
    "replace": _replace_filter,
    "format": _format_filter,
    "indent": _indent_filter,
    "slice": _slice_filter,
}


def _is_context(value: Any) -> bool:
    return type(value).__name__ in ("Context", "EvalContext", "Environment", "_Environment")


def _check_power(left: Any, right: Any) -> None:
    if (
        isinstance(left, int)
        and isinstance(right, int)
        and right > 0
        and max(abs(left), 2).bit_length() * right > MAX_INT_BITS
    ):
        raise TemplateLimit(f"`**` would make a number of more than {MAX_INT_BITS} bits")


def _check_product(left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int):
        if abs(left).bit_length() + abs(right).bit_length() > MAX_INT_BITS:
            raise TemplateLimit(f"`*` would make a number of more than {MAX_INT_BITS} bits")
        return
    for seq, count in ((left, right), (right, left)):
        if isinstance(seq, (str, list, tuple)) and isinstance(count, int):
            limit = MAX_OUTPUT_BYTES if isinstance(seq, str) else MAX_ITEMS
            if len(seq) * count > limit:
                raise TemplateLimit(
                    f"`*` would make a value of {len(seq) * count:,} characters or items; "
                    f"the limit is {limit:,}"
                )


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")


def _printable(text: str) -> str:
    """Text of a template quoted in a message, without terminal control sequences."""
    return _CONTROL.sub("?", text)[:200]


# -- variables: vars: and data/ -----------------------------------------------------------------


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
        doc.problem(1, 1, f"file is larger than {MAX_FILE_BYTES:,} bytes", "file-too-large")
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
        doc.problem(exc.lineno, exc.colno, f"invalid JSON: {exc.msg}", "json-syntax")
    except UnicodeDecodeError:
        doc.problem(1, 1, "not UTF-8", "encoding")
    except ValueError as exc:
        doc.problem(1, 1, f"invalid JSON: {exc}", "json-syntax")
    except RecursionError:
        doc.problem(1, 1, "the document is nested too deeply", "yaml-depth")
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
                    with open(path, "rb") as fh:
                        parts.append(fh.read(MAX_TEMPLATE_BYTES + 1))
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


# -- rendering ----------------------------------------------------------------------------------


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
    loader = _Loader(root)
    env = _Environment(loader, inputs.deadline)
    # globals, not render arguments: an imported template sees them too
    env.globals.update(inputs.variables)
    files = {relpath: source}
    try:
        env.budget.check()  # the run's budget may be spent by the templates before this one
        template = _compile(env, source, relpath)
        text = _collect(
            template.generate(),
            "the rendered text is larger than the limit of a YAML file",
            env.budget.tick,  # a chunk is a loop's step too: the clock is looked at as it goes
        )
        return Rendered(text, [])
    except Exception as exc:  # every failure of a render becomes a finding, see _diagnose
        return Rendered(None, [_diagnose(exc, relpath, files, loader)])


def _collect(parts: Iterable[str], too_big: str, tick: Callable[[], None] | None) -> str:
    """Text made of parts, refused as soon as it passes the output limit."""
    if isinstance(parts, list):  # a macro's buffer: already in memory, measured in C
        if sum(map(len, parts)) > MAX_OUTPUT_BYTES:
            raise TemplateLimit(f"{too_big} ({MAX_OUTPUT_BYTES:,} bytes)")
        return "".join(parts)
    size = 0
    collected: list[str] = []
    for part in parts:
        size += len(part)
        if size > MAX_OUTPUT_BYTES:
            raise TemplateLimit(f"{too_big} ({MAX_OUTPUT_BYTES:,} bytes)")
        collected.append(part)
        if tick is not None:
            tick()
    return "".join(collected)


def _compile(env: _Environment, source: str, relpath: str) -> Any:
    code = env.compile(source, name=relpath, filename=relpath)
    return env.template_class.from_code(env, code, env.make_globals(None), None)


def _diagnose(
    exc: BaseException, relpath: str, files: dict[str, str], loader: _Loader
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
        message = f"template `{_printable(str(exc.name or exc))}` not found in {TEMPLATES_DIR}/"
    elif isinstance(exc, TemplateError | TemplateLimit):
        message = _printable(str(exc.message if isinstance(exc, TemplateError) else exc))
    else:  # a Python error inside an expression: 1/0, int("x"), …
        message = f"{type(exc).__name__}: {_printable(str(exc))}"
    return Diagnostic(file, line, _column(exc, file, line, files, loader), "error", message, rule)


def _column(
    exc: BaseException, file: str, line: int, files: dict[str, str], loader: _Loader
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
    cache: Cache | None,
    inputs: Inputs,
    budget: ParseBudget | None = None,
) -> Document:
    """A template of providers.d/ or mailboxes.d/, rendered and parsed: a Document like any
    YAML file's, named by the template, at the lines of the rendered text. The rendered text
    is charged to the run's parse budget like a file's."""
    raw = read_raw(root, relpath, MAX_TEMPLATE_BYTES)
    if isinstance(raw, Document):
        return raw
    key = None
    if cache is not None:
        # Keyed by every input of the render: the template, vars:, the data files and every
        # shared template (any of them may be included), and the folder (its schema).
        folder = relpath.rpartition("/")[0].encode()
        key = cache.key("template", folder, raw, inputs.digest)
        hit = cache.get(key)
        if isinstance(hit, dict) and isinstance(hit.get("text"), str):
            return parse_cached(hit["text"].encode(), relpath, cache, budget)
    rendered = render_file(root, relpath, raw, inputs)
    if rendered.text is None:
        return Document(relpath, None, diagnostics=rendered.diagnostics)
    doc = parse_cached(rendered.text.encode(), relpath, cache, budget)
    if key is not None and cache is not None and not doc.diagnostics:
        cache.put(key, {"text": rendered.text})
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
