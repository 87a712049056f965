"""Command line: parse with argparse, fill the chosen command's typed options once, dispatch to
its `run` (mailgitops/commands/*.py), and the one top-level error handler."""

from __future__ import annotations

import argparse
import dataclasses
import gc
import importlib
import os
import sys
import tempfile
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

from mailgitops import __version__, output
from mailgitops.errors import ConfigError, MailgitopsError, UsageError

# Command name -> module in mailgitops.commands. A run imports only the module of its command
# (a CLI's start-up time is paid on every CI step); help and usage errors import them all.
COMMANDS = {
    "validate": "validate",
    "plan": "plan",
    "apply": "apply",
    "show": "show",
    "resolve": "resolve",
    "import": "import_live",
    "import-ispdb": "import_ispdb",
    "state": "state",
    "check": "check",
    "init": "init",
    "schemas": "schemas",
    "completion": "completion",
    "render": "render",
}


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on a usage error; SPEC §5 reserves 2 for --detailed-exitcode."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message}\n{self.format_usage().rstrip()}")


def _chosen(argv: Sequence[str]) -> str | None:
    """The command named on the command line, if it is a known one."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mailgitops",
        description="Declarative GitOps for a CRM's email providers and mailboxes.",
    )
    parser.add_argument("--version", action="version", version=f"mailgitops {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show a traceback for unexpected errors"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, module in COMMANDS.items():
        if only is None or name == only:
            importlib.import_module(f"mailgitops.commands.{module}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # A run builds hundreds of thousands of small dicts and lists that live until it ends, and
    # holds no reference cycles worth collecting: the cyclic garbage collector would scan them
    # again and again (2.6x the whole plan's time at 100,000 mailboxes, docs/performance.md).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _main(argv)
    finally:
        if collecting:
            gc.enable()


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser(_chosen(sys.argv[1:] if argv is None else argv))
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return 1
        code: int = args.func(options_of(args.options, args))
        # Inside the handler: a full disk or a closed pipe under `> FILE` shows here, not as
        # an exception Python ignores at exit with the result lost.
        if sys.stdout is not None:
            sys.stdout.flush()
        return code
    except MailgitopsError as exc:
        _report(exc)
        return 1
    except KeyboardInterrupt:
        output.error("interrupted")
        return 1
    except BrokenPipeError:
        # `mailgitops plan | head`: the reader went away; nothing to report.
        sys.stderr.close()
        return 1
    except OSError as exc:
        # An I/O failure no command turned into its own message: standard output closed or
        # full (`plan > /dev/full`), a failing disk. The system's words, not "a bug".
        output.discard_stdout()
        where = f" ({output.visible(str(exc.filename))})" if exc.filename else ""
        output.error(f"I/O error{where}: {exc.strerror or exc}")
        return 1
    except Exception as exc:  # the one place that catches everything: a bug, not user error
        log = _write_crash_log()
        if "--debug" in (argv if argv is not None else sys.argv[1:]):
            traceback.print_exc()
        output.error(
            f"unexpected {type(exc).__name__}: this is a bug in mailgitops. Details: {log}"
        )
        return 1


def options_of(kind: type[Any], args: argparse.Namespace) -> Any:
    """A command's frozen options dataclass, filled once from what argparse parsed: each
    field is the argument of the same `dest` (commands set `options=` with their `run`)."""
    return kind(**{field.name: getattr(args, field.name) for field in dataclasses.fields(kind)})


def _report(exc: MailgitopsError) -> None:
    """An expected failure on stderr: a config's findings and the rules it breaks first, as
    validate prints them, then `error: MESSAGE`."""
    if isinstance(exc, ConfigError):
        if exc.diagnostics:
            from mailgitops.render.diagnostics import to_stderr

            to_stderr(exc.diagnostics)
        for refusal in exc.refusals:
            output.error(str(refusal))
    output.error(str(exc))


def _write_crash_log() -> str:
    """Keep the traceback out of the user's face but available. Tracebacks can include local
    values only if we print them; format_exc() prints code lines and the message, never locals."""
    try:
        fd, path = tempfile.mkstemp(prefix="mailgitops-crash-", suffix=".log")
        with os.fdopen(fd, "w") as fh:
            fh.write(f"mailgitops {__version__}\n{traceback.format_exc()}")
        return path
    except OSError:
        return "(could not write a crash log)"
