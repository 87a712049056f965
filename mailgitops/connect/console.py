"""What `check` and `plan --check` share on the command line: the network options and the
progress bar."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from mailgitops import output
from mailgitops.connect.probe import Options, make_context
from mailgitops.connect.runner import Progress
from mailgitops.errors import MailgitopsError


@dataclass(frozen=True)
class NetworkOptions:
    """--timeout, --jobs and --ca-file: the options of `check` and `plan --check`
    (their commands' options extend it)."""

    timeout: float
    jobs: int
    ca_file: str | None


def options_from(network: NetworkOptions) -> Options:
    try:
        context = make_context(network.ca_file)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise MailgitopsError(f"cannot load --ca-file {network.ca_file}: {reason}") from None
    return Options(timeout=network.timeout, context=context)


def progress_bar() -> Progress | None:
    """The bar of output.Progress on stderr when it is a terminal (never in a CI log), fed by
    the runner's (done, total) callbacks; None otherwise."""
    if not sys.stderr.isatty():
        return None
    bar: output.Progress | None = None

    def show(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = output.Progress(total, "", minimum=1, unit=" providers")
        bar.step()
        if done == total:
            bar.close()

    return show
