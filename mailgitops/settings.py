"""mailgitops.yaml as typed values, built once per run from the checked document
(schemas/settings.schema.json is the check; validate reports its findings).

Each section is read here and nowhere else: the state backend (`state:`), the access rules
(`access:`), the mass-deletion guard (`safety:`) and the secret policy (`secrets:`). The
templates' `vars:` are not here: they are an input of the check (templates are rendered to be
checked), read by config.templates.inputs.template_inputs.

A document with errors still gives a Settings (the state backend is opened before the full
check reports them), so nothing here raises: a section that cannot be read is remembered as
such, and the rule that needs it refuses (an unreadable access list must not let everyone
through)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_MAX_DELETE_SHARE = 0.25
DEFAULT_MIN_MANAGED = 10
_ROLES = ("administrators", "mailbox_managers")


@dataclass(frozen=True)
class StateSetting:
    """The `state:` section: `{backend: file, path: PATH}` or `{backend: postgres, dsn: DSN,
    password: REF, workspace: NAME}`. `dsn` and `password` are kept as written (a string, or a
    secret reference); the backend opener reads and judges them."""

    backend: str = "file"
    path: str | None = None
    dsn: object = None
    password: object = None
    workspace: str | None = None

    @classmethod
    def of(cls, section: object) -> StateSetting | None:
        """The setting, or None when the section is missing or empty (the default state)."""
        if not isinstance(section, Mapping) or not section:
            return None
        path = section.get("path")
        workspace = section.get("workspace")
        return cls(
            backend=str(section.get("backend", "file")),
            path=str(path) if path else None,
            dsn=_plain(section.get("dsn")),
            password=_plain(section.get("password")),
            workspace=workspace if isinstance(workspace, str) else None,
        )


@dataclass(frozen=True)
class AccessLists:
    """The `access:` section: who holds which role, as written (rules/access.py folds them)."""

    administrators: tuple[str, ...]
    mailbox_managers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Safety:
    """The `safety:` section: the mass-deletion guard's threshold."""

    max_delete_share: float = DEFAULT_MAX_DELETE_SHARE
    min_managed: int = DEFAULT_MIN_MANAGED


@dataclass(frozen=True)
class SecretsPolicy:
    """The `secrets:` section: glob patterns an {env: NAME} must match (None: any), and the
    directory a {file: PATH} must resolve into (None: anywhere)."""

    env_allow: tuple[str, ...] | None = None
    file_root: str | None = None

    @classmethod
    def of(cls, section: object) -> SecretsPolicy | None:
        if not isinstance(section, Mapping):
            return None
        patterns = section.get("env_allow")
        file_root = section.get("file_root")
        return cls(
            env_allow=tuple(str(p) for p in patterns) if isinstance(patterns, list) else None,
            file_root=file_root if isinstance(file_root, str) else None,
        )


@dataclass(frozen=True)
class Settings:
    """mailgitops.yaml. `Settings()` is a project without the file (or with an empty one)."""

    state: StateSetting | None = None
    access: AccessLists | None = None
    # `access:` is there but not a mapping of lists of names: its rule refuses every plan.
    access_invalid: bool = False
    safety: Safety = Safety()
    secrets: SecretsPolicy | None = None

    @classmethod
    def of(cls, data: object) -> Settings:
        """From the document as checked (whatever it holds: its errors are reported by the
        check, not here)."""
        if not isinstance(data, Mapping):
            return cls()
        access, access_invalid = _access(data)
        return cls(
            state=StateSetting.of(data.get("state")),
            access=access,
            access_invalid=access_invalid,
            safety=_safety(data.get("safety")),
            secrets=SecretsPolicy.of(data.get("secrets")),
        )


def _access(data: Mapping[str, Any]) -> tuple[AccessLists | None, bool]:
    if "access" not in data:
        return None, False
    section = data["access"]
    lists: dict[str, tuple[str, ...]] = {}
    for role in _ROLES:
        users = section.get(role, []) if isinstance(section, Mapping) else None
        if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
            return None, True
        lists[role] = tuple(users)
    return AccessLists(lists["administrators"], lists["mailbox_managers"]), False


def _safety(section: object) -> Safety:
    section = section if isinstance(section, Mapping) else {}
    return Safety(
        max_delete_share=section.get("max_delete_share", DEFAULT_MAX_DELETE_SHARE),
        min_managed=section.get("min_managed", DEFAULT_MIN_MANAGED),
    )


def _plain(value: Any) -> Any:
    """A parsed value without its source marks (plain dicts, lists and scalars)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
