"""`mailgitops completion SHELL`: scripts generated from the argparse definition. The bash
script is run by a real bash; zsh and fish are checked for what they must name."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from mailgitops.cli import COMMANDS, main


def script(shell: str, capsys: pytest.CaptureFixture[str]) -> str:
    code = main(["completion", shell])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def complete_bash(script_path: Path, line: str) -> list[str]:
    """What bash completes for `line` (the cursor at its end), through the script's own
    completion function, as bash calls it on <TAB>."""
    words = line.split(" ")
    program = f"""
source {script_path}
fn=$(complete -p mailgitops | sed -E 's/.*-F ([^ ]+) .*/\\1/')
COMP_WORDS=({" ".join(repr(w) for w in words)})
COMP_CWORD={len(words) - 1}
COMP_LINE={line!r}
COMP_POINT={len(line)}
"$fn" mailgitops {words[-1]!r} {words[-2]!r}
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    bash = shutil.which("bash")
    assert bash is not None, "bash is needed to test the bash completion"
    proc = subprocess.run(
        [bash, "--norc", "--noprofile", "-c", program],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return [w.strip() for w in proc.stdout.splitlines() if w.strip()]


def test_bash_completes_commands_verbs_options_and_choices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "mailgitops.bash"
    path.write_text(script("bash", capsys))
    assert set(complete_bash(path, "mailgitops ")) >= set(COMMANDS)
    assert complete_bash(path, "mailgitops pl") == ["plan"]
    assert set(complete_bash(path, "mailgitops state ")) == {"list", "forget", "push", "pull"}
    assert "--detailed-exitcode" in complete_bash(path, "mailgitops plan --d")
    assert set(complete_bash(path, "mailgitops plan --format ")) == {"text", "json", "markdown"}
    assert set(complete_bash(path, "mailgitops completion ")) == {"bash", "zsh", "fish"}


@pytest.mark.parametrize(
    ("shell", "marker"), [("zsh", "#compdef mailgitops"), ("fish", "complete -c mailgitops")]
)
def test_zsh_and_fish_scripts_name_every_command(
    shell: str, marker: str, capsys: pytest.CaptureFixture[str]
) -> None:
    text = script(shell, capsys)
    assert marker in text
    for command in COMMANDS:
        assert command in text
    for option in ("detailed-exitcode", "lock-timeout", "auto-approve"):  # fish: `-l NAME`
        assert option in text


def test_unknown_shell_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", "tcsh"]) == 1
    assert "invalid choice" in capsys.readouterr().err
