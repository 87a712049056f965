"""The installed package must carry what it reads at run time: the JSON Schemas and the
Markdown template. Checked in a separate, isolated interpreter (-I: no working directory or
PYTHONPATH on sys.path), so it sees the installed mailgitops — in CI the non-editable
`pip install '.[test]'` of the README's test command — and not this checkout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROBE = """
from importlib import resources
import mailgitops
schemas = resources.files("mailgitops.schemas")
names = ["provider", "mailboxes", "settings", "state", "plan"]
missing = [n for n in names if not schemas.joinpath(n + ".schema.json").is_file()]
template = resources.files("mailgitops").joinpath("templates", "plan.md.j2").is_file()
print(mailgitops.__file__, missing, template)
"""


def test_installed_package_has_schemas_and_template(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-I", "-c", PROBE],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().endswith("[] True"), proc.stdout


def test_installed_console_script_plans(tmp_path: Path) -> None:
    (tmp_path / "providers.d").mkdir()
    proc = subprocess.run(
        [sys.executable, "-I", "-m", "mailgitops", "plan", "--format", "markdown"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "No changes." in proc.stdout
