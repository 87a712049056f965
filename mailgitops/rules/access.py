"""Access rules: who may make a plan's changes (docs/access.md). In the CRM only holders of the
CanManageAdministration operation set up email providers and a user manages their own
mailboxes; without the same rule here any pull request author could repoint the company's mail
servers.

When mailgitops.yaml has `access:`, every change of a plan needs a right of the actor:
- a provider (create, update, adopt, delete): an administrator;
- a mailbox: an administrator, a mailbox manager, or its owner — for a change of owner, both
  the owner before and the owner after;
- a change of a mailbox's sharing (`shared_with`): an administrator or its owner; a mailbox
  manager may run the mailbox, but handing others access to it is its owner's call.

A plan with any change the actor may not make gets one refusal that lists each such change and
the right it needs, so nothing of it is applied. User names are compared case-insensitively,
as Git hosts and the CRM compare logins."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mailgitops.errors import ConfigError, UsageError
from mailgitops.model import fold_user
from mailgitops.plan.changes import Change
from mailgitops.plan.result import Plan, Refusal
from mailgitops.settings import AccessLists, Settings

RULE = "access"
ACTOR_ENV = "MAILGITOPS_ACTOR"


@dataclass(frozen=True)
class Access:
    """The `access:` section of mailgitops.yaml, names folded for comparison."""

    administrators: frozenset[str]
    mailbox_managers: frozenset[str] = frozenset()

    @classmethod
    def of(cls, lists: AccessLists) -> Access:
        return cls(
            frozenset(fold_user(u) for u in lists.administrators),
            frozenset(fold_user(u) for u in lists.mailbox_managers),
        )

    def is_admin(self, actor: str) -> bool:
        return fold_user(actor) in self.administrators

    def is_manager(self, actor: str) -> bool:
        return fold_user(actor) in self.mailbox_managers

    def roles(self, actor: str) -> str:
        held = [
            name
            for name, has in (
                ("administrator", self.is_admin(actor)),
                ("mailbox manager", self.is_manager(actor)),
            )
            if has
        ]
        return " and ".join(held) if held else "neither administrator nor mailbox manager"


def actor_from(arg: str | None) -> str | None:
    """The acting user: `--actor`, else $MAILGITOPS_ACTOR; blank counts as not given, so an
    unset CI expression (`--actor ""`) cannot pass for a user."""
    for candidate in (arg, os.environ.get(ACTOR_ENV)):
        if candidate is not None and candidate.strip():
            return candidate.strip()
    return None


def _owner(entry: Mapping[str, Any] | None) -> str | None:
    owner = entry.get("owner") if entry is not None else None
    return owner if isinstance(owner, str) else None


def _shares(entry: Mapping[str, Any] | None) -> list[tuple[str, tuple[str, ...]]]:
    """Sharing in a canonical form: order of users and rights carries no meaning, so a
    reordered list is not a change of who may use the mailbox."""
    raw = entry.get("shared_with") if entry is not None else None
    out = []
    for share in raw if isinstance(raw, list) else []:
        if isinstance(share, Mapping) and isinstance(share.get("user"), str):
            rights = share.get("rights")
            names = tuple(sorted(str(r) for r in rights)) if isinstance(rights, list) else ()
            out.append((fold_user(share["user"]), names))
    return sorted(out)


def _owners_phrase(owners: list[str]) -> str:
    if len(owners) == 1:
        return f"its owner `{owners[0]}`"
    return f"both its owner before (`{owners[0]}`) and after (`{owners[1]}`)"


def _mailbox_needs(change: Change, access: Access, actor: str) -> list[str]:
    """The rights this mailbox change needs that the actor lacks, as phrases."""
    owners: list[str] = []
    for owner in (_owner(change.before), _owner(change.after)):
        if owner is not None and all(fold_user(owner) != fold_user(o) for o in owners):
            owners.append(owner)
    is_owner = bool(owners) and all(fold_user(o) == fold_user(actor) for o in owners)
    admin = access.is_admin(actor)
    missing = []
    if not (admin or access.is_manager(actor) or is_owner):
        missing.append(
            f"needs an administrator, a mailbox manager, or {_owners_phrase(owners)}"
            if owners
            else "needs an administrator or a mailbox manager"
        )
    # Deleting a mailbox ends its sharing with it; that is the delete right, not a new grant.
    sharing_changed = change.action != "delete" and _shares(change.before) != _shares(change.after)
    if sharing_changed and not (admin or is_owner):
        who = f"an administrator or {_owners_phrase(owners)}" if owners else "an administrator"
        missing.append(f"its sharing (shared_with) changes: needs {who}")
    return missing


def _needs(change: Change, access: Access, actor: str) -> list[str]:
    if change.kind == "provider":
        return [] if access.is_admin(actor) else ["needs an administrator"]
    return _mailbox_needs(change, access, actor)


def _describe(change: Change) -> str:
    place = f" ({change.source})" if change.source is not None else ""
    return f"{change.action} {change.kind} `{change.id}`{place}"


def refusal(changes: Iterable[Change], access: Access, actor: str) -> Refusal | None:
    """One refusal listing every change the actor may not make, or None when all are allowed."""
    details = []
    for change in changes:
        missing = _needs(change, access, actor)
        if missing:
            details.append(f"{_describe(change)}: {'; '.join(missing)}")
    if not details:
        return None
    return Refusal(
        RULE,
        f"actor `{actor}` ({access.roles(actor)}) may not make {len(details)} change(s) of this "
        "plan under the access rules of mailgitops.yaml; nothing is applied. Ask someone with "
        "the right to plan and apply it, or leave these changes out.",
        tuple(details),
    )


def check(plan: Plan, settings: Settings, actor: str | None) -> Refusal | None:
    """The access refusal of `plan` for `actor`, if any. What counts is who applies: a plan
    (or a plan file) carries no actor that could be trusted. A malformed section is an error,
    never "no rules": an unreadable access list must not let everyone through."""
    if settings.access_invalid:
        raise ConfigError(
            "the `access` section of mailgitops.yaml is invalid, so nobody's rights can "
            "be checked; run `mailgitops validate`"
        )
    if settings.access is None:
        return None
    access = Access.of(settings.access)
    if actor is None:
        raise UsageError(
            "mailgitops.yaml has access rules, so plan and apply need to know who acts: pass "
            f"--actor NAME or set {ACTOR_ENV} (in CI: the pull request's author, or who "
            "merged it; see docs/access.md)"
        )
    return refusal(plan.changes, access, actor)
