"""What `check` and `plan --check` share on the command line: the network options and the
progress bar."""

from __future__ import annotations

import argparse
import sys

from mailgitops import output
from mailgitops.connect.probe import Options, make_context
from mailgitops.connect.runner import Progress
from mailgitops.errors import MailgitopsError


def options_from(args: argparse.Namespace) -> Options:
    try:
        context = make_context(args.ca_file)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise MailgitopsError(f"cannot load --ca-file {args.ca_file}: {reason}") from None
    return Options(timeout=args.timeout, context=context)


def progress_bar() -> Progress | None:
    """A progress bar on stderr when it is a terminal (never in a CI log); None otherwise."""
    if not sys.stderr.isatty():
        return None
    width = 30

    def show(done: int, total: int) -> None:
        filled = width * done // total
        output.err(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} providers", end="")
        if done == total:
            output.err("\r" + " " * (width + 30) + "\r", end="")
        sys.stderr.flush()

    return show
