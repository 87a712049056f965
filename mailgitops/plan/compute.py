"""The plan that makes live match desired: its changes in the order they will be applied
(SPEC §4). A pure diff: nothing refuses here; every rule that can refuse or warn is in rules/
and is evaluated on the plan by rules.evaluate."""

from __future__ import annotations

import dataclasses
from typing import Any

from mailgitops.diagnostics import Place
from mailgitops.model import KEEP_LIVE, KNOWN_KEYS, fold_address
from mailgitops.plan.changes import Action, Change, Kind, Unmanaged
from mailgitops.plan.desired import Desired
from mailgitops.plan.diff import attribute_diff
from mailgitops.plan.result import Plan, StateRef
from mailgitops.state.base import State


def _strip(entry: dict[str, Any]) -> dict[str, Any]:
    out = dict(entry)  # a copy in C: this runs for every live entry
    out.pop("managed", None)
    return out


def _match(
    live: dict[str, dict[str, Any]], key: str, lowered: dict[str, str]
) -> tuple[str | None, dict[str, Any] | None]:
    """The live entry for a desired key; mailbox addresses match case-insensitively."""
    if key in live:
        return key, live[key]
    original = lowered.get(key)
    if original is not None:
        return original, live[original]
    return None, None


def _as_live_keeps(kind: Kind, after: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """The desired entry as it will be in live: attributes the config format does not know
    (a CRM's `crm_id`, say) are kept from live, and an attribute the config says to keep as
    it is live (`password: {keep: live}`, docs/secrets.md) takes live's value, or stays absent
    where live has none. Nothing mailgitops cannot see is dropped or invented."""
    known = KNOWN_KEYS[kind]
    if before.keys() <= known and KEEP_LIVE not in after.values():
        return after  # the usual entry, told in C without a loop over its attributes
    kept = {k: v for k, v in before.items() if k not in known}
    keeps = [k for k, v in after.items() if v == KEEP_LIVE]
    out = {**kept, **after}
    for k in keeps:
        if k in before:
            out[k] = before[k]
        else:
            del out[k]
    return out


def _compare(
    kind: Kind,
    desired: dict[str, tuple[dict[str, Any], Place | None]],
    live: dict[str, dict[str, Any]],
) -> tuple[list[Change], list[Change], list[Unmanaged]]:
    """(creates/updates/adopts, deletes, unmanaged) for one kind of entry."""
    lowered = {fold_address(k): k for k in live} if kind == "mailbox" else {}
    upserts: list[Change] = []
    matched: set[str] = set()
    for key, (wanted, source) in desired.items():
        live_key, entry = _match(live, key, lowered)
        if entry is None or live_key is None:
            # A create keeps `{keep: live}` as written: rules/secret_policy.py refuses it.
            upserts.append(Change("create", kind, key, None, wanted, source=source))
            continue
        matched.add(live_key)
        before = _strip(entry)
        after = _as_live_keeps(kind, wanted, before)
        renamed = live_key if live_key != key else None
        managed = entry.get("managed") is True
        if managed and before == after and renamed is None:  # cheap equality first
            continue
        notes: tuple[str, ...] = ()
        if not managed and kind == "mailbox" and before.get("owner") not in (None, after["owner"]):
            notes = (
                f"owner change: {before.get('owner')} -> {after['owner']} (the live mailbox "
                "belongs to another user)",
            )
        action: Action = "update" if managed else "adopt"
        diff = attribute_diff(before, after)
        upserts.append(Change(action, kind, key, before, after, diff, source, renamed, notes))
    deletes: list[Change] = []
    unmanaged: list[Unmanaged] = []
    for live_key in sorted(live):
        if live_key in matched:
            continue
        entry = live[live_key]
        if entry.get("managed") is True:
            deletes.append(Change("delete", kind, live_key, _strip(entry), None))
        else:
            provider = entry.get("provider") if kind == "mailbox" else None
            unmanaged.append(
                Unmanaged(kind, live_key, provider if isinstance(provider, str) else None)
            )
    return upserts, deletes, unmanaged


def _derived_notes(changes: list[Change]) -> list[Change]:
    """Say why a mailbox's login changes when its provider's login_format changed."""
    changed_format = {
        c.id
        for c in changes
        if c.kind == "provider" and any(d.path == "login_format" for d in c.diff)
    }
    if not changed_format:
        return changes
    out = []
    for change in changes:
        c = change
        if (
            c.kind == "mailbox"
            and c.after is not None
            and c.after.get("provider") in changed_format
            and any(d.path == "login" for d in c.diff)
        ):
            note = (
                f"login follows the login_format of provider `{c.after['provider']}`, "
                "which changes in this plan"
            )
            c = dataclasses.replace(c, notes=(*c.notes, note))
        out.append(c)
    return out


def compute(desired: Desired, state: State) -> Plan:
    """The plan that makes `state` match `desired`, in the order of application (SPEC §4):
    provider upserts, mailbox upserts, mailbox deletes, provider deletes. Rules are not
    evaluated here (rules.evaluate)."""
    p_up, p_del, p_unmanaged = _compare("provider", desired.providers, state.providers)
    m_up, m_del, m_unmanaged = _compare("mailbox", desired.mailboxes, state.mailboxes)
    changes = _derived_notes([*p_up, *m_up, *m_del, *p_del])
    return Plan(
        changes=tuple(changes),
        unmanaged=tuple(p_unmanaged + m_unmanaged),
        state=StateRef.of(state),
    )
