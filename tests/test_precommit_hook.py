"""The pre-commit hook (.pre-commit-hooks.yaml) through the real pre-commit: `pre-commit
try-repo` installs this repository into its own environment, as a user's hook would."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import PYTHON, REPO, python_env
from helpers import standard

GIT = ["git", "-c", "user.email=test@example.com", "-c", "user.name=test"]


@pytest.fixture(scope="module")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One pre-commit cache for the module: the hook's environment is installed once."""
    return tmp_path_factory.mktemp("pre-commit-home")


def try_repo(config_repo: Path, home: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**python_env(), "PRE_COMMIT_HOME": str(home)}
    env.pop("PYTHONPATH")  # the hook runs the installed copy, not this checkout's
    return subprocess.run(
        [PYTHON, "-m", "pre_commit", "try-repo", str(REPO), "mailgitops-validate", *argv],
        cwd=config_repo,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def git_repo(root: Path) -> Path:
    standard(root, **{"README.md": "our mail config\n"})
    subprocess.run([*GIT, "init", "-q", str(root)], check=True)
    subprocess.run([*GIT, "-C", str(root), "add", "-A"], check=True)
    subprocess.run([*GIT, "-C", str(root), "commit", "-qm", "config"], check=True)
    return root


def test_hook_passes_a_valid_config_and_fails_a_broken_one(
    tmp_path: Path, pre_commit_home: Path
) -> None:
    repo = git_repo(tmp_path / "config")
    proc = try_repo(repo, pre_commit_home, "--all-files")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "mailgitops validate" in proc.stdout and "Passed" in proc.stdout

    team = repo / "mailboxes.d" / "team.yaml"
    team.write_text(team.read_text().replace("{env: ALICE_PW}", "hunter2"))
    proc = try_repo(repo, pre_commit_home, "--files", "mailboxes.d/team.yaml")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Failed" in proc.stdout
    assert "mailboxes.d/team.yaml:4:15: error:" in proc.stdout
    assert "[plaintext-secret]" in proc.stdout and "hunter2" not in proc.stdout

    # A commit that touches no config file does not run it.
    proc = try_repo(repo, pre_commit_home, "--files", "README.md")
    assert proc.returncode == 0 and "Skipped" in proc.stdout, proc.stdout
