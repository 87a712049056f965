"""The steps every state-reading command shares: check and normalize the config, open the
state backend, make the plan."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailgitops import access, normalize, output, safety, secrets
from mailgitops.cache import open_cache
from mailgitops.diagnostics import Diagnostic
from mailgitops.errors import ConfigError
from mailgitops.load import SETTINGS_FILE
from mailgitops.model import Config
from mailgitops.plan import Plan, Refusal, compute
from mailgitops.state import open_backend
from mailgitops.state.base import State, StateBackend
from mailgitops.validate import CheckedConfig, check_config


@dataclass
class Project:
    root: Path
    checked: CheckedConfig

    @property
    def settings(self) -> dict[str, Any]:
        return self.checked.settings

    def backend(self, state_arg: str | None) -> StateBackend:
        setting = self.settings.get("state")
        return open_backend(state_arg, self.root, setting if isinstance(setting, dict) else None)


def load_project(root_arg: str, use_cache: bool = False) -> Project:
    root = Path(root_arg)
    return Project(root, check_config(root, open_cache(disabled=not use_cache)))


def report_findings(diags: list[Diagnostic]) -> None:
    """Config errors of a command other than validate: on stderr, as validate prints them."""
    color = output.use_color(sys.stderr)
    for d in diags:
        sev = output.paint(d.severity, "red" if d.severity == "error" else "yellow", color)
        output.err(f"{d.file}:{d.line}:{d.col}: {sev}: {d.message} [{d.rule}]")


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
            gone.setdefault(named, []).append((mb.address, mb.where("address")))
    return [safety.provider_in_use(name, users) for name, users in sorted(gone.items())]


def require_config(project: Project, state: State | None = None) -> Config:
    checked = project.checked
    if not checked.ok:
        diags = checked.findings.sorted()
        report_findings(diags)
        if state is not None:
            for refusal in removed_provider_refusals(checked, state):
                output.error(str(refusal))
        errors = len(checked.findings.errors)
        raise ConfigError(f"the config has {errors} error(s); nothing was planned")
    return normalize.build(checked)


def check_access(project: Project, plan: Plan, actor: str | None) -> Plan:
    """The plan with the access rules of mailgitops.yaml applied for `actor`. A saved plan is
    applied without checking the whole config again, but never past a mailgitops.yaml with
    errors: access rules that cannot be read must not count as no rules."""
    broken = [d for d in project.checked.findings.errors if d.file == SETTINGS_FILE]
    if broken:
        report_findings(sorted(broken))
        raise ConfigError(
            f"{SETTINGS_FILE} has {len(broken)} error(s), so its access rules cannot be "
            "checked; nothing was applied"
        )
    return access.check(plan, project.settings, actor)


def make_plan(project: Project, state: State, actor: str | None = None) -> Plan:
    config = require_config(project, state)
    plan = check_access(project, compute(config, state), actor)
    warnings = tuple(str(d) for d in project.checked.findings.sorted() if d.severity == "warning")
    if warnings:
        plan = dataclasses.replace(plan, warnings=(*warnings, *plan.warnings))
    return secrets.with_unreadable(plan, project.root)
