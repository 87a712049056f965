"""A non-editable install must work: build the real wheel, install it (without
dependencies) into a scratch directory, and run the CLI from there in an isolated interpreter,
so neither this checkout nor an editable install can stand in for it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
import mailgitops
assert mailgitops.__file__.startswith(sys.argv[1]), mailgitops.__file__
from mailgitops.cli import main
sys.exit(main(["plan", "-C", sys.argv[2], "--state", sys.argv[3], "--format", "markdown"]))
"""

# `init` writes the settings template, the .gitignore and the schemas from the installed wheel.
INIT_PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
from mailgitops.cli import main
sys.exit(main(["init", "-C", sys.argv[2]]) or main(["validate", "-C", sys.argv[2]]))
"""


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # pip's build backend misbehaves when it sees pytest's PYTEST_* variables.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    return subprocess.run(argv, capture_output=True, text=True, check=False, cwd=cwd, env=env)


def test_wheel_installs_and_runs(tmp_path: Path) -> None:
    # A clean copy: setuptools would reuse a stale build/ of the checkout.
    source = tmp_path / "src"
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(
            ".git", "build", "*.egg-info", "_work", "__pycache__", ".*_cache"
        ),
    )
    built = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(source),
        ],
        tmp_path,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("mailgitops-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for schema in ("provider", "mailboxes", "settings", "state", "plan", "check", "apply"):
        assert f"mailgitops/schemas/{schema}.schema.json" in names
    assert {
        "mailgitops/templates/plan.md.j2",
        "mailgitops/templates/mailgitops.yaml.example",
        "mailgitops/templates/gitignore.example",
        "mailgitops/py.typed",
        "mailgitops/commands/plan.py",
        "mailgitops/state/file.py",
        "mailgitops/render/text.py",
    } <= names
    assert not any(n.startswith(("tests/", "bench/")) for n in names)
    target = tmp_path / "site"
    installed = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        tmp_path,
    )
    assert installed.returncode == 0, installed.stderr
    ran = _run(
        [sys.executable, "-I", "-c", PROBE, str(target), str(REPO), str(tmp_path / "none.json")],
        tmp_path,
    )
    assert ran.returncode == 0, ran.stderr
    assert "Plan: 12 to add, 0 to change, 0 to destroy, 0 to adopt." in ran.stdout
    fresh = tmp_path / "fresh"
    ran = _run([sys.executable, "-I", "-c", INIT_PROBE, str(target), str(fresh)], tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert (fresh / "schemas" / "apply.schema.json").is_file()
    assert (fresh / ".gitignore").is_file() and (fresh / "mailgitops.yaml").is_file()
    assert "OK: 0 provider(s)" in ran.stdout


def _release(version: str) -> tuple[int, ...]:
    parts = [int(p) for p in version.split(".")]
    while parts and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def test_every_lower_bound_is_the_one_ci_tests() -> None:
    """Each direct dependency has a lower bound, and .ci/constraints-oldest.txt pins exactly
    that version, so the oldest-dependency run of .ci/run tests every bound we promise."""
    import re
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    pinned: dict[str, str] = {}
    for raw in (REPO / ".ci" / "constraints-oldest.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pinned[name.strip().lower()] = version.strip()
    requirement = re.compile(r"^([A-Za-z0-9_.-]+)(?:\[([a-z,]+)\])?>=([0-9.]+)$")
    for spec in wanted:
        match = requirement.fullmatch(spec)
        assert match, f"{spec!r}: every dependency needs a plain lower bound (NAME>=VERSION)"
        name, extras, bound = match.group(1).lower(), match.group(2), match.group(3)
        names = [name] + [f"{name}-{extra}" for extra in (extras or "").split(",") if extra]
        for each in names:
            assert each in pinned, f"{each} is not pinned in .ci/constraints-oldest.txt"
            assert _release(pinned[each]) == _release(bound), (each, pinned[each], bound)


def test_every_package_is_shipped() -> None:
    """pyproject.toml lists the packages (the schemas are mapped in from the repository root):
    a new sub-package left out of the list works in a checkout and breaks in the wheel."""
    import tomllib

    listed = set(
        tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(init.parent.relative_to(REPO).parts)
        for init in (REPO / "mailgitops").rglob("__init__.py")
    }
    assert found - listed == set()
    assert listed - found == {"mailgitops.schemas"}
