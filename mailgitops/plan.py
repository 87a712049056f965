"""The plan: desired (the normalized config) against live (the state), as a list of changes in
the order they will be applied (SPEC §4). A pure diff: nothing refuses here; every rule that
can refuse or warn is in rules/ and is evaluated on the plan by rules.evaluate."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from mailgitops import __version__
from mailgitops.diagnostics import Place
from mailgitops.errors import MailgitopsError
from mailgitops.model import KEEP_LIVE, KNOWN_KEYS, SENSITIVE_PATHS, Config
from mailgitops.state.base import State

Action = Literal["create", "update", "delete", "adopt"]
Kind = Literal["provider", "mailbox"]
PLAN_FORMAT_VERSION = 1


@dataclass(frozen=True)
class AttrChange:
    """One changed attribute: `path` is dotted (`imap.port`); before/after are JSON values,
    None where absent. Sensitive attributes hold references, never values."""

    path: str
    before: Any
    after: Any
    sensitive: bool = False

    def to_json(self) -> dict[str, Any]:
        out = {"path": self.path, "before": self.before, "after": self.after}
        if self.sensitive:
            out["sensitive"] = True
        return out


@dataclass(frozen=True)
class Change:
    action: Action
    kind: Kind
    id: str
    before: dict[str, Any] | None  # the live entry, without `managed`
    after: dict[str, Any] | None  # the desired entry
    diff: tuple[AttrChange, ...] = ()
    source: Place | None = None  # where the entry is in the config
    live_key: str | None = None  # the live entry's key when it differs (address case)
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "action": self.action,
            "kind": self.kind,
            "id": self.id,
            "before": self.before,
            "after": self.after,
            "diff": [d.to_json() for d in self.diff],
        }
        if self.source is not None:
            out["source"] = {"file": self.source.file, "line": self.source.line}
        if self.live_key is not None:
            out["live_key"] = self.live_key
        if self.notes:
            out["notes"] = list(self.notes)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Change:
        src = data.get("source")
        return cls(
            action=data["action"],
            kind=data["kind"],
            id=data["id"],
            before=data.get("before"),
            after=data.get("after"),
            diff=tuple(
                AttrChange(d["path"], d.get("before"), d.get("after"), d.get("sensitive", False))
                for d in data.get("diff", [])
            ),
            source=Place(src["file"], src["line"], 1) if src else None,
            live_key=data.get("live_key"),
            notes=tuple(data.get("notes", ())),
        )


@dataclass(frozen=True)
class Unmanaged:
    kind: Kind
    id: str
    provider: str | None = None  # for a mailbox: the provider it uses


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


@dataclass(frozen=True)
class Refusal:
    """A reason the plan must not be applied (the deletion rule, access, thresholds)."""

    rule: str
    message: str
    details: tuple[str, ...] = ()

    def __str__(self) -> str:
        return "\n".join([self.message, *(f"  - {d}" for d in self.details)])


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
            "state": {
                "lineage": self.state.lineage,
                "serial": self.state.serial,
                "checksum": self.state.checksum,
            },
            "changes": [c.to_json() for c in self.changes],
            "unmanaged": [
                {"kind": u.kind, "id": u.id, **({"provider": u.provider} if u.provider else {})}
                for u in self.unmanaged
            ],
            "summary": self.summary(),
            "refusals": [
                {"rule": r.rule, "message": r.message, "details": list(r.details)}
                for r in self.refusals
            ],
            "warnings": list(self.warnings),
            "secrets": {"unreadable": list(self.unreadable_secrets)},
        }
        if self.checks is not None:
            body["checks"] = {
                "failed": len(self.failed_checks()),
                "providers": list(self.checks),
            }
        body["checksum"] = _body_checksum(body)
        return body

    @classmethod
    def from_json(cls, data: Any, origin: str) -> Plan:
        """A plan document as written. planfile.load checks its checksum and signature first;
        apply only compares these changes with the ones it derives again (SPEC §9)."""
        try:
            st = data["state"]
            return cls(
                changes=tuple(Change.from_json(c) for c in data["changes"]),
                unmanaged=tuple(
                    Unmanaged(u["kind"], u["id"], u.get("provider")) for u in data["unmanaged"]
                ),
                state=StateRef(st["lineage"], st["serial"], st["checksum"]),
                refusals=tuple(
                    Refusal(r["rule"], r["message"], tuple(r.get("details", ())))
                    for r in data.get("refusals", [])
                ),
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


def _body_checksum(body: dict[str, Any]) -> str:
    blob = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def _strip(entry: dict[str, Any]) -> dict[str, Any]:
    out = dict(entry)  # a copy in C: this runs for every live entry
    out.pop("managed", None)
    return out


def _dotted(parts: list[Any]) -> str:
    return ".".join(str(p) for p in parts)


def attribute_diff(before: dict[str, Any], after: dict[str, Any]) -> tuple[AttrChange, ...]:
    """Attribute-level differences, in path order. Mappings are walked; secret references are
    compared whole; the lists whose elements mean something on their own are diffed element by
    element (one user added to a `shared_with` of thirty is one line, not two lists of thirty):
    `domains`, `shared_with` (keyed by user) and its `rights` ignore order, `sync.folders`
    keeps it. Paths name the element: `domains["b.com"]`, `shared_with["bob"].rights["send"]`,
    `sync.folders[2]`.

    Entries are small JSON objects, so a direct walk does the mappings; deepdiff, which costs
    half a second of imports, is imported only when such a list differs (docs/performance.md)."""
    out: list[AttrChange] = []
    _walk(before, after, (), out)
    return tuple(out)


def _walk(
    before: dict[str, Any], after: dict[str, Any], prefix: tuple[str, ...], out: list[AttrChange]
) -> None:
    for key in sorted({*before, *after}):
        b, a = before.get(key), after.get(key)
        if b == a:
            continue
        path = (*prefix, key)
        sensitive = path in SENSITIVE_PATHS
        if isinstance(b, dict) and isinstance(a, dict) and not sensitive:
            _walk(b, a, path, out)
            continue
        elements = None
        if path in ELEMENT_LISTS and isinstance(b, list) and isinstance(a, list):
            elements = _list_diff(path, b, a)
        if elements:
            out.extend(elements)
        else:  # not comparable element by element, or only the order of a set changed
            out.append(AttrChange(_dotted(list(path)), b, a, sensitive))


# The lists diffed element by element, and whether their order means something (SPEC §2).
ELEMENT_LISTS: dict[tuple[str, ...], bool] = {
    ("domains",): False,
    ("shared_with",): False,
    ("sync", "folders"): True,
}


def _as_set(values: list[Any]) -> _Set | None:
    """An unordered list as a mapping from each element to itself, so that deepdiff compares
    it key by key, in linear time; or None when an element is not a plain value (an entry made
    outside mailgitops may hold anything), and then the list is compared whole. (deepdiff's
    own ignore_order pairs up changed elements by similarity, which takes minutes on a few
    thousand domains: a pull request must not be able to stall the plan.)"""
    if not all(isinstance(v, str) for v in values):
        return None
    return _Set((_SetElement(v), v) for v in values)


class _Set(dict[Any, Any]):
    """An unordered list made a mapping for deepdiff (`_as_set`)."""


def _by_user(shares: list[Any]) -> dict[str, Any] | None:
    """`shared_with` keyed by user, its rights as a set; or None when it is not a list of
    distinct users with lists of rights (then it is compared whole)."""
    out: dict[str, Any] = {}
    for share in shares:
        if not isinstance(share, dict) or not isinstance(share.get("user"), str):
            return None
        if share["user"] in out:
            return None
        rights = share.get("rights")
        keyed = _as_set(rights) if isinstance(rights, list) else None
        out[share["user"]] = {**share, "rights": keyed} if keyed is not None else share
    return out


@dataclass(frozen=True)
class _SetElement:
    """An element of an unordered list, as a key: shown as `["value"]` in a path."""

    value: Any


def _show_key(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _element_path(base: str, parts: list[Any], keyed: bool) -> str:
    """`shared_with["bob"].rights["send"]`: a user key and a set element are written as JSON
    in brackets (a hostile name cannot pass for another path); a position in an ordered list
    as `[2]`; an attribute inside an element as `.name`."""
    text = base
    for i, part in enumerate(parts):
        if isinstance(part, _SetElement):
            text += f"[{_show_key(part.value)}]"
        elif isinstance(part, int):
            text += f"[{part}]"
        elif keyed and i == 0:
            text += f"[{_show_key(part)}]"
        else:
            text += f".{part}"
    return text


def _sort_key(parts: list[Any]) -> tuple[tuple[int, int, str], ...]:
    return tuple(
        (0, p, "")
        if isinstance(p, int)
        else (1, 0, _show_key(p.value if isinstance(p, _SetElement) else p))
        for p in parts
    )


def _plain(value: Any) -> Any:
    """A value for the plan: the sets made for deepdiff turned back into lists."""
    if isinstance(value, _Set):
        return list(value.values())
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _list_diff(path: tuple[str, ...], before: list[Any], after: list[Any]) -> list[AttrChange]:
    from deepdiff import DeepDiff
    from deepdiff.helper import notpresent

    keyed = path == ("shared_with",)
    left: Any
    right: Any
    if ELEMENT_LISTS[path]:
        left, right = before, after  # ordered: deepdiff aligns the sequences (difflib)
    elif keyed:
        left, right = _by_user(before), _by_user(after)
    else:
        left, right = _as_set(before), _as_set(after)
    if left is None or right is None:
        return []
    found = DeepDiff(left, right, view="tree")
    out: list[tuple[tuple[Any, ...], AttrChange]] = []
    for levels in found.values():
        for level in levels:
            parts: list[Any] = list(level.path(output_format="list"))
            old = None if level.t1 is notpresent else _plain(level.t1)
            new = None if level.t2 is notpresent else _plain(level.t2)
            text = _element_path(_dotted(list(path)), parts, keyed)
            out.append((_sort_key(parts), AttrChange(text, old, new)))
    out.sort(key=lambda pair: pair[0])
    return [change for _key, change in out]


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
    if not kept and not keeps:
        return after
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
    lowered = {k.lower(): k for k in live} if kind == "mailbox" else {}
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
            c = Change(
                c.action,
                c.kind,
                c.id,
                c.before,
                c.after,
                c.diff,
                c.source,
                c.live_key,
                (*c.notes, note),
            )
        out.append(c)
    return out


Entry = tuple[dict[str, Any], Place | None]


@dataclass(frozen=True)
class Desired:
    """The config as the plan compares it: each entry's normalized attributes (the state's
    form) and where it is defined. Cached whole for unchanged configs (pipeline.py)."""

    providers: dict[str, Entry]
    mailboxes: dict[str, Entry]

    @classmethod
    def of(cls, config: Config) -> Desired:
        return cls(
            {name: (p.attrs(), p.source) for name, p in config.providers.items()},
            {addr: (m.attrs(), m.source) for addr, m in config.mailboxes.items()},
        )

    def to_json(self) -> dict[str, Any]:
        def side(entries: dict[str, Entry]) -> dict[str, Any]:
            return {
                key: [attrs, [src.file, src.line, src.col] if src else None]
                for key, (attrs, src) in entries.items()
            }

        return {"providers": side(self.providers), "mailboxes": side(self.mailboxes)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Desired:
        def side(entries: dict[str, Any]) -> dict[str, Entry]:
            return {
                key: (attrs, Place(src[0], src[1], src[2]) if src else None)
                for key, (attrs, src) in entries.items()
            }

        return cls(side(data["providers"]), side(data["mailboxes"]))


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


def apply_to(
    plan: Plan, state: State, lineage: str, progress: Callable[[Change], None] | None = None
) -> State:
    """The state after applying `plan`: entries replaced by the desired attributes (so a new
    plan finds them equal), serial + 1. Returns `state` itself when there is nothing to do.
    `progress` is told of each change once it is made, in the order of application."""
    if not plan.changes:
        return state
    providers = dict(state.providers)
    mailboxes = dict(state.mailboxes)
    for change in plan.changes:
        entries = providers if change.kind == "provider" else mailboxes
        if change.live_key is not None:
            entries.pop(change.live_key, None)
        if change.action == "delete":
            entries.pop(change.id, None)
        else:
            assert change.after is not None
            entries[change.id] = {"managed": True, **change.after}
        if progress is not None:
            progress(change)
    return State(
        lineage=state.lineage or lineage,
        serial=state.serial + 1,
        providers=dict(sorted(providers.items())),
        mailboxes=dict(sorted(mailboxes.items())),
    )
