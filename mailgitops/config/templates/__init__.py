"""Templates: `providers.d/*.yaml.j2` and `mailboxes.d/*.yaml.j2` (SPEC §7).

A template is written by the author of a pull request, who is an attacker (SPEC §9). So it is
rendered in Jinja2's immutable sandbox (sandbox.py) with StrictUndefined, sees nothing but
`vars:` of mailgitops.yaml and the data files of `<root>/data/` (inputs.py), includes only
files inside `<root>/templates/`, and every way to spend time or memory is bounded
(limits.py). render.py renders one and places its errors."""
