"""Reading a config root: its files (files.py), each parsed into a Document with a place for
every key and item (parse.py, loaders.py, places.py) under the limits of budget.py,
templates rendered (templates/), and the whole tree (tree.py)."""
