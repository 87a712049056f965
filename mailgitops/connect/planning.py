"""`plan --check`: the connection checks of the providers a plan creates or changes, carried
in the plan (its outputs, and the saved plan file that `apply` reads)."""

from __future__ import annotations

import dataclasses
from typing import Any

from mailgitops.connect import jobs as joblist
from mailgitops.connect.console import NetworkOptions, options_from, progress_bar
from mailgitops.connect.runner import run
from mailgitops.pipeline import Project, require_config
from mailgitops.plan.result import Plan


def with_checks(plan: Plan, project: Project, network: NetworkOptions) -> Plan:
    names = [
        c.id
        for c in plan.changes
        if c.kind == "provider" and c.action in ("create", "update", "adopt")
    ]
    checks: tuple[dict[str, Any], ...] = ()
    if names:
        config = require_config(project)
        jobs = joblist.build(config, project.checked, names)
        results = run(jobs, options_from(network), network.jobs, progress_bar())
        checks = tuple(r.to_json() for r in results)
    return dataclasses.replace(plan, checks=checks)
