"""Rules that refuse a plan. The deletion rule (SPEC §4): a provider cannot be deleted while any
mailbox in live that the plan does not delete or move away from it would still use it —
managed or made outside mailgitops, as the CRM itself refuses to delete a MailServer that
MailboxSyncSettings rows reference."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from mailgitops.plan import Plan, Refusal
from mailgitops.state.base import State

FIX_HINT = (
    "Delete these mailboxes or move them to another provider in the same plan, or keep the "
    "provider in providers.d/."
)


def mailbox_users_after(plan: Plan, state: State) -> dict[str, list[tuple[str, str | None]]]:
    """Provider name -> [(mailbox address, config place or None when made outside)] for every
    mailbox that exists once the plan is applied."""
    after: dict[str, tuple[str, str | None]] = {}
    for address, entry in state.mailboxes.items():
        provider = entry.get("provider")
        if isinstance(provider, str):
            after[address.lower()] = (provider, None)
    for change in plan.changes:
        if change.kind != "mailbox":
            continue
        key = change.id.lower()
        if change.action == "delete":
            after.pop(key, None)
        elif change.after is not None:
            place = str(change.source) if change.source is not None else None
            after[key] = (str(change.after.get("provider")), place)
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
