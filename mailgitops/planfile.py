"""Saved plans (`plan --out`, `apply PLANFILE`) and what apply may take from one (SPEC §9).

A plan file is the plan's JSON document plus two things apply uses:
- `desired`: the normalized entries the plan was made from (secrets as references);
- `state`: which version of live it was made against (lineage, serial, content digest) and
  where that state is (`location`: a path, or a PostgreSQL DSN without its password).
Everything else in the file (changes, kinds, actions, live keys, befores, refusals, summary)
is for people and is not trusted: apply derives the changes again from `desired` and live,
under the lock, and refuses a file whose changes differ from that.

`checksum` (sha256 of the body) catches a truncated or accidentally edited file; anyone can
recompute it. With MAILGITOPS_PLAN_KEY set, `plan --out` also signs the file (HMAC-SHA256 over
the same body) and apply refuses a plan that is unsigned or signed with another key."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from typing import Any

from mailgitops import jsonout
from mailgitops.errors import MailgitopsError
from mailgitops.fsutil import TooLarge, read_bounded
from mailgitops.plan.desired import Desired
from mailgitops.plan.result import PLAN_FORMAT_VERSION, Plan, canonical, checksum

KEY_ENV = "MAILGITOPS_PLAN_KEY"
SIGNATURE_PREFIX = "hmac-sha256:"
MAX_PLAN_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class Location:
    """Where a state is: `where` is a path (relative to the config root when inside it) or a
    DSN without its password; `chosen_by` says how the plan's run found it."""

    backend: str
    where: str
    chosen_by: str

    def to_json(self) -> dict[str, str]:
        return {"backend": self.backend, "where": self.where, "chosen_by": self.chosen_by}

    def __str__(self) -> str:
        return f"{self.backend} state {self.where}"


@dataclass(frozen=True)
class SavedPlan:
    """What apply takes from a plan file."""

    origin: str
    plan: Plan  # as written: compared with the re-derived plan, never applied as such
    desired: dict[str, Any]  # {"providers": {name: attrs}, "mailboxes": {address: attrs}}
    location: Location | None
    version: str


def _key() -> bytes | None:
    key = os.environ.get(KEY_ENV)
    if key == "":
        # Fail closed: in CI a secret that is missing (misnamed, or not given to this job)
        # expands to an empty string, which would otherwise switch verification off silently.
        raise MailgitopsError(
            f"{KEY_ENV} is set but empty (a missing CI secret?): set the key, or unset the "
            "variable to work without signed plans"
        )
    return key.encode() if key is not None else None


def _sign(body: dict[str, Any], key: bytes) -> str:
    return SIGNATURE_PREFIX + hmac.new(key, canonical(body), hashlib.sha256).hexdigest()


def dumps(plan: Plan, desired: Desired, location: Location) -> bytes:
    """The plan file's bytes: checksummed, and signed when MAILGITOPS_PLAN_KEY is set."""
    body = plan.to_json()
    del body["checksum"]
    body["state"]["location"] = location.to_json()
    body["desired"] = desired.plain()
    body["checksum"] = checksum(body)
    key = _key()
    if key is not None:
        body["signature"] = _sign(body, key)
    return jsonout.dumps(body, ("changes", "unmanaged", "desired")).encode()


def load(path: str) -> SavedPlan:
    try:
        raw = read_bounded(path, MAX_PLAN_BYTES)
    except TooLarge:
        raise MailgitopsError(
            f"{path}: larger than {MAX_PLAN_BYTES} bytes; not a plan file"
        ) from None
    except OSError as exc:
        raise MailgitopsError(f"cannot read plan file {path}: {exc.strerror}") from None
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise MailgitopsError(f"{path}: not a mailgitops plan file (not JSON)") from None
    if not isinstance(data, dict):
        raise MailgitopsError(f"{path}: not a mailgitops plan file")
    _check_signature(data, path)
    body = {k: v for k, v in data.items() if k not in ("checksum", "signature")}
    if data.get("checksum") != checksum(body):
        raise MailgitopsError(
            f"{path}: the plan file was modified after it was written (checksum mismatch); "
            "make a new plan"
        )
    if data.get("format_version") != PLAN_FORMAT_VERSION:
        raise MailgitopsError(
            f"{path}: unsupported plan format_version {data.get('format_version')!r}"
        )
    desired = data.get("desired")
    if not (
        isinstance(desired, dict)
        and set(desired) == {"providers", "mailboxes"}
        and all(
            isinstance(side, dict)
            and all(isinstance(k, str) and isinstance(v, dict) for k, v in side.items())
            for side in desired.values()
        )
    ):
        raise MailgitopsError(
            f"{path}: the plan file has no desired entries (made by an older mailgitops?); "
            "make a new plan"
        )
    plan = Plan.from_json(data, path)
    return SavedPlan(
        path, plan, desired, _location(data, path), str(data.get("mailgitops_version"))
    )


def _check_signature(data: dict[str, Any], path: str) -> None:
    key = _key()
    if key is None:
        return
    signature = data.get("signature")
    if not isinstance(signature, str):
        raise MailgitopsError(
            f"{path}: the plan file is not signed, and {KEY_ENV} is set: only plans signed with "
            "that key are applied. Make the plan where the key is set."
        )
    body = {k: v for k, v in data.items() if k != "signature"}
    if not hmac.compare_digest(signature.encode(), _sign(body, key).encode()):
        raise MailgitopsError(
            f"{path}: the plan file's signature does not match {KEY_ENV} (edited, or signed with "
            "another key); nothing was applied"
        )


def _location(data: dict[str, Any], path: str) -> Location | None:
    raw = data.get("state", {}).get("location") if isinstance(data.get("state"), dict) else None
    if raw is None:
        return None
    if not (
        isinstance(raw, dict)
        and all(isinstance(raw.get(k), str) for k in ("backend", "where", "chosen_by"))
    ):
        raise MailgitopsError(f"{path}: not a mailgitops plan file (state.location)")
    return Location(raw["backend"], raw["where"], raw["chosen_by"])
