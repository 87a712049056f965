"""The plan (SPEC §4): the config's entries (desired.py) against the live state, as changes
in the order they will be applied (compute.py, with the attribute diff of each entry in
diff.py), held by a Plan (result.py) that the rules evaluate, the renderers show, a plan file
carries and apply_to applies (apply.py)."""
