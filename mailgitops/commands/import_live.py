"""`mailgitops import`: YAML for what is live but not in the config, so an existing system can
be brought under GitOps. Afterwards `plan` shows those entries as adopts (or nothing, for
managed ones), and after apply nothing."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import yaml

from mailgitops import output, schema
from mailgitops.commands.common import (
    add_root_argument,
    add_state_argument,
    schemas_for_headers,
)
from mailgitops.errors import MailgitopsError
from mailgitops.fsutil import atomic_write
from mailgitops.load import MAILBOXES_DIR, PROVIDERS_DIR
from mailgitops.pipeline import load_project

# Editors that use the YAML language server check the files against the schemas that
# schemas_for_headers puts into <root>/schemas/.
PROVIDER_HEADER = schema.header("provider")
MAILBOXES_HEADER = schema.header("mailboxes")

# Attributes that normalization derives or fills in: written only when they say something.
_MAILBOX_DEFAULTS: dict[str, Any] = {
    "send_emails": True,
    "default": False,
    "shared_with": [],
}


def register(sub: argparse._SubParsersAction[Any]) -> None:
    parser = sub.add_parser(
        "import",
        help="write YAML for live entries that are not in the config",
        description="Write providers.d/NAME.yaml and mailboxes.d/imported*.yaml for what is "
        "live but not in the config. Existing files are never overwritten.",
    )
    add_root_argument(parser)
    add_state_argument(parser)
    parser.set_defaults(func=run)


def _dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)


def _env_name(address: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", address.upper()).strip("_") + "_PASSWORD"


def _mailbox_yaml(address: str, entry: dict[str, Any], providers: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"address": address, "owner": entry.get("owner")}
    provider = entry.get("provider")
    if provider is not None:
        out["provider"] = provider
    pentry = providers.get(str(provider), {})
    login_format = pentry.get("login_format", "email_address")
    auth = pentry.get("auth") or {}
    if login_format == "manual":
        out["login"] = entry.get("login") or address.partition("@")[0]
    if "password" in entry and isinstance(entry["password"], dict):
        out["password"] = entry["password"]
    elif auth.get("method", "basic") == "basic":
        # A reference the user must fill in: the value was never in the state.
        out["password"] = {"env": _env_name(address)}
    for key in ("sender_name", "send_emails", "default", "signature", "sync", "shared_with"):
        if key in entry and entry[key] != _MAILBOX_DEFAULTS.get(key, object()):
            out[key] = entry[key]
    return out


def _write_new(target: Path, text: str) -> bool:
    """Write a new file whole; False when `target` exists (it is never overwritten)."""
    try:
        atomic_write(target, text.encode(), mode=0o644, overwrite=False)
    except FileExistsError:
        return False
    except OSError as exc:
        raise MailgitopsError(f"cannot write {target}: {exc.strerror or exc}") from None
    return True


def run(args: argparse.Namespace) -> int:
    project = load_project(args.root)
    root = project.root
    state = project.backend(args.state).read()
    in_config_providers = {e.name for e in project.checked.providers if e.name}
    in_config_mailboxes = {m.address for m in project.checked.mailboxes if m.address}
    written: list[str] = []
    try:
        (root / PROVIDERS_DIR).mkdir(exist_ok=True)
        (root / MAILBOXES_DIR).mkdir(exist_ok=True)
    except OSError as exc:
        raise MailgitopsError(f"cannot create the config folders: {exc.strerror or exc}") from None
    for name, entry in sorted(state.providers.items()):
        if name in in_config_providers:
            continue
        target = root / PROVIDERS_DIR / f"{name}.yaml"
        body = {"name": name, **{k: v for k, v in entry.items() if k != "managed"}}
        origin = "managed" if entry.get("managed") else "made outside mailgitops"
        text = f"{PROVIDER_HEADER}\n# Imported from the live state ({origin}).\n" + _dump(body)
        if _write_new(target, text):
            written.append(str(target.relative_to(root)))
        else:
            output.warn(f"{target} exists but defines no provider `{name}`; not overwritten")
    boxes = [
        _mailbox_yaml(address, entry, state.providers)
        for address, entry in sorted(state.mailboxes.items())
        if address.lower() not in in_config_mailboxes
    ]
    if boxes:
        header = (
            f"{MAILBOXES_HEADER}\n"
            "# Imported from the live state. Secrets are references: set every\n"
            "# *_PASSWORD variable named below where `apply` runs, or change the reference.\n"
        )
        text = header + _dump({"mailboxes": boxes})
        n = 1
        target = root / MAILBOXES_DIR / "imported.yaml"
        while not _write_new(target, text):  # the first free name: nothing is overwritten
            n += 1
            target = root / MAILBOXES_DIR / f"imported-{n}.yaml"
        written.append(str(target.relative_to(root)))
    if written:
        schemas_for_headers(root)
    for path in written:
        output.out(f"wrote {path}")
    if not written:
        output.out("Nothing to import: everything live is in the config.")
    else:
        output.out(
            f"Imported {len(written) - (1 if boxes else 0)} provider(s) and {len(boxes)} "
            "mailbox(es). Run `mailgitops plan` to see the adopts."
        )
    return 0
