"""Properties of plan and apply (issue 8), checked on random valid configs against random live
states, each example through the real CLI (`mailgitops.cli.main`, in-process):

(a) plan -> apply -> plan is empty, unless the plan is refused, and then nothing is written;
(b) an apply never deletes or changes an entry made outside mailgitops unless the config adopts
    it (same name, or same address case-insensitively);
(c) after any successful apply no live mailbox uses a provider that the apply removed;
(d) `plan --out` + `apply PLANFILE` gives exactly the state the plan promised (`apply_to`, and
    an independent reading of the plan's changes), and replaying it is refused as stale.

Configs: a few providers (imap or exchange, own domains or none, every login format, basic or
oauth2 auth, odd ports) and mailboxes on them in 1-3 files with `defaults:`, written as YAML.
Live states: each config entry absent, equal, drifted, or made outside mailgitops (any address
case, another owner); extra managed and unmanaged providers with and without mailboxes;
mailboxes on providers that are gone or never existed; case variants of one address.

CI runs a fixed, derandomized set of examples. `python bench/properties.py` runs the same
properties with tens of thousands (MAILGITOPS_PROPERTY_EXAMPLES, MAILGITOPS_PROPERTY_SEED)."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, seed, settings
from hypothesis import strategies as st

from mailgitops import normalize
from mailgitops.cli import main
from mailgitops.model import Config
from mailgitops.plan.apply import apply_to
from mailgitops.plan.result import Plan
from mailgitops.state.base import State
from mailgitops.validate import check_config

# Read once at import: conftest clears MAILGITOPS_* variables for each test.
_EXAMPLES = os.environ.get("MAILGITOPS_PROPERTY_EXAMPLES")
_SEED = os.environ.get("MAILGITOPS_PROPERTY_SEED")


def budget(ci_examples: int) -> Callable[[Any], Any]:
    """CI: `ci_examples` derandomized examples (the same ones on every run). The bench script:
    MAILGITOPS_PROPERTY_EXAMPLES examples, random unless MAILGITOPS_PROPERTY_SEED is set."""
    config = settings(
        max_examples=int(_EXAMPLES) if _EXAMPLES else ci_examples,
        derandomize=not _EXAMPLES and _SEED is None,
        database=None,
        deadline=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )

    def apply(test: Any) -> Any:
        test = config(test)
        return seed(int(_SEED))(test) if _SEED is not None else test

    return apply


SECRET_ENV = {"PW_A": "pw-a-value", "PW_B": "pw-b-value", "OAUTH_ID": "id", "OAUTH_SECRET": "s"}
SECRET_FILES = {"secrets/mailbox.pw": "file-pw-value\n", "secrets/oauth.txt": "oauth-value\n"}

PROVIDER_NAMES = ("corp", "legacy", "mx-1", "ex.chg", "oauth_p")
EXTRA_PROVIDERS = ("gone-a", "gone-b", "ui-made")
DOMAINS = ("example.com", "example.org", "corp.example.net", "mail.test", "other.io")
LOCALS = ("alice", "bob", "carol", "info", "sales+eu", "no.reply", "x_1")
OWNERS = ("alice", "bob", "carol", "dave")
SECURITIES = ("ssl_tls", "starttls", "none")
TEXTS = ("Alice Smith", "Jürgen Müller", "yes", "null", "123", "O'Brien, Pat", "a: b # c", "")


# The properties are about what is written, not about durability (tests/test_faults.py): a RAM
# file system, where there is one, keeps fsync from dominating the run time.
SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


@pytest.fixture(autouse=True, scope="module")
def _secrets() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        for name, value in SECRET_ENV.items():
            mp.setenv(name, value)
        mp.setenv("NO_COLOR", "1")
        yield


# --- configs ------------------------------------------------------------------------------------


@dataclass
class ProviderSpec:
    body: dict[str, Any]
    login_format: str
    auth: str
    sending: bool
    receiving: bool

    @property
    def name(self) -> str:
        return str(self.body["name"])


@dataclass
class ConfigSpec:
    providers: list[ProviderSpec]
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # mailboxes.d/ files


def _optional(draw: st.DrawFn, strategy: st.SearchStrategy[Any]) -> Any:
    return draw(st.one_of(st.none(), strategy))


def _server(draw: st.DrawFn, kind: str, name: str) -> dict[str, Any]:
    body: dict[str, Any] = {"host": f"{kind}.{name.replace('_', '-')}.example.net"}
    security = _optional(draw, st.sampled_from(SECURITIES))
    if security is not None:
        body["security"] = security
    # Odd pairs are warnings, not errors (SPEC 2.1); 455 is the Creatio typo.
    port = _optional(draw, st.sampled_from((993, 143, 465, 587, 25, 2525, 455, 10143)))
    if port is not None:
        body["port"] = port
    if kind == "smtp" and draw(st.booleans()):
        body["timeout_seconds"] = draw(st.integers(1, 3600))
    return body


@st.composite
def provider_specs(draw: st.DrawFn) -> list[ProviderSpec]:
    names = draw(st.lists(st.sampled_from(PROVIDER_NAMES), min_size=0, max_size=4, unique=True))
    # Each domain belongs to at most one provider (or none).
    owner_of = draw(
        st.lists(st.integers(-1, len(names) - 1), min_size=len(DOMAINS), max_size=len(DOMAINS))
    )
    specs = []
    for index, name in enumerate(names):
        body: dict[str, Any] = {"name": name}
        display = _optional(draw, st.sampled_from(TEXTS[:-1]))
        if display is not None:
            body["display_name"] = display
        kind = draw(st.sampled_from(("imap", "imap-default", "exchange")))
        domains = [d for d, o in zip(DOMAINS, owner_of, strict=True) if o == index]
        if domains or draw(st.booleans()):
            body["domains"] = [d.upper() if draw(st.booleans()) else d for d in domains]
        if kind == "exchange":
            body["service_type"] = "exchange"
            exchange = draw(
                st.sampled_from(
                    (
                        {"host": "outlook.office365.com"},
                        {"autodiscover": True},
                        {"host": "ex.example.net", "autodiscover": False},
                    )
                )
            )
            body["exchange"] = dict(exchange)
        else:
            if kind == "imap":
                body["service_type"] = "imap"
            body["imap"] = _server(draw, "imap", name)
            body["smtp"] = _server(draw, "smtp", name)
        receiving = _optional(draw, st.booleans())
        sending = _optional(draw, st.booleans())
        if receiving is not None:
            body["allow_receiving"] = receiving
        if sending is not None:
            body["allow_sending"] = sending
        login_format = _optional(draw, st.sampled_from(("email_address", "mailbox_name", "manual")))
        if login_format is not None:
            body["login_format"] = login_format
        auth = draw(st.sampled_from(("implicit", "basic", "oauth2")))
        if auth == "basic":
            body["auth"] = {"method": "basic"}
        elif auth == "oauth2":
            body["auth"] = {
                "method": "oauth2",
                "client_id": draw(st.sampled_from(("1234.apps.example.com", {"env": "OAUTH_ID"}))),
                "client_secret": draw(
                    st.sampled_from(
                        (
                            {"env": "OAUTH_SECRET"},
                            {"file": "secrets/oauth.txt", "version": 3},
                        )
                    )
                ),
            }
            if draw(st.booleans()):
                body["auth"]["token_url"] = "https://login.example.net/token"
        specs.append(
            ProviderSpec(
                body,
                login_format or "email_address",
                "oauth2" if auth == "oauth2" else "basic",
                sending is not False,
                receiving is not False,
            )
        )
    return specs


def _case(draw: st.DrawFn, text: str) -> str:
    style = draw(st.sampled_from(("lower", "lower", "title", "upper")))
    return {"lower": text, "title": text.title(), "upper": text.upper()}[style]


@st.composite
def config_specs(draw: st.DrawFn) -> ConfigSpec:
    providers = draw(provider_specs())
    spec = ConfigSpec(providers)
    if not providers:
        return spec
    by_name = {p.name: p for p in providers}
    by_domain = {
        d.lower(): p.name
        for p in providers
        for d in p.body.get("domains", [])
        if isinstance(d, str)
    }
    pairs = draw(
        st.lists(
            st.tuples(st.sampled_from(LOCALS), st.sampled_from(DOMAINS)), unique=True, max_size=8
        )
    )
    has_default: set[str] = set()
    items: list[dict[str, Any]] = []
    for local, domain in pairs:
        resolved = by_domain.get(domain)
        choices = [*by_name] if resolved is None else [None, resolved, *by_name]
        named = draw(st.sampled_from(choices))
        provider = by_name[named or resolved or ""]
        item: dict[str, Any] = {"address": _case(draw, f"{local}@{domain}")}
        item["owner"] = draw(st.sampled_from(OWNERS))
        if named is not None:
            item["provider"] = named
        if provider.login_format == "manual":
            item["login"] = draw(st.sampled_from(("jdoe", "j.doe@legacy", "DOMAIN\\jdoe")))
        if provider.auth == "basic":
            item["password"] = draw(
                st.sampled_from(
                    (
                        {"env": "PW_A"},
                        {"env": "PW_B", "version": 2},
                        {"env": "PW_A", "version": "2026-01"},
                        {"file": "secrets/mailbox.pw"},
                    )
                )
            )
        for key in ("sender_name", "signature"):
            text = _optional(draw, st.sampled_from(TEXTS))
            if text is not None:
                item[key] = text
        send = draw(st.sampled_from((None, True, False) if provider.sending else (None, False)))
        if send is not None:
            item["send_emails"] = send
        if draw(st.booleans()):
            sync: dict[str, Any] = {}
            enabled = draw(
                st.sampled_from((None, True, False) if provider.receiving else (None, False))
            )
            if enabled is not None:
                sync["enabled"] = enabled
            for key, values in (
                ("period", ("one_day", "three_days", "week", "all")),
                ("since", ("2026-01-01", "2024-02-29")),
                ("folders", (["INBOX"], ["INBOX", "Sent", "Archiv/2025"])),
            ):
                value = _optional(draw, st.sampled_from(values))
                if value is not None:
                    sync[key] = value
            item["sync"] = sync
        if item["owner"] not in has_default and draw(st.booleans()):
            item["default"] = True
            has_default.add(item["owner"])
        elif draw(st.booleans()):
            item["default"] = False
        users = draw(st.lists(st.sampled_from(OWNERS), unique=True, max_size=2))
        if users:
            item["shared_with"] = [
                {
                    "user": user,
                    "rights": draw(
                        st.lists(
                            st.sampled_from(("send", "edit", "read")),
                            min_size=1,
                            max_size=3,
                            unique=True,
                        )
                    ),
                }
                for user in users
            ]
        items.append(item)
    count = draw(st.integers(1, 3))
    for index in range(count):
        mine = [item for i, item in enumerate(items) if i % count == index]
        body: dict[str, Any] = {}
        defaults = draw(
            st.sampled_from(
                (None, {"send_emails": False}, {"sync": {"period": "all"}}, {"signature": "--"})
            )
        )
        if defaults is not None:
            body["defaults"] = dict(defaults)
        body["mailboxes"] = mine
        spec.files[f"mailboxes.d/team-{index}.yaml"] = body
    return spec


def write_config(root: Path, spec: ConfigSpec) -> None:
    for rel, text in SECRET_FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / "providers.d").mkdir()
    (root / "mailboxes.d").mkdir()
    for provider in spec.providers:
        (root / "providers.d" / f"{provider.name}.yaml").write_text(
            yaml.safe_dump(provider.body, sort_keys=False, allow_unicode=True)
        )
    for rel, body in spec.files.items():
        (root / rel).write_text(yaml.safe_dump(body, sort_keys=False, allow_unicode=True))


def normalized(root: Path) -> Config:
    checked = check_config(root)
    assert checked.ok, "the generator made an invalid config:\n" + "\n".join(
        str(d) for d in checked.diagnostics.errors
    )
    return normalize.build(checked)


# --- live states --------------------------------------------------------------------------------


def _drift_provider(draw: Callable[[Any], Any], attrs: dict[str, Any]) -> dict[str, Any]:
    entry = copy.deepcopy(attrs)
    how = draw(st.sampled_from(("port", "display", "domains", "login", "sending", "drop", "extra")))
    if how == "port" and "imap" in entry:
        entry["imap"]["port"] = 10993
    elif how == "display":
        entry["display_name"] = "Drifted in the CRM"
    elif how == "domains":
        entry["domains"] = [*entry.get("domains", []), "drift.example"]
    elif how == "login":
        entry["login_format"] = (
            "manual" if entry.get("login_format") != "manual" else "email_address"
        )
    elif how == "sending":
        entry["allow_sending"] = not entry.get("allow_sending", True)
    elif how == "drop":
        entry.pop(draw(st.sampled_from(sorted(entry))), None)
    else:
        entry["crm_id"] = 17
    return entry


def _drift_mailbox(
    draw: Callable[[Any], Any], attrs: dict[str, Any], providers: list[str]
) -> dict[str, Any]:
    entry = copy.deepcopy(attrs)
    how = draw(
        st.sampled_from(("owner", "sender", "password", "sync", "provider", "drop", "extra"))
    )
    if how == "owner":
        entry["owner"] = "mallory"
    elif how == "sender":
        entry["sender_name"] = "Drifted"
    elif how == "password":
        entry["password"] = {"env": "PW_B", "version": 9}
    elif how == "sync":
        entry["sync"] = {"enabled": False, "period": "all", "folders": ["INBOX"]}
    elif how == "provider":
        entry["provider"] = draw(st.sampled_from(providers))
    elif how == "drop":
        droppable = sorted(k for k in entry if k not in ("provider", "owner"))
        if droppable:
            entry.pop(draw(st.sampled_from(droppable)))
    else:
        entry["crm_id"] = 42
    return entry


def _unmanaged(draw: Callable[[Any], Any], entry: dict[str, Any]) -> dict[str, Any]:
    """An entry made outside mailgitops: `managed` absent or false."""
    if draw(st.booleans()):
        return {"managed": False, **entry}
    return entry


def draw_live(draw: Callable[[Any], Any], config: Config) -> dict[str, Any] | None:
    """A random live state around `config` (None: no state file yet)."""
    if draw(st.integers(0, 7)) == 0:
        return None
    providers: dict[str, dict[str, Any]] = {}
    mailboxes: dict[str, dict[str, Any]] = {}
    for name, provider in config.providers.items():
        mode = draw(st.sampled_from(("absent", "equal", "equal", "drift", "outside")))
        attrs = provider.attrs()
        if mode == "equal":
            providers[name] = {"managed": True, **attrs}
        elif mode == "drift":
            providers[name] = {"managed": True, **_drift_provider(draw, attrs)}
        elif mode == "outside":
            partial = draw(st.sampled_from(("empty", "some", "all")))
            body = {} if partial == "empty" else attrs
            if partial == "some":
                body = {"service_type": attrs["service_type"], "domains": attrs["domains"]}
            providers[name] = _unmanaged(draw, body)
    for name in draw(st.lists(st.sampled_from(EXTRA_PROVIDERS), unique=True, max_size=3)):
        body = draw(
            st.sampled_from(
                (
                    {},
                    {"service_type": "imap", "imap": {"host": "imap.gone.example", "port": 143}},
                    {"service_type": "exchange", "exchange": {"host": None, "autodiscover": True}},
                )
            )
        )
        providers[name] = (
            {"managed": True, **body} if draw(st.booleans()) else _unmanaged(draw, body)
        )
    somewhere = sorted({*providers, *config.providers, "never-existed"})
    for address, mailbox in config.mailboxes.items():
        mode = draw(st.sampled_from(("absent", "equal", "equal", "drift", "outside")))
        key = _case(draw, address) if mode == "outside" else address
        attrs = mailbox.attrs()
        if mode == "equal":
            mailboxes[key] = {"managed": True, **attrs}
        elif mode == "drift":
            mailboxes[key] = {"managed": True, **_drift_mailbox(draw, attrs, somewhere)}
        elif mode == "outside":
            owner = draw(st.sampled_from((mailbox.owner, "ursula")))
            mailboxes[key] = _unmanaged(
                draw, {"provider": draw(st.sampled_from(somewhere)), "owner": owner}
            )
    extras = draw(
        st.lists(
            st.tuples(
                st.sampled_from(("ui", "old", "Temp.User", "x_1")),
                st.sampled_from((*DOMAINS, "elsewhere.example")),
                st.sampled_from(somewhere),
                st.booleans(),
            ),
            max_size=5,
        )
    )
    for local, domain, provider, managed in extras:
        key = _case(draw, f"{local}@{domain}")
        if key.lower() in {k.lower() for k in mailboxes}:
            continue
        entry: dict[str, Any] = {"provider": provider, "owner": "ursula"}
        mailboxes[key] = {"managed": True, **entry} if managed else _unmanaged(draw, entry)
    if mailboxes and draw(st.integers(0, 5)) == 0:
        # A case variant of an address that is already live: the CRM's UI compares exactly.
        original = draw(st.sampled_from(sorted(mailboxes)))
        twin = original.upper() if original != original.upper() else original.lower()
        if twin not in mailboxes:
            mailboxes[twin] = _unmanaged(
                draw, {"provider": mailboxes[original]["provider"], "owner": "twin"}
            )
    return {
        "format_version": 1,
        "lineage": "7f0c1a52-5b1c-4a53-9d6e-2f4a3c9b8e10",
        "serial": draw(st.integers(0, 5)),
        "providers": providers,
        "mailboxes": mailboxes,
    }


# --- running the CLI -----------------------------------------------------------------------------


@dataclass
class Project:
    root: Path
    config: Config
    before: bytes | None

    @property
    def state(self) -> Path:
        return self.root / "state" / "live.json"

    def run(self, *argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        command, *rest = argv
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([command, "-C", str(self.root), "--state", str(self.state), *rest])
        assert "Traceback" not in err.getvalue() and "this is a bug" not in err.getvalue()
        return code, out.getvalue(), err.getvalue()

    def live(self) -> dict[str, Any]:
        if not self.state.exists():  # nothing to apply: the state is not created
            return {"providers": {}, "mailboxes": {}}
        data: dict[str, Any] = json.loads(self.state.read_bytes())
        return data

    def before_json(self) -> dict[str, Any]:
        if self.before is None:
            return {"providers": {}, "mailboxes": {}}
        data: dict[str, Any] = json.loads(self.before)
        return data

    def assert_untouched(self) -> None:
        if self.before is None:
            assert not self.state.exists(), "a refused apply created the state"
        else:
            assert self.state.read_bytes() == self.before, "a refused apply wrote the state"
        assert not list(self.state.parent.glob("*.tmp")), "temporary files left behind"

    def plan_json(self) -> dict[str, Any]:
        code, out, err = self.run("plan", "--format", "json")
        assert code in (0, 1), err
        data: dict[str, Any] = json.loads(out)
        return data

    def adopts(self, kind: str, key: str) -> bool:
        """Whether the config takes over the live entry `key` (SPEC 4: same name; a mailbox
        address compared case-insensitively)."""
        if kind == "providers":
            return key in self.config.providers
        return key.lower() in self.config.mailboxes


@contextlib.contextmanager
def project(spec: ConfigSpec, data: st.DataObject) -> Iterator[Project]:
    with tempfile.TemporaryDirectory(prefix="mailgitops-prop-", dir=SCRATCH) as tmp:
        root = Path(tmp)
        write_config(root, spec)
        config = normalized(root)
        live = draw_live(data.draw, config)
        (root / "state").mkdir()
        before = None
        if live is not None:
            before = (json.dumps(live, indent=1) + "\n").encode()
            (root / "state" / "live.json").write_bytes(before)
        yield Project(root, config, before)


# The mass-deletion threshold (tests/test_safety_limits.py) would refuse some random plans; the
# properties are about what an apply that runs does, so every apply here allows it.
APPLY = ("--allow-mass-delete",)


def _refused(code: int, err: str) -> bool:
    event("refused by the deletion rule" if code == 1 else "applied")
    if code == 1:
        assert "the plan is refused" in err and "cannot delete provider" in err, err
        return True
    assert code == 0, err
    return False


# --- the properties ----------------------------------------------------------------------------


@budget(90)
@given(spec=config_specs(), data=st.data())
def test_plan_apply_plan_is_empty(spec: ConfigSpec, data: st.DataObject) -> None:
    with project(spec, data) as p:
        code, _out, err = p.run("apply", "--auto-approve", *APPLY)
        if _refused(code, err):
            p.assert_untouched()
            assert p.plan_json()["refusals"], "apply refused a plan that plan accepts"
            return
        plan = p.plan_json()
        assert plan["changes"] == [], plan["changes"]
        assert plan["refusals"] == []
        code, out, _err = p.run("plan")
        assert code == 0 and out.rstrip().endswith("No changes.")
        assert not list(p.state.parent.glob("*.tmp"))


@budget(90)
@given(spec=config_specs(), data=st.data())
def test_apply_leaves_entries_made_outside_alone(spec: ConfigSpec, data: st.DataObject) -> None:
    with project(spec, data) as p:
        code, _out, err = p.run("apply", "--auto-approve", *APPLY)
        if _refused(code, err):
            p.assert_untouched()
            return
        before, after = p.before_json(), p.live()
        for kind in ("providers", "mailboxes"):
            for key, entry in before[kind].items():
                if entry.get("managed") is True or p.adopts(kind, key):
                    continue
                assert after[kind].get(key) == entry, f"{kind} {key!r} made outside was changed"
            for key, entry in after[kind].items():
                if entry.get("managed") is not True:
                    assert before[kind].get(key) == entry, f"{kind} {key!r} appeared unmanaged"
        assert set(after["providers"]) >= set(p.config.providers)
        for name in p.config.providers:
            assert after["providers"][name]["managed"] is True
        for address in p.config.mailboxes:
            assert after["mailboxes"][address]["managed"] is True


@budget(90)
@given(spec=config_specs(), data=st.data())
def test_no_mailbox_uses_a_provider_the_apply_removed(
    spec: ConfigSpec, data: st.DataObject
) -> None:
    with project(spec, data) as p:
        code, _out, err = p.run("apply", "--auto-approve", *APPLY)
        if _refused(code, err):
            p.assert_untouched()
            # The refusal names mailboxes that are really live (by their live key) or in the
            # config (lower-cased, as it is stored).
            named = [line.strip()[2:].split(" (")[0] for line in err.splitlines() if "  - " in line]
            known = {*p.before_json()["mailboxes"], *p.config.mailboxes}
            assert named and set(named) <= known, err
            return
        before, after = p.before_json(), p.live()
        gone = set(before["providers"]) - set(after["providers"])
        stranded = {a for a, e in after["mailboxes"].items() if e.get("provider") in gone}
        assert not stranded, f"mailboxes {sorted(stranded)} use a provider the apply deleted"


# Found by `python bench/properties.py` (property c): the deletion rule once keyed live
# mailboxes by their lower-cased address, so a managed mailbox and its unmanaged case twin
# (the CRM compares exactly) counted as one, and deleting the one forgot the other.
def test_deletion_rule_sees_a_case_variant_of_a_deleted_mailbox(tmp_path: Path) -> None:
    (tmp_path / "providers.d").mkdir()
    (tmp_path / "providers.d" / "corp.yaml").write_text(
        "name: corp\ndomains: [example.com]\nimap: {host: imap.example.com}\n"
        "smtp: {host: smtp.example.com}\n"
    )
    live = {
        "format_version": 1,
        "lineage": "7f0c1a52-5b1c-4a53-9d6e-2f4a3c9b8e10",
        "serial": 1,
        "providers": {"gone": {"managed": True}},
        "mailboxes": {
            "ui@example.com": {"managed": True, "provider": "gone", "owner": "ursula"},
            "UI@EXAMPLE.COM": {"provider": "gone", "owner": "twin"},  # made in the CRM
        },
    }
    before = (json.dumps(live) + "\n").encode()
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "live.json").write_bytes(before)
    p = Project(tmp_path, normalized(tmp_path), before)
    code, _out, err = p.run("apply", "--auto-approve", *APPLY)
    assert code == 1 and "cannot delete provider `gone`" in err, err
    assert "created outside mailgitops" in err
    p.assert_untouched()


@budget(60)
@given(spec=config_specs(), data=st.data())
def test_saved_plan_gives_the_promised_state(spec: ConfigSpec, data: st.DataObject) -> None:
    with project(spec, data) as p:
        planfile = p.root / "saved.plan.json"
        code, _out, err = p.run("plan", "--out", str(planfile))
        saved = json.loads(planfile.read_bytes())
        code_apply, _out, err = p.run("apply", str(planfile), *APPLY)
        if saved["refusals"]:
            assert code == 1 and code_apply == 1 and "the plan is refused" in err
            p.assert_untouched()
            return
        assert code == 0 and code_apply == 0, err
        before = p.before_json()
        if not saved["changes"]:
            assert p.before is None or p.state.read_bytes() == p.before
            return
        after = p.live()
        lineage = before.get("lineage") or after["lineage"]
        old = State(
            before.get("lineage"), before.get("serial", 0), before["providers"], before["mailboxes"]
        )
        promised = apply_to(Plan.from_json(saved, str(planfile)), old, lineage=lineage)
        assert after == promised.to_json()
        # The same promise, read from the plan file without mailgitops's help.
        expected: dict[str, dict[str, Any]] = copy.deepcopy(
            {"providers": before["providers"], "mailboxes": before["mailboxes"]}
        )
        for change in saved["changes"]:
            entries = expected["providers" if change["kind"] == "provider" else "mailboxes"]
            entries.pop(change.get("live_key") or change["id"], None)
            if change["action"] != "delete":
                entries[change["id"]] = {"managed": True, **change["after"]}
        assert {"providers": after["providers"], "mailboxes": after["mailboxes"]} == expected
        assert after["serial"] == before.get("serial", 0) + 1
        assert after["lineage"] == lineage and isinstance(lineage, str)
        code, _out, err = p.run("apply", str(planfile), *APPLY)
        assert code == 1 and "stale plan" in err, "a saved plan must apply once"
        assert p.plan_json()["changes"] == []
