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
