"""The plan: its changes, which version of live it was made against, and what the rules found
(refusals, guards, warnings); it checks its own safety, and it is one JSON document (SPEC §5)
that a plan file carries (planfile.py)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from mailgitops import __version__
from mailgitops.errors import MailgitopsError, PlanRefused
from mailgitops.plan.changes import Change, Unmanaged
from mailgitops.state.base import State

PLAN_FORMAT_VERSION = 1


@dataclass(frozen=True, eq=False)
class StateRef:
    """Which version of live a plan was made against: any difference makes the plan stale."""

    lineage: str | None
    serial: int
    _checksum: str | None = None
    # The state itself, until its checksum is asked for: hashing the whole state costs as much
    # as comparing it, and the text and Markdown plans never show it.
    _state: State | None = field(default=None, repr=False)

    @property
    def checksum(self) -> str:
        if self._checksum is None:
            assert self._state is not None
            object.__setattr__(self, "_checksum", self._state.checksum())
            object.__setattr__(self, "_state", None)
        assert self._checksum is not None
        return self._checksum

    def _key(self) -> tuple[str | None, int, str]:
        return self.lineage, self.serial, self.checksum

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StateRef) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    @classmethod
    def of(cls, state: State) -> StateRef:
        return cls(state.lineage, state.serial, None, state)

    def to_json(self) -> dict[str, Any]:
        return {"lineage": self.lineage, "serial": self.serial, "checksum": self.checksum}

    @classmethod
    def from_json(cls, data: Any) -> StateRef:
        return cls(data["lineage"], data["serial"], data["checksum"])


@dataclass(frozen=True)
class Refusal:
    """A reason the plan must not be applied (the deletion rule, access, thresholds)."""

    rule: str
    message: str
    details: tuple[str, ...] = ()

    def __str__(self) -> str:
        return "\n".join([self.message, *(f"  - {d}" for d in self.details)])

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "message": self.message, "details": list(self.details)}

    @classmethod
    def from_json(cls, data: Any) -> Refusal:
        return cls(data["rule"], data["message"], tuple(data.get("details", ())))


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...]
    unmanaged: tuple[Unmanaged, ...]
    state: StateRef
    refusals: tuple[Refusal, ...] = ()  # set by rules.evaluate: nothing of the plan is applied
    warnings: tuple[str, ...] = ()
    guards: tuple[Refusal, ...] = ()  # set by rules.evaluate: apply refuses unless overridden
    unreadable_secrets: tuple[str, ...] = ()  # references whose value is not readable here
    # `plan --check`: the connection checks of the providers this plan creates or changes,
    # in the JSON form of mailgitops.connect (None: not checked).
    checks: tuple[dict[str, Any], ...] | None = None

    def failed_checks(self) -> list[str]:
        """`provider server step: message` for every failed connection check."""
        out = []
        for result in self.checks or ():
            for check in result.get("checks", ()):
                if check.get("status") == "fail":
                    who = f" {check['mailbox']}" if check.get("mailbox") else ""
                    out.append(
                        f"{result.get('name')}: {check.get('server')} {check.get('target')} "
                        f"{check.get('step')}{who}: {check.get('message')}"
                    )
        return out

    def raise_if_unsafe(self, allow_mass_delete: bool) -> None:
        """Refuse to be applied while a rule refuses the plan, or a guard does and the user
        did not override it (rules.evaluate found both)."""
        if self.refusals:
            raise PlanRefused("the plan is refused:\n" + "\n".join(str(r) for r in self.refusals))
        if self.guards and not allow_mass_delete:
            raise PlanRefused("the plan is refused: " + "\n".join(str(g) for g in self.guards))

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    def summary(self) -> dict[str, int]:
        counts = {"create": 0, "update": 0, "delete": 0, "adopt": 0}
        for change in self.changes:
            counts[change.action] += 1
        return counts

    def summary_line(self) -> str:
        if not self.changes:
            return "No changes."
        s = self.summary()
        return (
            f"Plan: {s['create']} to add, {s['update']} to change, {s['delete']} to destroy, "
            f"{s['adopt']} to adopt."
        )

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "format_version": PLAN_FORMAT_VERSION,
            "mailgitops_version": __version__,
            "state": self.state.to_json(),
            "changes": [c.to_json() for c in self.changes],
            "unmanaged": [u.to_json() for u in self.unmanaged],
            "summary": self.summary(),
            "refusals": [r.to_json() for r in self.refusals],
            "warnings": list(self.warnings),
            "secrets": {"unreadable": list(self.unreadable_secrets)},
        }
        if self.checks is not None:
            body["checks"] = {
                "failed": len(self.failed_checks()),
                "providers": list(self.checks),
            }
        body["checksum"] = checksum(body)
        return body

    @classmethod
    def from_json(cls, data: Any, origin: str) -> Plan:
        """A plan document as written. planfile.load checks its checksum and signature first;
        apply only compares these changes with the ones it derives again (SPEC §9)."""
        try:
            state = data["state"]
            return cls(
                changes=tuple(Change.from_json(c) for c in data["changes"]),
                unmanaged=tuple(Unmanaged.from_json(u) for u in data["unmanaged"]),
                state=StateRef.from_json(state),
                refusals=tuple(Refusal.from_json(r) for r in data.get("refusals", [])),
                warnings=tuple(data.get("warnings", ())),
                unreadable_secrets=tuple(data.get("secrets", {}).get("unreadable", ())),
                checks=_saved_checks(data["checks"]) if "checks" in data else None,
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise MailgitopsError(f"{origin}: not a mailgitops plan file ({exc})") from None


def _saved_checks(section: Any) -> tuple[dict[str, Any], ...]:
    """The `plan --check` results of a plan file, in the shape failed_checks() reads."""
    providers = section["providers"]
    if not isinstance(providers, list) or not all(
        isinstance(p, dict)
        and isinstance(p.get("checks"), list)
        and all(isinstance(c, dict) for c in p["checks"])
        for p in providers
    ):
        raise TypeError("malformed `checks`")
    return tuple(providers)


def canonical(body: dict[str, Any]) -> bytes:
    """A plan document's bytes as its checksum and a plan file's signature cover them."""
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def checksum(body: dict[str, Any]) -> str:
    """The `checksum` of a plan document, over everything else in it (planfile.py)."""
    return hashlib.sha256(canonical(body)).hexdigest()
