"""The secret policy of mailgitops.yaml (`secrets.env_allow`, `secrets.file_root`) on every
secret a plan delivers: a pull request cannot point a password at a CI credential or at
/etc/shadow. `validate` reports the same references in the config (validate/mailboxes.py);
this rule holds for any plan, including one re-derived from a plan file."""

from __future__ import annotations

from pathlib import Path

from mailgitops import secrets
from mailgitops.model import KEEP_LIVE
from mailgitops.plan.result import Plan, Refusal
from mailgitops.settings import SecretsPolicy

RULE = "secret-policy"


def refusal(plan: Plan, policy: SecretsPolicy | None, root: Path) -> Refusal | None:
    denied = secrets.violations(plan.changes, policy, root)
    # `{keep: live}` on an entry live does not have would create a mailbox without the
    # password its provider needs: there is nothing to keep.
    denied += [
        f"{c.kind} `{c.id}`{f' ({c.source})' if c.source else ''}: password: {{keep: live}}, "
        "but live has no such mailbox, so there is no password to keep: give a reference"
        for c in plan.changes
        if c.action == "create" and c.after is not None and c.after.get("password") == KEEP_LIVE
    ]
    if not denied:
        return None
    return Refusal(
        RULE,
        "the plan delivers secrets that mailgitops.yaml does not allow, or none where one is "
        "needed; nothing is written",
        tuple(denied),
    )
