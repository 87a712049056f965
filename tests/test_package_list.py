"""Every package of the source tree is in the wheel: pyproject.toml lists the packages by
name, so a new subpackage that is not added there installs without its modules."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_in_pyproject() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {
        ".".join(init.parent.relative_to(REPO).parts)
        for init in (REPO / "mailgitops").rglob("__init__.py")
    }
    assert on_disk, "no package found under mailgitops/"
    assert set(config["packages"]) == on_disk | set(config["package-dir"])
