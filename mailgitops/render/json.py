"""The plan as one JSON document (SPEC §5), described by schemas/plan.schema.json. It holds
secret references, never values: a plan has none to hold. One change and one unmanaged entry
per line (jsonout.py)."""

from __future__ import annotations

from mailgitops import jsonout
from mailgitops.plan.result import Plan

_ONE_PER_LINE = ("changes", "unmanaged")


def render(plan: Plan) -> str:
    return jsonout.dumps(plan.to_json(), _ONE_PER_LINE)
