"""The plan as one JSON document (SPEC §5), described by schemas/plan.schema.json. It holds
secret references, never values: a plan has none to hold."""

from __future__ import annotations

import json

from mailgitops.plan import Plan


def render(plan: Plan) -> str:
    return json.dumps(plan.to_json(), indent=2, sort_keys=False) + "\n"
