"""The JSON Schemas' `default` annotations (for editors) say what the model fills in: one fact,
written in mailgitops/model.py, repeated in the schemas, held to the same value here, both
against the model's constants and end to end, through what `resolve` and `plan` show for an
entry that leaves everything out."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from helpers import Cli, tree

from mailgitops import model
from mailgitops.cli import main


def _schemas(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    out = tmp_path / "schemas"
    assert main(["schemas", "--out", str(out)]) == 0
    capsys.readouterr()
    return {
        name: json.loads((out / f"{name}.schema.json").read_text())
        for name in ("provider", "mailboxes")
    }


def _defaults(node: Any, defs: dict[str, Any], path: tuple[str, ...] = ()) -> dict[Any, Any]:
    """Every `default` annotation of a schema, by the path of the attribute it is on."""
    if "$ref" in node:
        node = defs[node["$ref"].rpartition("/")[2]]
    found: dict[Any, Any] = {}
    if path and "default" in node:
        found[path] = node["default"]
    for key, sub in node.get("properties", {}).items():
        found.update(_defaults(sub, defs, (*path, key)))
    return found


def _mailbox_defaults() -> dict[tuple[str, ...], Any]:
    """The model's mailbox defaults under a provider at its own defaults (a schema annotation
    says one value; the model's send_emails and sync.enabled follow the provider)."""
    return {
        ("send_emails",): model.default_send_emails(model.DEFAULT_ALLOW),
        ("default",): model.DEFAULT_MAILBOX_DEFAULT,
        ("sync", "enabled"): model.default_sync_enabled(model.DEFAULT_ALLOW),
        ("sync", "period"): model.DEFAULT_SYNC_PERIOD,
        ("sync", "folders"): list(model.DEFAULT_SYNC_FOLDERS),
    }


def test_the_schema_defaults_are_the_models(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    schemas = _schemas(tmp_path, capsys)
    provider = schemas["provider"]
    assert _defaults(provider, provider.get("$defs", {})) == model.PROVIDER_DEFAULTS
    mailboxes = schemas["mailboxes"]
    item = mailboxes["$defs"]["mailbox"]
    assert _defaults(item, mailboxes["$defs"]) == _mailbox_defaults()
    # The file-wide `defaults:` mapping documents the same values.
    defaults = mailboxes["properties"]["defaults"]
    assert _defaults(defaults, mailboxes["$defs"]) == _mailbox_defaults()


def test_the_schemas_name_the_models_default_ports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    provider = _schemas(tmp_path, capsys)["provider"]
    for server in ("imap", "smtp"):
        described = provider["properties"][server]["properties"]["port"]["description"]
        ssl_tls, starttls = map(int, re.findall(r"\d+", described))
        assert ssl_tls == model.default_port(server, "ssl_tls")
        assert starttls == model.default_port(server, "starttls")
        assert starttls == model.default_port(server, "none")


def test_an_entry_that_leaves_everything_out_gets_the_schema_defaults(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    schemas = _schemas(tmp_path, capsys)
    root = tmp_path / "config"
    tree(
        root,
        {
            "providers.d/corp.yaml": "name: corp\ndomains: [example.com]\n"
            "imap: {host: imap.example.com}\nsmtp: {host: smtp.example.com}\n",
            "mailboxes.d/team.yaml": "mailboxes:\n  - address: a@example.com\n"
            "    owner: a\n    password: {env: A_PW}\n",
        },
    )
    cli = Cli(root, capsys)
    code, out, _ = cli("resolve", "a@example.com", "--format", "json", state=False)
    assert code == 0
    settings = json.loads(out)["settings"]
    provider = schemas["provider"]
    for path, default in _defaults(provider, provider.get("$defs", {})).items():
        if path[0] == "exchange":
            continue  # an imap provider has no exchange block
        node = settings
        for part in path:
            node = node[part]
        assert node == default, path
    assert settings["imap"]["port"] == 993 and settings["smtp"]["port"] == 465
    code, plan = cli.plan_json()
    assert code == 0
    (created,) = [c for c in plan["changes"] if c.get("address", c.get("id")) == "a@example.com"]
    mailboxes = schemas["mailboxes"]
    for path, default in _defaults(mailboxes["$defs"]["mailbox"], mailboxes["$defs"]).items():
        node = created["after"]
        for part in path:
            node = node[part]
        assert node == default, path
