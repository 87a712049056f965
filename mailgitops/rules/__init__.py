"""Everything that can refuse or warn about a plan, evaluated by one function.

`evaluate` is called the same way by `plan` and by `apply` (with or without a plan file), on a
plan that plan.compute derived from the config and the live state: nothing a plan file says
about refusals, warnings, kinds or actions is trusted (SPEC §9). It is idempotent: it
recomputes every refusal and guard from scratch, so a plan evaluated twice reports each once.

- deletion.py       the deletion rule (a provider still in use is not deleted)
- access.py         who may make which change (docs/access.md)
- mass_delete.py    the mass-deletion guard (apply needs --allow-mass-delete)
- secret_policy.py  secrets.env_allow / secrets.file_root on every delivered secret, and
                    which delivered secrets cannot be read here
- unmanaged.py      entries made outside mailgitops are left alone
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from mailgitops.plan.result import Plan, Refusal
from mailgitops.rules import access, deletion, mass_delete, secret_policy, unmanaged
from mailgitops.settings import Settings
from mailgitops.state.base import State

if TYPE_CHECKING:
    from mailgitops.validate import CheckedConfig


def evaluate(plan: Plan, live: State, settings: Settings, actor: str | None, root: Path) -> Plan:
    """`plan` with its refusals (each rule that refuses it) and guards (what apply refuses
    unless told otherwise) recomputed against `live`. A guard's message is also a warning, so
    that `plan` shows it above the changes."""
    found: list[Refusal | None] = [
        *deletion.refusals(plan, live),
        unmanaged.refusal(plan, live),
        access.check(plan, settings, actor),
        secret_policy.refusal(plan, settings.secrets, root),
    ]
    guards = tuple(g for g in (mass_delete.guard(plan, live, settings.safety),) if g is not None)
    stale = {g.message for g in plan.guards}
    warnings = (*(g.message for g in guards), *(w for w in plan.warnings if w not in stale))
    return dataclasses.replace(
        plan,
        refusals=tuple(r for r in found if r is not None),
        guards=guards,
        warnings=warnings,
    )


def config_refusals(checked: CheckedConfig, live: State) -> list[Refusal]:
    """The rules a config with errors (so no plan) already breaks against `live`: a provider
    removed while mailboxes use it, reported beside the config's errors."""
    return deletion.removed_provider_refusals(checked, live)
