"""`mailgitops import [ID...]`: YAML for what is live but not in the config, so an existing
system can be brought under GitOps. Afterwards `plan` shows those entries as adopts with no
attribute changes, and after apply nothing (SPEC §5).

- Without IDs it imports the entries made outside mailgitops. A managed entry missing from
  the config is a pending delete (someone removed it from the config): it is brought back only
  when named.
- It writes nothing that would change the live entry: a password it cannot see becomes
  `password: {keep: live}` (docs/secrets.md), never an invented reference whose value apply
  would then send; attributes the config format does not know stay in live only (plan.compute
  keeps them on every apply)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mailgitops import output, schema
from mailgitops.commands.common import (
    add_command,
    add_state_argument,
    schemas_for_headers,
)
from mailgitops.config.files import MAILBOXES_DIR, PROVIDERS_DIR
from mailgitops.errors import MailgitopsError, UsageError
from mailgitops.fsutil import atomic_write
from mailgitops.model import (
    DEFAULT_ALLOW,
    DEFAULT_AUTH_METHOD,
    DEFAULT_LOGIN_FORMAT,
    DEFAULT_MAILBOX_DEFAULT,
    KEEP_LIVE,
    KNOWN_KEYS,
    default_send_emails,
    derive_login,
    fold_address,
)
from mailgitops.pipeline import load_project

# Editors that use the YAML language server check the files against the schemas that
# schemas_for_headers puts into <root>/schemas/.
PROVIDER_HEADER = schema.header("provider")
MAILBOXES_HEADER = schema.header("mailboxes")

# Attributes that normalization derives or fills in: written only when they say something.
_MAILBOX_DEFAULTS: dict[str, Any] = {
    "send_emails": default_send_emails(DEFAULT_ALLOW),
    "default": DEFAULT_MAILBOX_DEFAULT,
    "shared_with": [],
}


@dataclass(frozen=True)
class Options:
    root: str
    state: str | None
    ids: list[str]


def register(sub: argparse._SubParsersAction[Any]) -> None:
    parser = add_command(
        sub,
        "import",
        run,
        Options,
        help="write YAML for live entries that are not in the config",
        description="Write providers.d/NAME.yaml and mailboxes.d/imported*.yaml for what is "
        "live but not in the config. Existing files are never overwritten.",
    )
    add_state_argument(parser)
    parser.add_argument(
        "ids",
        nargs="*",
        metavar="ID",
        help="provider names or mailbox addresses to import (default: every entry made "
        "outside mailgitops that the config lacks; a managed one is a pending delete and is "
        "imported only when named)",
    )


def _dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)


def _mailbox_yaml(address: str, entry: dict[str, Any], providers: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"address": address, "owner": entry.get("owner")}
    provider = entry.get("provider")
    if provider is not None:
        out["provider"] = provider
    pentry = providers.get(str(provider), {})
    login_format = pentry.get("login_format", DEFAULT_LOGIN_FORMAT)
    auth = pentry.get("auth") or {}
    if derive_login(login_format, address) is None:  # manual: the mailbox gives its login
        out["login"] = entry.get("login") or address.partition("@")[0]
    if "password" in entry and isinstance(entry["password"], dict):
        out["password"] = entry["password"]
    elif auth.get("method", DEFAULT_AUTH_METHOD) == "basic":
        # The value was never in the state: leave the CRM's password as it is.
        out["password"] = dict(KEEP_LIVE)
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


def _selected(
    kind: str, entries: dict[str, dict[str, Any]], in_config: set[str], named: set[str]
) -> tuple[list[str], list[str]]:
    """(keys to import, managed keys left out as pending deletes) of one kind."""
    chosen, pending = [], []
    for key in sorted(entries):
        folded = fold_address(key) if kind == "mailbox" else key
        if folded in in_config:
            continue
        if named:
            if key in named or folded in named:
                chosen.append(key)
        elif entries[key].get("managed") is True:
            pending.append(key)
        else:
            chosen.append(key)
    return chosen, pending


def run(options: Options) -> int:
    project = load_project(options.root)
    root = project.root
    state = project.backend(options.state).read()
    in_config_providers = {e.name for e in project.checked.providers if e.name}
    in_config_mailboxes = {m.address for m in project.checked.mailboxes if m.address}
    named = {*options.ids, *(fold_address(i) for i in options.ids if "@" in i)}
    live_addresses = {fold_address(k) for k in state.mailboxes}
    unknown = [
        i for i in options.ids if i not in state.providers and fold_address(i) not in live_addresses
    ]
    if unknown:
        raise UsageError(f"not in the live state: {', '.join(unknown)}")
    providers, pending_p = _selected("provider", state.providers, in_config_providers, named)
    addresses, pending_m = _selected("mailbox", state.mailboxes, in_config_mailboxes, named)
    known_providers = in_config_providers | set(providers)
    skipped = [a for a in addresses if state.mailboxes[a].get("provider") not in known_providers]
    addresses = [a for a in addresses if a not in skipped]
    for key in (*pending_p, *pending_m):
        output.warn(
            f"`{key}` is managed but not in the config: a pending delete, not imported "
            f"(to keep it, run `mailgitops import {key}`)"
        )
    for address in skipped:
        provider = state.mailboxes[address].get("provider")
        output.warn(
            f"`{address}` is not imported: its provider `{provider}` is neither in the config "
            f"nor imported (run `mailgitops import {provider} {address}`)"
        )
    written: list[str] = []
    try:
        (root / PROVIDERS_DIR).mkdir(exist_ok=True)
        (root / MAILBOXES_DIR).mkdir(exist_ok=True)
    except OSError as exc:
        raise MailgitopsError(f"cannot create the config folders: {exc.strerror or exc}") from None
    for name in providers:
        entry = state.providers[name]
        target = root / PROVIDERS_DIR / f"{name}.yaml"
        body = {"name": name, **{k: v for k, v in entry.items() if k in KNOWN_KEYS["provider"]}}
        origin = "managed" if entry.get("managed") else "made outside mailgitops"
        text = f"{PROVIDER_HEADER}\n# Imported from the live state ({origin}).\n" + _dump(body)
        if _write_new(target, text):
            written.append(str(target.relative_to(root)))
        else:
            output.warn(f"{target} exists but defines no provider `{name}`; not overwritten")
    boxes = [_mailbox_yaml(a, state.mailboxes[a], state.providers) for a in addresses]
    if boxes:
        header = (
            f"{MAILBOXES_HEADER}\n"
            "# Imported from the live state. `password: {keep: live}` leaves the password\n"
            "# as it is in the CRM; replace it by {env: NAME} or {file: PATH} to manage it.\n"
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
