"""Mass-deletion safety and the secret-reference restrictions of mailgitops.yaml."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers import CORP, OTHER, Cli, tree

MANY = "mailboxes:\n" + "".join(
    f"  - address: user{i:02d}@example.com\n    owner: user{i:02d}\n    password: {{env: PW}}\n"
    for i in range(12)
)


def _without(n: int) -> str:
    """The MANY file without its first n mailboxes."""
    lines = MANY.splitlines(keepends=True)
    return lines[0] + "".join(lines[1 + 3 * n :])


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("PW", "pw-value")
    c = Cli(tree(tmp_path, {"providers.d/corp.yaml": CORP, "mailboxes.d/team.yaml": MANY}), capsys)
    assert c("apply", "--auto-approve")[0] == 0
    return c


def test_mass_deletion_warns_in_plan_and_is_refused_by_apply(cli: Cli, tmp_path: Path) -> None:
    tree(cli.root, {"mailboxes.d/team.yaml": _without(4)})  # 4 of 12 = 33% > 25%
    code, out, _ = cli("plan")
    assert code == 0, "plan shows the reviewer what would happen; it does not fail"
    assert "MASS DELETION: this plan deletes 4 of 12 managed mailboxes (33%)" in out
    code, md, _ = cli("plan", "--format", "markdown")
    assert code == 0 and "MASS DELETION" in md.split("<details>")[0], "above the fold"
    planfile = tmp_path / "p.json"
    assert cli("plan", "--out", str(planfile))[0] == 0
    before = cli.state.read_bytes()
    code, _, err = cli("apply", "--auto-approve")
    assert code == 1 and "--allow-mass-delete" in err
    code, _, err = cli("apply", str(planfile))
    assert code == 1 and "--allow-mass-delete" in err
    assert cli.state.read_bytes() == before
    assert cli("apply", str(planfile), "--allow-mass-delete")[0] == 0
    assert len(cli.live()["mailboxes"]) == 8


def test_below_the_share_or_the_minimum_is_ordinary(cli: Cli) -> None:
    tree(cli.root, {"mailboxes.d/team.yaml": _without(3)})  # 3 of 12 = 25%: not more
    code, out, _ = cli("plan")
    assert code == 0 and "MASS DELETION" not in out
    assert cli("apply", "--auto-approve")[0] == 0
    tree(
        cli.root,
        {"mailgitops.yaml": "safety:\n  min_managed: 10\n", "mailboxes.d/team.yaml": _without(9)},
    )  # 6 of 9 managed, but 9 < 10
    code, out, _ = cli("plan")
    assert "MASS DELETION" not in out
    assert cli("apply", "--auto-approve")[0] == 0


def test_configurable_share(cli: Cli) -> None:
    tree(
        cli.root,
        {
            "mailgitops.yaml": "safety:\n  max_delete_share: 0.5\n",
            "mailboxes.d/team.yaml": _without(5),
        },
    )
    code, out, _ = cli("plan")
    assert code == 0
    assert "MASS DELETION" not in out
    tree(cli.root, {"mailboxes.d/team.yaml": _without(7)})
    _code, out, _ = cli("plan")
    assert "MASS DELETION: this plan deletes 7 of 12" in out and "50%" in out


def test_deleting_a_provider_with_its_mailboxes_is_governed_by_the_share(cli: Cli) -> None:
    other_boxes = "mailboxes:\n  - address: o@other.com\n    owner: o\n    password: {env: PW}\n"
    tree(cli.root, {"providers.d/other.yaml": OTHER, "mailboxes.d/other.yaml": other_boxes})
    assert cli("apply", "--auto-approve")[0] == 0
    (cli.root / "providers.d/other.yaml").unlink()
    (cli.root / "mailboxes.d/other.yaml").unlink()
    code, plan = cli.plan_json()
    assert code == 0 and not plan["refusals"] and not plan["warnings"]
    assert [(c["action"], c["id"]) for c in plan["changes"]] == [
        ("delete", "o@other.com"),
        ("delete", "other"),
    ]
    assert cli("apply", "--auto-approve")[0] == 0


def test_file_secret_through_a_symlink_outside_file_root(cli: Cli, tmp_path: Path) -> None:
    (cli.root / "secrets").mkdir()
    outside = tmp_path.parent / f"{tmp_path.name}-outside-token"
    outside.write_text("ci-credential")
    os.symlink(outside, cli.root / "secrets" / "innocent.password")
    tree(
        cli.root,
        {
            "mailgitops.yaml": "secrets:\n  file_root: secrets\n",
            "mailboxes.d/x.yaml": "mailboxes:\n  - address: x@example.com\n    owner: x\n"
            "    password: {file: secrets/innocent.password}\n",
        },
    )
    code, out, _ = cli("validate", state=False)
    assert code == 1
    assert (
        "mailboxes.d/x.yaml:4:5: error: secrets/innocent.password resolves outside "
        "secrets.file_root" in out
    )
    assert "ci-credential" not in out


def test_apply_refuses_a_saved_plan_whose_secrets_the_settings_forbid(
    cli: Cli, tmp_path: Path
) -> None:
    tree(
        cli.root,
        {
            "mailboxes.d/x.yaml": "mailboxes:\n  - address: x@example.com\n"
            "    owner: x\n    password: {env: PW}\n"
        },
    )
    planfile = tmp_path / "p.json"
    assert cli("plan", "--out", str(planfile))[0] == 0
    tree(cli.root, {"mailgitops.yaml": "secrets:\n  env_allow: [MAILBOX_*]\n"})
    before = cli.state.read_bytes()
    code, _, err = cli("apply", str(planfile))
    # The config is checked again by apply PLANFILE: the policy is reported at each reference.
    assert code == 1 and "environment variable PW is not allowed by secrets.env_allow" in err
    assert "mailboxes.d/x.yaml:4:" in err
    assert cli.state.read_bytes() == before
    assert "pw-value" not in err
    json.loads(before)
