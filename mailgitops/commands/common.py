"""Arguments shared by several commands."""

from __future__ import annotations

import argparse


def add_root_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-C",
        "--root",
        default=".",
        metavar="DIR",
        help="the config repository (default: the current directory)",
    )


def add_state_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state",
        metavar="PATH",
        help="the live state (default: $MAILGITOPS_STATE, then the state "
        "setting of mailgitops.yaml, then <root>/mailgitops.state.json)",
    )


def add_cache_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="do not use the cache of parsed files ($MAILGITOPS_CACHE_DIR, else "
        "~/.cache/mailgitops)",
    )
