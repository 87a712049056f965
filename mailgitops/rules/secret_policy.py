"""The secrets a plan delivers: which they are (`delivered`), whether mailgitops.yaml's secret
policy (`secrets.env_allow`, `secrets.file_root`) allows them, so that a pull request cannot
point a password at a CI credential or at /etc/shadow, and whether they can be read here
(`plan` says which cannot; `apply` refuses to start without them). `validate` reports the same
policy on the references in the config (validate/mailboxes.py); this rule holds for any plan,
including one re-derived from a plan file."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from mailgitops import secrets
from mailgitops.model import KEEP_LIVE, REFERENCE_PATHS
from mailgitops.plan.changes import Change
from mailgitops.plan.result import Plan, Refusal
from mailgitops.settings import SecretsPolicy

RULE = "secret-policy"


def refusal(plan: Plan, policy: SecretsPolicy | None, root: Path) -> Refusal | None:
    denied = violations(plan.changes, policy, root)
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


def _refs(entry: dict[str, Any] | None) -> Iterator[tuple[str, dict[str, Any]]]:
    if not entry:
        return
    for path in REFERENCE_PATHS:
        node: Any = entry
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            yield ".".join(path), node


def delivered(change: Change) -> Iterator[dict[str, Any]]:
    """The secret references whose value applying `change` sends to the CRM: all of a new
    entry's, and those an update or adopt changes (a new reference or a new version). An
    adopt that keeps live's reference (or `{keep: live}`) sends nothing: the CRM keeps what it
    has."""
    if change.action == "delete":
        return
    changed = [d.path for d in change.diff]
    for path, ref in _refs(change.after):
        if ref == KEEP_LIVE:
            continue  # refused on a create by rules/secret_policy.py; nothing to read
        if change.action == "create" or any(c == path or c.startswith(f"{path}.") for c in changed):
            yield ref


def unreadable(changes: Iterable[Change], root: Path) -> list[str]:
    """`env:NAME (reason)` for every delivered secret that cannot be read here."""
    out: dict[str, None] = {}
    for change in changes:
        for ref in delivered(change):
            reason = secrets.unreadable_reason(ref, root)
            if reason is not None:
                out[f"{secrets.describe(ref)} ({reason})"] = None
    return list(out)


def violations(changes: Iterable[Change], policy: SecretsPolicy | None, root: Path) -> list[str]:
    """`env:NAME: reason` for every delivered secret that mailgitops.yaml does not allow."""
    out: dict[str, None] = {}
    for change in changes:
        for ref in delivered(change):
            reason = secrets.policy_violation(ref, policy, root)
            if reason is not None:
                out[f"{secrets.describe(ref)}: {reason}"] = None
    return list(out)


def with_unreadable(plan: Plan, root: Path) -> Plan:
    return dataclasses.replace(plan, unreadable_secrets=tuple(unreadable(plan.changes, root)))
