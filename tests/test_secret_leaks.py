"""No secret value in any output (SPEC 2.3, issue 8): one test plants recognisable values behind
every kind of secret reference, runs every command in every output format, the failures and
`--debug` included, and then searches everything the tool printed or wrote."""

from __future__ import annotations

import base64
import errno
import glob
import json
import os
import tempfile
import uuid
from pathlib import Path

import pytest
from conftest import write_tree

from mailgitops.cli import main

CORP = """name: corp
domains: [example.com]
imap: {host: imap.example.com}
smtp: {host: smtp.example.com}
"""
GOOG = """name: goog
domains: [gmail.example]
imap: {host: imap.gmail.example}
smtp: {host: smtp.gmail.example}
auth:
  method: oauth2
  client_id: {env: GOOG_CLIENT_ID}
  client_secret: {env: GOOG_SECRET}
"""
MS = """name: ms
service_type: exchange
domains: [ms.example]
exchange: {host: outlook.office365.com}
auth:
  method: oauth2
  client_id: 1234-abcd
  client_secret: {file: secrets/ms.secret, version: 1}
  tenant_id: contoso
"""
TEAM = """mailboxes:
  - address: alice@example.com
    owner: alice
    password: {env: ALICE_PW}
  - address: Bob@Example.com
    owner: bob
    password: {file: secrets/bob.pw}
  - address: carol@gmail.example
    owner: carol
  - address: dave@ms.example
    owner: dave
"""
ISPDB = """<clientConfig version="1.1">
  <emailProvider id="mail.example">
    <domain>mail.example</domain>
    <incomingServer type="imap">
      <hostname>imap.mail.example</hostname><port>993</port><socketType>SSL</socketType>
      <username>%EMAILADDRESS%</username><authentication>password-cleartext</authentication>
    </incomingServer>
    <outgoingServer type="smtp">
      <hostname>smtp.mail.example</hostname><port>465</port><socketType>SSL</socketType>
      <username>%EMAILADDRESS%</username><authentication>password-cleartext</authentication>
    </outgoingServer>
  </emailProvider>
</clientConfig>
"""


def _forms(value: str) -> list[bytes]:
    """The value as it could appear: itself, its unique part, and in common encodings."""
    raw = value.encode()
    unique = value.removeprefix("LEAK-").replace("-", "")
    return [
        raw,
        unique.encode(),
        value.encode("utf-16-le"),
        base64.b64encode(raw),
        raw.hex().encode(),
        json.dumps(value).encode(),
    ]


def test_no_secret_value_in_any_output_file_or_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    leaks = {name: f"LEAK-{uuid.uuid4()}" for name in ("alice", "bob", "bob2", "goog", "gid")}
    leaks |= {name: f"LEAK-{uuid.uuid4()}" for name in ("ms", "literal", "state")}
    root = tmp_path / "repo"
    planted = {root / "secrets" / "bob.pw", root / "secrets" / "ms.secret"}
    write_tree(
        root,
        {
            "providers.d/corp.yaml": CORP,
            "providers.d/goog.yaml": GOOG,
            "providers.d/ms.yaml": MS,
            "mailboxes.d/team.yaml": TEAM,
            "secrets/bob.pw": leaks["bob"] + "\n",
            "secrets/ms.secret": leaks["ms"],
        },
    )
    monkeypatch.setenv("ALICE_PW", leaks["alice"])
    monkeypatch.setenv("GOOG_SECRET", leaks["goog"])
    monkeypatch.setenv("GOOG_CLIENT_ID", leaks["gid"])
    monkeypatch.setenv("MAILGITOPS_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # crash logs land here
    crash_logs_before = set(glob.glob(os.path.join(tempfile.gettempdir(), "mailgitops-crash-*")))
    state = tmp_path / "state" / "live.json"
    plan_file = tmp_path / "plans" / "plan.json"
    plan_file.parent.mkdir()
    printed: list[str] = []
    runs: list[tuple[str, ...]] = []

    def run(*argv: str, expect: int = 0) -> str:
        code = main(list(argv))
        out, err = capsys.readouterr()
        printed.extend((out, err))
        runs.append(argv)
        assert code == expect, (argv, out, err)
        return out + err

    c, s = ("-C", str(root)), ("--state", str(state))
    for fmt in ("text", "json", "github"):
        run("validate", *c, "--format", fmt)
    for fmt in ("text", "json", "markdown"):
        run("plan", *c, *s, "--format", fmt)
    run("plan", *c, *s, "--out", str(plan_file), "--detailed-exitcode", expect=2)
    run("apply", *c, *s, "--auto-approve")
    run("show", *s, *c)
    run("show", *s, *c, "--format", "json")

    # Rotation: a new value behind bob's file, announced by a version bump.
    (root / "secrets" / "bob.pw").write_text(leaks["bob2"] + "\n")
    (root / "mailboxes.d" / "team.yaml").write_text(
        TEAM.replace("{file: secrets/bob.pw}", "{file: secrets/bob.pw, version: 2}")
    )
    assert "rotated" in run("plan", *c, *s)
    for fmt in ("json", "markdown"):
        run("plan", *c, *s, "--format", fmt)
    run("plan", *c, *s, "--out", str(plan_file))
    run("apply", *c, *s, str(plan_file))
    run("apply", *c, *s, str(plan_file), expect=1)  # stale

    # A failing apply: one secret is missing, the others are read.
    write_tree(
        root,
        {
            "mailboxes.d/new.yaml": "mailboxes:\n  - address: erin@example.com\n    owner: erin\n"
            "    password: {env: ERIN_PW}\n"
        },
    )
    (root / "providers.d" / "ms.yaml").write_text(MS.replace("version: 1", "version: 2"))
    assert "env:ERIN_PW" in run("apply", *c, *s, "--auto-approve", expect=1)
    assert "env:ERIN_PW" in run("--debug", "apply", *c, *s, "--auto-approve", expect=1)
    run("plan", *c, *s, "--format", "json")

    # An unexpected error (the standard library fails in a way mailgitops does not foresee),
    # with --debug: the traceback and the crash log must not hold a value either.
    monkeypatch.setenv("ERIN_PW", leaks["alice"])
    with monkeypatch.context() as mp:

        def broken_fsync(fd: int) -> None:
            raise RuntimeError("injected: fsync broke")

        mp.setattr(os, "fsync", broken_fsync)
        assert "this is a bug" in run("--debug", "apply", *c, *s, "--auto-approve", expect=1)
    assert list((tmp_path / "tmp").glob("mailgitops-crash-*.log")), "no crash log written"
    run("apply", *c, *s, "--auto-approve")

    # Secrets in places they must never be: a literal in the config, a value in the state.
    (root / "mailboxes.d" / "literal.yaml").write_text(
        f"mailboxes:\n  - address: lit@example.com\n    owner: lit\n"
        f"    password: {leaks['literal']}\n"
    )
    for fmt in ("text", "json", "github"):
        run("validate", *c, "--format", fmt, expect=1)
    run("plan", *c, *s, expect=1)
    (root / "mailboxes.d" / "literal.yaml").unlink()
    good_state = state.read_bytes()
    live = json.loads(good_state)
    live["mailboxes"]["alice@example.com"]["password"] = leaks["state"]
    live["providers"]["goog"]["auth"]["client_secret"] = {"value": leaks["state"]}
    state.write_text(json.dumps(live))
    for argv in (("show", *c, *s), ("plan", *c, *s), ("apply", *c, *s, "--auto-approve")):
        run(*argv, expect=1)
    state.write_bytes(good_state)

    # The remaining commands.
    for address in ("alice@example.com", "x@gmail.example", "y@ms.example"):
        run("resolve", address, *c)
        run("resolve", address, *c, "--format", "json")
    live = json.loads(state.read_bytes())
    live["mailboxes"]["ui@example.com"] = {
        "provider": "corp",
        "owner": "ursula",
        "password": {"env": "ALICE_PW"},
    }
    live["providers"]["legacy"] = {
        "service_type": "imap",
        "imap": {"host": "imap.legacy.example", "port": 143, "security": "starttls"},
        "smtp": {"host": "smtp.legacy.example", "port": 587, "security": "starttls"},
        "auth": {"method": "oauth2", "client_id": "x", "client_secret": {"env": "GOOG_SECRET"}},
    }
    state.write_text(json.dumps(live))
    run("import", *c, *s)
    run("plan", *c, *s, "--format", "json")
    ispdb = tmp_path / "ispdb" / "mail.example.xml"
    write_tree(ispdb.parent, {ispdb.name: ISPDB})
    run("import-ispdb", str(ispdb), *c)
    run("state", "pull", *c, "--from", str(state), "--to", str(tmp_path / "pulled.json"))
    # These servers do not exist, but `check --login` reads every password all the same
    # (tests/test_check.py does the same against real servers).
    for fmt in ("text", "json", "github"):
        run("check", *c, "--login", "--timeout", "0.5", "--format", fmt, expect=1)
    with monkeypatch.context() as mp:
        real_replace = os.replace

        def full_disk(src: str, dst: str) -> None:
            if str(dst) == str(state):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
            real_replace(src, dst)

        mp.setattr(os, "replace", full_disk)
        run("--debug", "apply", *c, *s, "--auto-approve", expect=1)

    # Search everything.
    haystacks: dict[str, bytes] = {f"output {i}": text.encode() for i, text in enumerate(printed)}
    for path in sorted(tmp_path.rglob("*")):
        if path.is_file() and not path.is_symlink() and path not in planted:
            haystacks[str(path.relative_to(tmp_path))] = path.read_bytes()
    crash_logs = set(glob.glob(os.path.join(tempfile.gettempdir(), "mailgitops-crash-*")))
    for log in sorted(crash_logs - crash_logs_before):
        haystacks[log] = Path(log).read_bytes()
    for name in ("live.json", "live.json.backup", "live.json.lock", "plan.json", "imported.yaml"):
        assert any(key.endswith(name) for key in haystacks), f"{name} was not written"
    found = [
        f"{what} holds the {secret} value"
        for what, content in haystacks.items()
        for secret, value in leaks.items()
        if any(form in content for form in _forms(value))
    ]
    assert found == [], found
    print(f"{len(runs)} runs, {len(haystacks)} outputs and files searched")
    assert len(runs) >= 35, len(runs)


# -- issue 13: literal secrets in every YAML shape, DSN forms -------------------------------


def _search(tmp_path: Path, printed: list[str], needles: dict[str, str]) -> list[str]:
    """Where any needle appears: the printed outputs and every file under tmp_path but the
    config itself (the cache, the state, plan files)."""
    haystacks = {f"output {i}": text for i, text in enumerate(printed)}
    for path in sorted(tmp_path.rglob("*")):
        if path.is_file() and not path.is_symlink() and "repo" not in path.parts:
            haystacks[str(path.relative_to(tmp_path))] = path.read_bytes().decode("latin-1")
    return [
        f"{where} holds the {what} ({needle!r})"
        for where, text in haystacks.items()
        for what, needle in needles.items()
        if needle in text
    ]


def _shapes() -> dict[str, tuple[str, list[str]]]:
    """YAML 1.1 shapes a literal secret can take: (the text written, the forms to look for:
    the text and what YAML 1.1 reads it as)."""
    rng = uuid.uuid4().int
    octal = "0" + oct(10_000_000 + rng % 5_000_000)[2:]
    hours, minutes, seconds = 100 + rng % 800, 10 + rng % 50, 10 + (rng >> 8) % 50
    sexagesimal = f"{hours}:{minutes}:{seconds}"
    date = f"{2100 + rng % 800}-0{1 + rng % 9}-1{rng % 9}"
    floating = f"{rng % 10**6}.{rng % 997}e+7"
    return {
        "octal-number": (octal, [octal, str(int(octal, 8))]),
        "sexagesimal": (sexagesimal, [sexagesimal, str(hours * 3600 + minutes * 60 + seconds)]),
        "date": (date, [date]),
        "float": (floating, [floating, str(float(floating))]),
        "boolean": ("YES", ["YES"]),
    }


SHAPES = sorted(_shapes())


@pytest.mark.parametrize("anchored", ["plain", "anchor-defined-at-the-secret", "alias-at-it"])
@pytest.mark.parametrize("shape", SHAPES)
def test_a_literal_secret_in_any_yaml_shape_is_never_echoed(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    shape: str,
    anchored: str,
) -> None:
    text, needles = _shapes()[shape]
    if anchored == "plain":
        pw, other = text, "Alice"
    elif anchored == "anchor-defined-at-the-secret":
        pw, other = f"&p {text}", "*p"  # the same value, quoted by a rule on sender_name?
    else:
        pw, other = "*p", f"&p {text}"
    root = write_tree(
        tmp_path / "repo",
        {
            "providers.d/corp.yaml": CORP,
            "providers.d/goog.yaml": GOOG.replace("{env: GOOG_SECRET}", text),
            "mailboxes.d/team.yaml": "mailboxes:\n  - address: alice@example.com\n"
            f"    owner: alice\n    sender_name: {other}\n    password: {pw}\n",
        },
    )
    monkeypatch.setenv("MAILGITOPS_CACHE_DIR", str(tmp_path / "cache"))
    printed: list[str] = []
    state = str(tmp_path / "live.json")
    for argv in (
        *(("validate", "--format", fmt) for fmt in ("text", "json", "github")),
        *(("plan", "--state", state, "--format", fmt) for fmt in ("text", "json", "markdown")),
        ("plan", "--state", state, "--out", str(tmp_path / "plan.json")),
        ("apply", "--state", state, "--auto-approve"),
    ):
        assert main([argv[0], "-C", str(root), *argv[1:]]) == 1, argv
        printed.extend(capsys.readouterr())
    assert _search(tmp_path, printed, {f"form {i}": n for i, n in enumerate(needles)}) == []


DSN_FORMS = {
    "url-password-with-hash": "postgresql://u:{pw}#X@/db?host=/nonexistent-dir",
    "url-password-with-question-mark": "postgresql://u:{pw}?X@/db?host=/nonexistent-dir",
    "url-password-with-slash": "postgresql://u:{pw}/X@/db?host=/nonexistent-dir",
    "url-query-password": "postgresql://u@/db?host=/nonexistent-dir&password={pw}",
    "keyword-password": "host=/nonexistent-dir dbname=db password={pw}",
    "keyword-quoted-password": "host=/nonexistent-dir dbname=db password='{pw} x'",
    "keyword-sslpassword": "host=/nonexistent-dir dbname=db sslpassword={pw}",
}


@pytest.mark.parametrize("form", sorted(DSN_FORMS))
def test_a_password_in_a_dsn_is_refused_and_never_shown(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    form: str,
) -> None:
    secret = f"LEAK{uuid.uuid4().hex}"
    dsn = DSN_FORMS[form].format(pw=secret)
    root = write_tree(
        tmp_path / "repo",
        {
            "providers.d/corp.yaml": CORP,
            "mailboxes.d/team.yaml": TEAM.split("  - address: Bob", maxsplit=1)[0],
            "mailgitops.yaml": f"state:\n  backend: postgres\n  dsn: {json.dumps(dsn)}\n",
        },
    )
    monkeypatch.setenv("MAILGITOPS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("ALICE_PW", "a")
    printed: list[str] = []
    for fmt in ("text", "json", "github"):
        assert main(["validate", "-C", str(root), "--format", fmt]) == 1
        out, err = capsys.readouterr()
        printed.extend((out, err))
        assert "plaintext-secret" in out
    for argv in (("plan",), ("plan", "--format", "json"), ("show",), ("apply", "--auto-approve")):
        assert main([argv[0], "-C", str(root), *argv[1:]]) == 1
        printed.extend(capsys.readouterr())
    # The same DSN given on the command line: the connection fails, and says where to.
    (root / "mailgitops.yaml").unlink()
    assert main(["plan", "-C", str(root), "--state", dsn]) == 1 or not dsn.startswith("postgres")
    out, err = capsys.readouterr()
    printed.extend((out, err))
    if dsn.startswith("postgres"):
        assert "cannot connect to the PostgreSQL state" in err
    assert _search(tmp_path, printed, {"password": secret}) == []


def test_a_dsn_behind_a_reference_is_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_tree(
        tmp_path / "repo",
        {
            "providers.d/corp.yaml": CORP,
            "mailgitops.yaml": "state:\n  backend: postgres\n  dsn: {env: STATE_DSN}\n",
        },
    )
    monkeypatch.setenv(
        "STATE_DSN", "postgresql://secretuser@/secretdb?host=/nonexistent-secrethost&port=5999"
    )
    printed: list[str] = []
    for argv in (("plan",), ("show",), ("apply", "--auto-approve")):
        assert main([argv[0], "-C", str(root), *argv[1:]]) == 1
        out, err = capsys.readouterr()
        printed.extend((out, err))
        assert "env:STATE_DSN" in err
    needles = {p: p for p in ("secretuser", "secretdb", "secrethost", "5999")}
    assert _search(tmp_path, printed, needles) == []


def test_dsn_redaction_without_psycopg(monkeypatch: pytest.MonkeyPatch) -> None:
    """psycopg is optional (`mailgitops[postgres]`): without it nothing of a DSN is shown,
    and a DSN that might hold a password counts as one that does."""
    import sys

    from mailgitops.state import dsn

    monkeypatch.setitem(sys.modules, "psycopg", None)  # what `import psycopg` finds missing
    for form in DSN_FORMS.values():
        shown = dsn.redact(form.format(pw="SECRET"))
        assert "SECRET" not in shown and "not shown" in shown
        assert dsn.has_password(form.format(pw="SECRET"))
    assert "not shown" in dsn.redact("postgresql://h/db")
    assert not dsn.has_password("postgresql://h/db")
