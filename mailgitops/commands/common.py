"""Arguments shared by several commands, and the start of every command's parser."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mailgitops import output


def add_command(
    sub: argparse._SubParsersAction[Any],
    name: str,
    run: Callable[[Any], int],
    options: type[Any],
    *,
    help: str,
    description: str,
    root: bool = True,
) -> argparse.ArgumentParser:
    """The parser of command `name`, with -C/--root unless told otherwise, run by
    `run(options)` where `options` is its frozen options dataclass, filled by cli.options_of."""
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help, description=description)
    if root:
        add_root_argument(parser)
    parser.set_defaults(func=run, options=options)
    return parser


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """--state and --no-cache: what `plan` and `apply` read the config and state by."""
    add_state_argument(parser)
    add_cache_argument(parser)


def add_actor_argument(parser: argparse.ArgumentParser) -> None:
    who = "who makes the changes, checked against the access rules of mailgitops.yaml"
    parser.add_argument("--actor", metavar="NAME", help=f"{who} (default: $MAILGITOPS_ACTOR)")


# The arguments several commands share: their flags and argparse keywords.
_SHARED: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "root": (
        ("-C", "--root"),
        {
            "default": ".",
            "metavar": "DIR",
            "help": "the config repository (default: the current directory)",
        },
    ),
    "state": (
        ("--state",),
        {
            "metavar": "PATH",
            "help": "the live state (default: $MAILGITOPS_STATE, then the state setting of "
            "mailgitops.yaml, then <root>/mailgitops.state.json)",
        },
    ),
    "cache": (
        ("--no-cache",),
        {
            "action": "store_true",
            "help": "do not use the cache of parsed files ($MAILGITOPS_CACHE_DIR, else "
            "~/.cache/mailgitops)",
        },
    ),
}


def _add_shared(parser: argparse.ArgumentParser, name: str) -> None:
    flags, keywords = _SHARED[name]
    parser.add_argument(*flags, **keywords)


def add_root_argument(parser: argparse.ArgumentParser) -> None:
    _add_shared(parser, "root")


def add_state_argument(parser: argparse.ArgumentParser) -> None:
    _add_shared(parser, "state")


def add_cache_argument(parser: argparse.ArgumentParser) -> None:
    _add_shared(parser, "cache")


def _number(text: str, kind: Callable[[str], float], what: str) -> float:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a {what}: {text!r}") from None


def _seconds(text: str) -> float:
    value = _number(text, float, "number of seconds")
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError("must be 0 or more seconds")
    return value


def add_lock_timeout_argument(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--lock-timeout",
        type=_seconds,
        default=0.0,
        metavar="S",
        help=f"wait up to S seconds for {what} (default 0: fail at once, naming the holder)",
    )


def _jobs(text: str) -> int:
    value = int(_number(text, int, "number"))
    if not 1 <= value <= 256:
        raise argparse.ArgumentTypeError("must be between 1 and 256")
    return value


def _timeout(text: str) -> float:
    value = _seconds(text)
    if not 0 < value <= 600:
        raise argparse.ArgumentTypeError("must be more than 0 and at most 600 seconds")
    return value


def add_check_arguments(parser: argparse.ArgumentParser) -> None:
    """The network options of `check` and `plan --check`."""
    parser.add_argument(
        "--timeout",
        type=_timeout,
        default=10.0,
        metavar="S",
        help="seconds for each step of a connection: resolving, connecting, the TLS "
        "handshake, each answer of the server (default 10)",
    )
    parser.add_argument(
        "--jobs",
        type=_jobs,
        default=8,
        metavar="N",
        help="providers checked at the same time (default 8)",
    )
    parser.add_argument(
        "--ca-file",
        metavar="PATH",
        help="also trust the CA certificates in this PEM file (a private CA), besides the "
        "system trust store ($SSL_CERT_FILE and $SSL_CERT_DIR are honoured too)",
    )


def schemas_for_headers(root: Path) -> None:
    """The files that import and import-ispdb write start with
    `# yaml-language-server: $schema=../schemas/…`: write the schemas into <root>/schemas/
    where missing (never replacing one), so that the header resolves in the user's
    repository too."""
    from mailgitops import schema

    try:
        written = [p for p, new in schema.export(root / "schemas", overwrite=False) if new]
    except OSError as exc:
        output.warn(f"could not write the schemas into {root / 'schemas'}: {exc.strerror}")
        return
    for path in written:
        output.out(f"wrote {path.relative_to(root)}")
