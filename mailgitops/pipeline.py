"""The steps every state-reading command shares: check and normalize the config, open the
state backend, make the plan. Nothing here prints: a config's findings travel in its
ConfigError to cli.py, which reports them."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mailgitops import normalize, rules, secrets
from mailgitops.cache import Cache, open_cache
from mailgitops.config.files import (
    DATA_DIR,
    MAILBOXES_DIR,
    PROVIDERS_DIR,
    SETTINGS_FILE,
    TEMPLATE_SUFFIX,
    TEMPLATES_DIR,
    check_root,
    settings_files,
)
from mailgitops.config.templates.inputs import input_parts
from mailgitops.diagnostics import Diagnostic
from mailgitops.errors import (
    ConfigError,
    MailgitopsError,
    PlanStateMismatch,
    StateError,
    UsageError,
)
from mailgitops.model import Config
from mailgitops.plan.compute import compute
from mailgitops.plan.desired import Desired
from mailgitops.plan.result import Plan
from mailgitops.planfile import Location, SavedPlan
from mailgitops.rules import secret_policy
from mailgitops.settings import Settings
from mailgitops.state import ENV_VAR, open_backend
from mailgitops.state.base import State, StateBackend
from mailgitops.state.file import FileBackend
from mailgitops.validate import CheckedConfig, check_config, check_settings

# The folders whose files are read as config, data or templates.
_CONFIG_FOLDERS = (PROVIDERS_DIR, MAILBOXES_DIR, DATA_DIR, TEMPLATES_DIR)


def config_folder_of(path: Path, root: Path) -> str | None:
    """The config folder (or settings file) of `root` that `path` is in, or None. The files
    we write (a state, a plan) must never land where the next run reads config."""
    real = Path(os.path.realpath(path))
    if real == Path(os.path.realpath(root / SETTINGS_FILE)):
        return SETTINGS_FILE
    for folder in _CONFIG_FOLDERS:
        if real.is_relative_to(os.path.realpath(root / folder)):
            return f"{folder}/"
    return None


def _refuse_state_in_config(backend: FileBackend, root: Path) -> None:
    """A state file (or its lock or backup) in a config folder would be read as config by the
    next run (a state at mailboxes.d/live.yaml breaks every plan after the first apply), and a
    state location taken from a plan file or mailgitops.yaml must not make apply write there."""
    for path in backend.own_files():
        folder = config_folder_of(path, root)
        if folder is not None:
            raise StateError(
                f"state {backend.shown} is inside {folder} of the config root, whose files "
                "are read as config: keep the state file outside the config folders"
            )


@dataclass
class Project:
    """A config repository for one command run. The config is checked on first use, and not at
    all when the whole-config cache already knows the result for these exact files."""

    root: Path
    cache: Cache | None = None
    _checked: CheckedConfig | None = None
    # mailgitops.yaml's errors (as checked alone, or by the full check) and the Settings
    # built from it.
    _settings: tuple[list[Diagnostic], Settings] | None = None
    _desired: tuple[Desired, tuple[str, ...]] | None = None
    # Once the desired entries are built, the parsed files are freed (findings and settings are
    # kept); `checked` reads them again for a caller that needs them (`plan --check`).
    _entries_freed: bool = False

    @property
    def checked(self) -> CheckedConfig:
        if self._checked is None or self._entries_freed:
            self._checked = check_config(self.root, self.cache)
            self._entries_freed = False
        return self._checked

    def checked_diagnostics(self) -> list[Diagnostic]:
        """The findings of the full check, if it ran (a failure may come before it)."""
        return self._checked.diagnostics.sorted() if self._checked is not None else []

    @property
    def settings(self) -> Settings:
        """mailgitops.yaml, built once: read from the file itself (never the cache) and
        checked, by the full check if it ran first. Its errors do not stop the state backend
        from being found; the full check reports them, and `rule_settings` refuses them."""
        return self._settings_checked()[1]

    def rule_settings(self) -> Settings:
        """mailgitops.yaml as the rules read it: from the file itself and checked, never from
        the cache (SPEC §9). Rules that cannot be read must not count as no rules."""
        broken, settings = self._settings_checked()
        if broken:
            raise ConfigError(
                f"{SETTINGS_FILE} has {len(broken)} error(s), so its rules (access, safety, "
                "secrets) cannot be checked; nothing was planned or applied",
                diagnostics=sorted(broken),
            )
        return settings

    def _settings_checked(self) -> tuple[list[Diagnostic], Settings]:
        if self._settings is None:
            checked = self._checked if self._checked is not None else check_settings(self.root)
            broken = [
                d
                for d in checked.diagnostics.errors
                if d.file == SETTINGS_FILE or d.rule == "settings-name"  # a near-named file
            ]
            self._settings = broken, checked.settings
        return self._settings

    def backend(self, state_arg: str | None) -> StateBackend:
        backend = open_backend(state_arg, self.root, self.settings.state, self.cache)
        if isinstance(backend, FileBackend):
            _refuse_state_in_config(backend, self.root)
        return backend

    def desired(
        self, state: State | Callable[[], State] | None = None
    ) -> tuple[Desired, tuple[str, ...]]:
        """The config as the plan compares it, and its warnings. Raises ConfigError (with the
        findings) when the config has errors; `state` (or the function that reads it) is read
        then only, for the refusals of removed providers."""
        if self._desired is not None:
            return self._desired
        key = self._config_key()
        if key is not None and self.cache is not None:
            self._desired = self.cache.desired(key)
            if self._desired is not None:
                return self._desired
        config = require_config(self, state)
        warnings = tuple(
            str(d) for d in self.checked.diagnostics.sorted() if d.severity == "warning"
        )
        if self._checked is not None:
            # Freed before the desired entries are built and the state is read, the parsed
            # files are not all in memory at once with them (a million mailboxes,
            # docs/performance.md).
            self._checked = dataclasses.replace(self._checked, providers=[], mailboxes=[])
            self._entries_freed = True
        desired = Desired.of(config)
        del config
        self._desired = desired, warnings
        if key is not None and self.cache is not None:
            self.cache.remember_desired(key, desired, warnings)
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
        if any(name.endswith(TEMPLATE_SUFFIX) for name in names):
            parts += input_parts(self.root)  # data/ and templates/
        return self.cache.key("config", *parts)


def load_project(root_arg: str, use_cache: bool = False) -> Project:
    return Project(Path(root_arg), open_cache(disabled=not use_cache))


def require_config(
    project: Project, state: State | Callable[[], State] | None = None, done: str = "planned"
) -> Config:
    checked = project.checked
    if not checked.ok:
        if callable(state):
            try:
                state = state()
            except MailgitopsError:
                state = None  # the config's errors come first
        refusals = rules.config_refusals(checked, state) if state is not None else []
        errors = len(checked.diagnostics.errors)
        raise ConfigError(
            f"the config has {errors} error(s); nothing was {done}",
            refusals,
            checked.diagnostics.sorted(),
        )
    return normalize.build(checked)


def evaluate(
    project: Project,
    plan: Plan,
    state: State,
    actor: str | None,
    warnings: tuple[str, ...] = (),
) -> Plan:
    """`plan` (a pure diff) with every rule evaluated (rules.evaluate), the config's warnings
    and the secrets that cannot be read here. The one way plan and apply judge a plan."""
    if warnings:
        plan = dataclasses.replace(plan, warnings=(*warnings, *plan.warnings))
    plan = rules.evaluate(plan, state, project.rule_settings(), actor, project.root)
    return secret_policy.with_unreadable(plan, project.root)


def make_plan(project: Project, state: State, actor: str | None = None) -> Plan:
    return planned(project, state, actor)[0]


def planned(project: Project, state: State, actor: str | None = None) -> tuple[Plan, Desired]:
    """The evaluated plan and the desired entries it was made from (for a plan file)."""
    desired, warnings = project.desired(state)
    return evaluate(project, compute(desired, state), state, actor, warnings), desired


def planned_from(
    project: Project, backend: StateBackend, actor: str | None = None
) -> tuple[Plan, Desired, State]:
    """`planned` for a state not read yet: the config is read first, so that its parsed files
    are freed before the state is read (a command that only reads the state: `plan`)."""
    desired, warnings = project.desired(backend.read)
    state = backend.read()
    return evaluate(project, compute(desired, state), state, actor, warnings), desired, state


def state_location(project: Project, state_arg: str | None, backend: StateBackend) -> Location:
    """Where this run's state is, as a plan file records it: a path relative to the config root
    when inside it (the same checkout elsewhere finds the same file), a DSN without its
    password otherwise."""
    if state_arg:
        chosen_by = "--state"
    elif os.environ.get(ENV_VAR):
        chosen_by = ENV_VAR
    elif project.settings.state is not None:
        chosen_by = SETTINGS_FILE
    else:
        chosen_by = "default"
    if isinstance(backend, FileBackend):
        path = Path(os.path.abspath(backend.path))
        root = Path(os.path.abspath(project.root))
        where = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        return Location("file", where, chosen_by)
    setting = project.settings.state
    dsn = setting.dsn if chosen_by == SETTINGS_FILE and setting is not None else None
    if isinstance(dsn, dict):
        # A DSN kept behind a reference is recorded as the reference: its value may name a
        # host one does not put in Git, let alone in a plan artifact.
        workspace = getattr(backend, "workspace", None)
        return Location(
            "postgres", f"dsn {secrets.describe(dsn)} (workspace {workspace})", chosen_by
        )
    return Location("postgres", backend.describe(), chosen_by)


def backend_for_plan(project: Project, state_arg: str | None, saved: SavedPlan) -> StateBackend:
    """The state a saved plan is applied to: the one it was made against, unless --state,
    MAILGITOPS_STATE or mailgitops.yaml names one; then the two must be the same state."""
    recorded = saved.location
    configured = project.settings.state is not None
    if recorded is None or state_arg or os.environ.get(ENV_VAR) or configured:
        backend = project.backend(state_arg)
        here = state_location(project, state_arg, backend)
        if recorded is not None and (here.backend, here.where) != (
            recorded.backend,
            recorded.where,
        ):
            raise PlanStateMismatch(
                f"{saved.origin} was made against the {recorded}, but this apply would use the "
                f"{here} (from {here.chosen_by}). Apply it to the state it was made for, or "
                "make a new plan against this one."
            )
        return backend
    if recorded.backend == "file":
        # The plan file comes from a pull request's job: the location it records is taken
        # only inside the config root, never as a path anywhere on the machine (SPEC §9).
        path = Path(recorded.where)
        path = path if path.is_absolute() else project.root / path
        root = project.root.resolve()
        if path.resolve().is_relative_to(root):
            return project.backend(str(path))
        raise UsageError(
            f"{saved.origin} was made against the {recorded}, outside the config root "
            f"{project.root}: a plan file alone does not choose such a state; name it with "
            f"--state or {ENV_VAR} to apply it there"
        )
    raise UsageError(
        f"{saved.origin} was made against the {recorded}; its password is not kept in the plan, "
        f"so name it again with --state or {ENV_VAR}"
    )
