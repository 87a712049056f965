"""The sandbox a template renders in: Jinja2's immutable sandbox with StrictUndefined, no
globals but a bounded range(), includes only from inside <root>/templates/, and the counting
of config/templates/limits.py compiled into every template (no sys.settrace)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from jinja2 import BaseLoader, StrictUndefined, nodes
from jinja2.exceptions import SecurityError, TemplateNotFound
from jinja2.runtime import LoopContext, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment

from mailgitops.config.files import TEMPLATES_DIR
from mailgitops.config.templates.limits import (
    FILTER_CHECKS,
    MAX_CALL_DEPTH,
    MAX_ITEMS,
    MAX_OUTPUT_BYTES,
    MAX_RANGE,
    MAX_TEMPLATE_BYTES,
    TIME_BUDGET_SECONDS,
    RenderBudget,
    TemplateLimit,
    check_format,
    check_int,
    check_join,
    check_power,
    check_product,
    check_replace,
    collect,
    current_rss,
    size_of,
)
from mailgitops.fsutil import TooLarge, read_bounded


class IncludeLoader(BaseLoader):
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
                f"`{printable(template)}` is not a template name inside {TEMPLATES_DIR}/: "
                "includes and imports take a relative path without `..`"
            )
        if isinstance(environment, SandboxEnvironment):
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
                f"`{printable(template)}` resolves outside {TEMPLATES_DIR}/ (a symlink?)"
            )
        if not real.is_file():
            raise TemplateNotFound(f"{TEMPLATES_DIR}/{template}")
        try:
            raw = read_bounded(real, MAX_TEMPLATE_BYTES)
        except TooLarge:
            raise TemplateLimit(
                f"{TEMPLATES_DIR}/{template} is larger than {MAX_TEMPLATE_BYTES:,} bytes, the "
                "limit of a template"
            ) from None
        except OSError as exc:
            raise TemplateNotFound(f"{TEMPLATES_DIR}/{template}: {exc.strerror}") from None
        try:
            source = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise SecurityError(f"{TEMPLATES_DIR}/{template} is not UTF-8") from None
        filename = f"{TEMPLATES_DIR}/{template}"
        self.filenames.add(filename)
        return source, filename, lambda: True


_DROPPED_FILTERS = ("random",)  # a render is reproducible
_OPTIONS: dict[str, Any] = {
    "undefined": StrictUndefined,
    "autoescape": False,
    "keep_trailing_newline": True,
    # YAML is all about indentation: a block tag's line leaves no trace in the output (as in
    # Ansible and Salt).
    "trim_blocks": True,
    "lstrip_blocks": True,
    "auto_reload": False,
}


class SandboxEnvironment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"+", "*", "**", "%", "//"})

    def __init__(self, loader: IncludeLoader, run_deadline: float) -> None:
        super().__init__(loader=loader, **_OPTIONS)
        deadline = min(time.monotonic() + TIME_BUDGET_SECONDS, run_deadline)
        self.budget = RenderBudget(deadline, current_rss())
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
        text = collect(parts, "a macro or block made more than the output limit", None)
        result: str = self.budget.produce(text)
        return result

    def _range(self, *args: Any) -> range:
        for arg in args:
            check_int(arg)
        rng = range(*args)
        if len(rng) > MAX_RANGE:
            raise TemplateLimit(f"range() of {len(rng):,} items; the limit is {MAX_RANGE:,}")
        return rng

    def _bounded_filter(self, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        precheck = FILTER_CHECKS.get(name)

        def bounded(*args: Any, **kwargs: Any) -> Any:
            for value in (*args, *kwargs.values()):
                check_int(value)
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
            check_power(left, right)
        elif operator == "*":
            check_product(left, right)
        elif operator == "%":
            check_format(left)
            for value in right if isinstance(right, tuple) else (right,):
                check_int(value)
        elif operator == "+":
            limit = MAX_OUTPUT_BYTES if isinstance(left, str) else MAX_ITEMS
            if size_of(left) + size_of(right) > limit:
                raise TemplateLimit(f"`+` would make a value larger than {limit:,}")
        return self.budget.produce(super().call_binop(context, operator, left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget = __self.budget
        budget.check()
        for value in (*args, *kwargs.values()):
            check_int(value)
        # str.format comes wrapped by the sandbox (its own formatter), the str it is bound to
        # one level down
        owner = getattr(getattr(__obj, "__wrapped__", __obj), "__self__", None)
        method = getattr(__obj, "__name__", "")
        if isinstance(owner, str):
            if method == "join" and args:
                check_join(list(args[0]) if isinstance(args[0], tuple) else args[0], owner)
            elif method == "replace" and len(args) >= 2:
                check_replace(owner, args[0], args[1])
            elif method in ("format", "format_map"):
                check_format(owner)
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


def _is_context(value: Any) -> bool:
    return type(value).__name__ in ("Context", "EvalContext", "Environment", "SandboxEnvironment")


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """Text of a template quoted in a message, without terminal control sequences."""
    return _CONTROL.sub("?", text)[:200]
