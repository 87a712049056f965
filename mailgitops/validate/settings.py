"""The checks of mailgitops.yaml: its schema, the access lists (users named once, in one role),
and a DSN that must not hold a password."""

from __future__ import annotations

from mailgitops import identifiers
from mailgitops.config.parse import Document
from mailgitops.config.places import place_of
from mailgitops.diagnostics import Diagnostics
from mailgitops.model import fold_user
from mailgitops.settings import Settings
from mailgitops.validate import schema
from mailgitops.validate.entries import CheckedConfig


def check_settings_file(doc: Document, checked: CheckedConfig) -> None:
    found = checked.diagnostics
    found.extend(doc.diagnostics)
    if doc.data is None:
        return
    if not isinstance(doc.data, dict):
        found.add(doc.path, 1, 1, "mailgitops.yaml must be a mapping", "type")
        return
    doc.data = doc.marked()  # a small file: always with marks, for the checks below
    found.extend(schema.check(doc, "settings"))
    checked.settings = Settings.of(doc.data)
    _check_access(doc, found)
    _check_dsn(doc, found)


def _check_dsn(doc: Document, found: Diagnostics) -> None:
    state = doc.data.get("state")
    dsn = state.get("dsn") if isinstance(state, dict) else None
    if isinstance(dsn, str) and _dsn_has_password(dsn):
        line, col = place_of(doc.data, ["state", "dsn"])
        found.add(
            doc.path,
            line,
            col,
            "the DSN holds a password: move it to `password: {env: NAME}` (the value is not shown)",
            "plaintext-secret",
        )


def _dsn_has_password(dsn: str) -> bool:
    from mailgitops.state.dsn import has_password

    return has_password(dsn)


def _check_access(doc: Document, found: Diagnostics) -> None:
    """The access lists name users consistently. The schema leaves these to us so that each
    finding names its place: the later occurrence of a duplicate, the empty list itself."""
    access = doc.data.get("access")
    if not isinstance(access, dict):
        return
    admins: dict[str, int] = {}  # folded user -> index in administrators
    for role in ("administrators", "mailbox_managers"):
        users = access.get(role)
        if not isinstance(users, list):
            continue
        if not users:
            _empty_role(doc, role, found)
        seen: dict[str, int] = {}
        for index, user in enumerate(users):
            if not isinstance(user, str):
                continue  # the schema reports it
            key = fold_user(user)  # users compare as rules/access.py compares them
            line, col = place_of(doc.data, ["access", role, index])
            hidden = identifiers.invalid_reason(f"a user in `{role}`", user)
            if hidden is not None:
                found.add(doc.path, line, col, hidden, "invisible-character")
            if key in seen:
                first = place_of(doc.data, ["access", role, seen[key]])
                found.add(
                    doc.path,
                    line,
                    col,
                    f"user `{user}` is listed twice in `{role}`: also at "
                    f"{doc.path}:{first[0]}:{first[1]}",
                    "duplicate-user",
                )
                continue
            seen[key] = index
            if role == "administrators":
                admins[key] = index
            elif key in admins:
                admin_line = place_of(doc.data, ["access", "administrators", admins[key]])[0]
                found.add(
                    doc.path,
                    line,
                    col,
                    f"user `{user}` is an administrator already ({doc.path}:{admin_line}), "
                    "which includes every right of a mailbox manager; listing them here is "
                    "redundant",
                    "redundant-user",
                    "warning",
                )


def _empty_role(doc: Document, role: str, found: Diagnostics) -> None:
    line, col = place_of(doc.data, ["access", role])
    found.add(
        doc.path,
        line,
        col,
        f"`{role}` is empty: list at least one user"
        + (
            " (without an administrator nobody could change a provider)"
            if role == "administrators"
            else ", or remove the key"
        ),
        "empty-list",
    )
