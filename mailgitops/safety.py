"""Rules that refuse a plan, and the mass-deletion threshold.

The deletion rule (SPEC §4): a provider cannot be deleted while any mailbox in live that the
plan does not delete or move away from it would still use it — managed or made outside
mailgitops, as the CRM itself refuses to delete a MailServer that MailboxSyncSettings rows
reference."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from mailgitops.plan import Plan, Refusal
from mailgitops.state.base import State

FIX_HINT = (
    "Delete these mailboxes or move them to another provider in the same plan, or keep the "
    "provider in providers.d/."
)


def mailbox_users_after(plan: Plan, state: State) -> dict[str, list[tuple[str, str | None]]]:
    """Provider name -> [(mailbox address, config place or None when made outside)] for every
    mailbox that exists once the plan is applied. Keyed by the exact live key, as apply_to
    writes: two live mailboxes that differ only in case are two mailboxes until one is
    deleted or adopted."""
    after: dict[str, tuple[str, str | None]] = {}
    for address, entry in state.mailboxes.items():
        provider = entry.get("provider")
        if isinstance(provider, str):
            after[address] = (provider, None)
    for change in plan.changes:
        if change.kind != "mailbox":
            continue
        if change.action == "delete":
            after.pop(change.id, None)
            continue
        if change.live_key is not None:
            after.pop(change.live_key, None)
        if change.after is not None:
            place = str(change.source) if change.source is not None else None
            after[change.id] = (str(change.after.get("provider")), place)
    users: dict[str, list[tuple[str, str | None]]] = {}
    for address, (provider, place) in sorted(after.items()):
        users.setdefault(provider, []).append((address, place))
    return users


def deletion_refusals(plan: Plan, state: State) -> list[Refusal]:
    deleted = [c.id for c in plan.changes if c.kind == "provider" and c.action == "delete"]
    if not deleted:
        return []
    users = mailbox_users_after(plan, state)
    return [provider_in_use(p, users[p]) for p in deleted if users.get(p)]


def provider_in_use(provider: str, mailboxes: Iterable[tuple[str, str | None]]) -> Refusal:
    """The refusal naming every mailbox that keeps `provider` alive: with its config place, or
    as made outside mailgitops (a managed mailbox that left the config is deleted by the plan,
    so a live-only user is always an unmanaged one)."""
    details = [
        f"{address} ({place})" if place else f"{address} (created outside mailgitops)"
        for address, place in mailboxes
    ]
    return Refusal(
        "deletion-rule",
        f"cannot delete provider `{provider}`: {len(details)} mailbox(es) would still use it. "
        + FIX_HINT,
        tuple(details),
    )


def check(plan: Plan, state: State) -> Plan:
    """The plan with every refusal that applies to it."""
    refusals = deletion_refusals(plan, state)
    if not refusals:
        return plan
    return dataclasses.replace(plan, refusals=(*plan.refusals, *refusals))


DEFAULT_MAX_DELETE_SHARE = 0.25
DEFAULT_MIN_MANAGED = 10


def mass_deletion(plan: Plan, state: State, settings: dict[str, Any]) -> str | None:
    """A warning when the plan deletes more than `safety.max_delete_share` of the managed
    mailboxes (once at least `safety.min_managed` are managed); None otherwise. `plan` shows
    it prominently and succeeds (reviewers must see what would happen); `apply` refuses
    such a plan unless --allow-mass-delete is given."""
    section = settings.get("safety")
    section = section if isinstance(section, dict) else {}
    share = section.get("max_delete_share", DEFAULT_MAX_DELETE_SHARE)
    minimum = section.get("min_managed", DEFAULT_MIN_MANAGED)
    managed = sum(1 for _ in state.managed("mailbox"))
    deleted = sum(1 for c in plan.changes if c.kind == "mailbox" and c.action == "delete")
    if managed < minimum or deleted == 0 or deleted <= share * managed:
        return None
    return (
        f"MASS DELETION: this plan deletes {deleted} of {managed} managed mailboxes "
        f"({deleted / managed:.0%}), more than the {share:.0%} allowed (safety.max_delete_share "
        "in mailgitops.yaml); apply refuses it unless given --allow-mass-delete"
    )
