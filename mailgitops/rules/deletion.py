"""The deletion rule, the domain's one hard rule (SPEC §4): a provider cannot be deleted while
any mailbox in live that the plan does not delete or move away from it would still use it —
managed or made outside mailgitops, as the CRM itself refuses to delete a MailServer that
MailboxSyncSettings rows reference.

It has two entry points: `refusals` on a plan, and `removed_provider_refusals` on a config
that no longer defines a provider its own mailboxes name (that config has errors, so there is
no plan to check, but the reader must see the same rule with the same words)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from mailgitops.plan.result import Plan, Refusal
from mailgitops.state.base import State

if TYPE_CHECKING:
    from mailgitops.validate import CheckedConfig

RULE = "deletion-rule"
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


def refusals(plan: Plan, state: State) -> list[Refusal]:
    """One refusal per provider the plan deletes while a mailbox would still use it."""
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
        RULE,
        f"cannot delete provider `{provider}`: {len(details)} mailbox(es) would still use it. "
        + FIX_HINT,
        tuple(details),
    )


def removed_provider_refusals(checked: CheckedConfig, state: State) -> list[Refusal]:
    """When a provider was removed from the config while mailboxes of the config still use it,
    report it as the deletion rule does: the provider the plan would have to delete and each
    mailbox with its FILE:LINE (SPEC §4)."""
    gone: dict[str, list[tuple[str, str | None]]] = {}
    live_managed = {name for name, _ in state.managed("provider")}
    for mb in checked.mailboxes:
        if mb.provider is not None or mb.address is None:
            continue
        named = mb.merged.get("provider")
        if not isinstance(named, str):
            live = state.mailboxes.get(mb.address) or {}
            named = live.get("provider")
        if isinstance(named, str) and named in live_managed:
            gone.setdefault(named, []).append((mb.address, mb.place_text("address")))
    return [provider_in_use(name, users) for name, users in sorted(gone.items())]
