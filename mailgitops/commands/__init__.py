"""One module per command; each has `register(subparsers)` that adds its parser
(common.add_command), a frozen dataclass of its options, and `run(options) -> int`. cli.py
lists them and fills the options once from argparse."""
