"""One module per command; each has `register(subparsers)` that adds its parser and sets
`func` to a function `(args) -> int`. cli.py lists them."""
