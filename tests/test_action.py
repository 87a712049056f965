"""The composite GitHub Action (action.yml) run step by step on a sample repository: each
step's shell script in bash as the runner runs it (`bash --noprofile --norc -eo pipefail`),
with its `env:` and `if:` evaluated for the given inputs, GITHUB_OUTPUT and
GITHUB_STEP_SUMMARY files, and the install step installing this repository into a fresh
virtualenv."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO
from helpers import CORP, TEAM, tree

ACTION = yaml.safe_load((REPO / "action.yml").read_text())
_EXPR = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")


def _evaluate(expr: str, inputs: dict[str, str], runner_temp: Path) -> str:
    if expr.startswith("inputs."):
        return inputs[expr.removeprefix("inputs.")]
    if expr == "runner.temp":
        return str(runner_temp)
    raise AssertionError(f"the test does not know the expression {expr!r}")


def _condition(cond: str, inputs: dict[str, str]) -> bool:
    match = re.fullmatch(r"inputs\.(\w[\w-]*) == '([^']*)'", cond)
    assert match, f"the test does not know the condition {cond!r}"
    return inputs[match[1]] == match[2]


def run_action(
    workspace: Path, venv: Path, tmp: Path, **given: str
) -> tuple[list[tuple[str, int, str]], dict[str, str]]:
    """Run the action's steps until one fails; returns (step name, exit code, output) for
    each step that ran, and the outputs the plan step wrote."""
    inputs = {name: spec.get("default", "") for name, spec in ACTION["inputs"].items()}
    inputs.update(given)
    runner_temp = tmp / "runner-temp"
    runner_temp.mkdir(exist_ok=True)
    output_file = tmp / "github-output"
    output_file.write_text("")
    summary = tmp / "step-summary"
    ran: list[tuple[str, int, str]] = []
    for step in ACTION["runs"]["steps"]:
        if "if" in step and not _condition(step["if"], inputs):
            continue
        script = step["run"]
        # Inputs reach scripts only through env: nothing from a pull request is pasted into
        # the shell text.
        assert "${{" not in script, step["name"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILGITOPS_")}
        env.pop("PYTHONPATH", None)
        env.update(
            PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}",
            VIRTUAL_ENV=str(venv),
            GITHUB_ACTION_PATH=str(REPO),
            GITHUB_OUTPUT=str(output_file),
            GITHUB_STEP_SUMMARY=str(summary),
            NO_COLOR="1",
            ALICE_PW="a",
            BOB_PW="b",
        )
        for key, value in step.get("env", {}).items():
            env[key] = _EXPR.sub(lambda m: _evaluate(m[1], inputs, runner_temp), str(value))
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
            cwd=workspace,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        ran.append((step["name"], proc.returncode, proc.stdout + proc.stderr))
        if proc.returncode != 0:
            break
    outputs = dict(
        line.split("=", 1) for line in output_file.read_text().splitlines() if "=" in line
    )
    return ran, outputs


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("action") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    return path


def test_the_action_validates_plans_and_its_plan_applies(tmp_path: Path, venv: Path) -> None:
    workspace = tree(
        tmp_path / "workspace",
        {"mail/providers.d/corp.yaml": CORP, "mail/mailboxes.d/team.yaml": TEAM},
    )
    state = tmp_path / "live.json"
    ran, outputs = run_action(
        workspace, venv, tmp_path, root="mail", state=str(state), actor="alice"
    )
    assert [(name, code) for name, code, _ in ran] == [
        ("Install mailgitops", 0),
        ("Validate", 0),
        ("Plan", 0),
    ], ran
    # The action's outputs are the plan step's.
    assert {k: v["value"] for k, v in ACTION["outputs"].items()} == {
        "plan-markdown": "${{ steps.plan.outputs.markdown }}",
        "plan-file": "${{ steps.plan.outputs.planfile }}",
        "has-changes": "${{ steps.plan.outputs.has-changes }}",
    }
    markdown = Path(outputs["markdown"])
    assert "Plan: 3 to add, 0 to change, 0 to destroy, 0 to adopt." in markdown.read_text()
    assert "Plan: 3 to add" in (tmp_path / "step-summary").read_text()
    assert outputs["has-changes"] == "true"
    plan: dict[str, Any] = json.loads(Path(outputs["planfile"]).read_text())
    assert plan["summary"]["create"] == 3
    # The saved plan is what apply takes after review.
    env = {**os.environ, "ALICE_PW": "a", "BOB_PW": "b", "NO_COLOR": "1"}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        [str(venv / "bin" / "mailgitops"), "apply", outputs["planfile"], "-C",
         str(workspace / "mail"), "--state", str(state)],
        env=env, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    ran, outputs = run_action(
        workspace, venv, tmp_path, root="mail", state=str(state), install="false"
    )
    assert [code for _, code, _ in ran] == [0, 0]
    assert outputs["has-changes"] == "false"


def test_validate_annotates_the_files_and_stops_the_action(tmp_path: Path, venv: Path) -> None:
    workspace = tree(
        tmp_path / "workspace",
        {
            "mail/providers.d/corp.yaml": CORP.replace("host: smtp", "port: 455\n  host: smtp"),
            "mail/mailboxes.d/team.yaml": TEAM.replace("{env: ALICE_PW}", "hunter2"),
        },
    )
    ran, outputs = run_action(workspace, venv, tmp_path, root="mail")
    name, code, text = ran[-1]
    assert (name, code) == ("Validate", 1)
    assert "::error file=mail/mailboxes.d/team.yaml,line=4,col=15," in text
    assert "::warning file=mail/providers.d/corp.yaml," in text
    assert "hunter2" not in text
    assert outputs == {}
