from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus" / "ispdb"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts without the variables that change where state and cache live."""
    for name in list(os.environ):
        if name.startswith("MAILGITOPS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("NO_COLOR", "1")
    yield


def write_tree(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


def python_env() -> dict[str, str]:
    """Environment for child processes that run mailgitops from this checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILGITOPS_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["NO_COLOR"] = "1"
    return env


PYTHON = sys.executable
