"""The steps every state-reading command shares: check and normalize the config, open the
state backend, make the plan."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailgitops import access, normalize, output, safety, secrets
from mailgitops.cache import Cache, open_cache
from mailgitops.diagnostics import Diagnostic
from mailgitops.errors import ConfigError
from mailgitops.load import SETTINGS_FILE, check_root, read, settings_files
from mailgitops.model import Config
from mailgitops.plan import Desired, Plan, Refusal, compute
from mailgitops.state import open_backend
from mailgitops.state.base import State, StateBackend
from mailgitops.state.file import FileBackend
from mailgitops.validate import CheckedConfig, check_config


@dataclass
class Project:
    """A config repository for one command run. The config is checked on first use, and not at
    all when the whole-config cache already knows the result for these exact files."""

    root: Path
    cache: Cache | None = None
    _checked: CheckedConfig | None = None
    _settings: dict[str, Any] | None = None
    cached_clean: bool = False  # the whole config came from the cache: it had no errors

    @property
    def checked(self) -> CheckedConfig:
        if self._checked is None:
            self._checked = check_config(self.root, self.cache)
        return self._checked

    def checked_findings(self) -> list[Diagnostic]:
        """The findings of the full check, if it ran (a failure may come before it)."""
        return self._checked.findings.sorted() if self._checked is not None else []

    @property
    def settings(self) -> dict[str, Any]:
        """mailgitops.yaml: as checked, once the config was; before that (to find the state
        backend) just as parsed. Its errors are reported by the full check."""
        if self._checked is not None:
            return self._checked.settings
        if self._settings is None:
            doc = read(self.root, SETTINGS_FILE) if (self.root / SETTINGS_FILE).is_file() else None
            data = doc.data if doc is not None else None
            self._settings = data if isinstance(data, dict) else {}
        return self._settings

    def backend(self, state_arg: str | None) -> StateBackend:
        setting = self.settings.get("state")
        backend = open_backend(state_arg, self.root, setting if isinstance(setting, dict) else None)
        if isinstance(backend, FileBackend):
            backend.verdicts = self.cache
        return backend

    def desired(self, state: State | None = None) -> tuple[Desired, tuple[str, ...]]:
        """The config as the plan compares it, and its warnings. Raises ConfigError (after
        reporting the findings) when the config has errors."""
        key = self._config_key()
        if key is not None and self.cache is not None:
            hit = self.cache.get(key)
            if isinstance(hit, dict):
                try:
                    desired = Desired.from_json(hit["desired"])
                    warnings = tuple(str(w) for w in hit["warnings"])
                    self._settings = dict(hit["settings"])
                    self.cached_clean = True
                except (KeyError, TypeError, ValueError):
                    pass  # a mangled entry: computed again and rewritten below
                else:
                    return desired, warnings
        desired = Desired.of(require_config(self, state))
        warnings = tuple(str(d) for d in self.checked.findings.sorted() if d.severity == "warning")
        if key is not None and self.cache is not None:
            self.cache.put(
                key,
                {
                    "desired": desired.to_json(),
                    "warnings": list(warnings),
                    "settings": self.checked.settings,
                },
            )
        return desired, warnings

    def _config_key(self) -> str | None:
        """A key over every file that makes up the config (names and bytes), or None when a
        file cannot be read (the full check reports it)."""
        if self.cache is None:
            return None
        check_root(self.root)
        parts: list[bytes] = []
        names = settings_files(self.root)
        try:
            for name in names:
                parts += [name.encode(), (self.root / name).read_bytes()]
        except OSError:
            return None
        return self.cache.key("config", *parts)


def load_project(root_arg: str, use_cache: bool = False) -> Project:
    return Project(Path(root_arg), open_cache(disabled=not use_cache))


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
        refusals = removed_provider_refusals(checked, state) if state is not None else []
        for refusal in refusals:
            output.error(str(refusal))
        errors = len(checked.findings.errors)
        raise ConfigError(f"the config has {errors} error(s); nothing was planned", refusals)
    return normalize.build(checked)


def check_access(project: Project, plan: Plan, actor: str | None) -> Plan:
    """The plan with the access rules of mailgitops.yaml applied for `actor`. A saved plan is
    applied without checking the whole config again, but never past a mailgitops.yaml with
    errors: access rules that cannot be read must not count as no rules."""
    if project.cached_clean:
        broken = []  # the whole config was free of errors when it was cached
    else:
        broken = [d for d in project.checked.findings.errors if d.file == SETTINGS_FILE]
    if broken:
        report_findings(sorted(broken))
        raise ConfigError(
            f"{SETTINGS_FILE} has {len(broken)} error(s), so its access rules cannot be "
            "checked; nothing was applied"
        )
    return access.check(plan, project.settings, actor)


def make_plan(project: Project, state: State, actor: str | None = None) -> Plan:
    desired, warnings = project.desired(state)
    plan = check_access(project, compute(desired, state), actor)
    mass = safety.mass_deletion(plan, state, project.settings)
    if mass is not None:
        warnings = (mass, *warnings)
    if warnings:
        plan = dataclasses.replace(plan, warnings=(*warnings, *plan.warnings))
    return secrets.with_unreadable(plan, project.root)
