"""Data-driven validate tests: every tests/cases/validate/*.case is one config tree plus what
`mailgitops validate` must report for it. Adding a case is adding a file.

A case file is bytes: header lines `# expect: FILE:LINE:COL SEVERITY RULE [substring]` and
`# exit: N`, then sections `--- RELATIVE/PATH` followed by that file's content. The reported
findings must be exactly the expected ones (place, severity, rule), each message containing
its substring."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mailgitops.cli import main

CASES = sorted((Path(__file__).parent / "cases" / "validate").glob("*.case"))
_EXPECT = re.compile(
    rb"^# expect: (?P<file>\S+):(?P<line>\d+):(?P<col>\d+) (?P<sev>error|warning) "
    rb"(?P<rule>\S+)(?: (?P<text>.+))?$"
)


def _parse_case(
    raw: bytes,
) -> tuple[list[tuple[str, int, int, str, str, str]], int, dict[str, bytes], list[str]]:
    expects: list[tuple[str, int, int, str, str, str]] = []
    exit_code = None
    args: list[str] = []
    head, *sections = re.split(rb"^--- ", raw, flags=re.MULTILINE)
    for line in head.splitlines():
        m = _EXPECT.match(line)
        if m:
            expects.append(
                (
                    m["file"].decode(),
                    int(m["line"]),
                    int(m["col"]),
                    m["sev"].decode(),
                    m["rule"].decode(),
                    (m["text"] or b"").decode(),
                )
            )
        elif line.startswith(b"# exit: "):
            exit_code = int(line.split()[-1])
        elif line.startswith(b"# args: "):
            args = line[len(b"# args: ") :].decode().split()
    files: dict[str, bytes] = {}
    for section in sections:
        name, _, body = section.partition(b"\n")
        files[name.strip().decode()] = body
    if exit_code is None:
        exit_code = 1 if any(e[3] == "error" for e in expects) else 0
    return expects, exit_code, files, args


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_case(case: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expects, exit_code, files, args = _parse_case(case.read_bytes())
    assert files, f"{case.name} has no files"
    for rel, body in files.items():
        target = tmp_path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
    code = main(["validate", "-C", str(tmp_path), "--format", "json", *args])
    out, err = capsys.readouterr()
    assert err == ""
    report = json.loads(out)
    got = {
        (d["file"], d["line"], d["col"], d["severity"], d["rule"]): d["message"]
        for d in report["diagnostics"]
    }
    want = {e[:5]: e[5] for e in expects}
    assert set(got) == set(want), "\n".join(
        f"{f}:{ln}:{c} {s} {r}: {got[(f, ln, c, s, r)]}" for f, ln, c, s, r in sorted(got)
    )
    for key, text in want.items():
        assert text in got[key], f"{key}: {got[key]!r} lacks {text!r}"
    assert code == exit_code
    # the text format reports the same places, as FILE:LINE:COL: severity: message [rule]
    code_text = main(["validate", "-C", str(tmp_path), *args])
    text_out = capsys.readouterr().out
    assert code_text == code
    for f, ln, c, s, r in want:
        assert f"{f}:{ln}:{c}: {s}: " in text_out and f"[{r}]" in text_out


def test_cases_exist() -> None:
    assert len(CASES) >= 30
