"""`mailgitops check` and `plan --check` end to end, against real servers on 127.0.0.1
started here (tests/mailservers.py): Dovecot for IMAP, aiosmtpd for SMTP, and small hostile
servers for what no real server does on purpose (silence, endless lines, escape sequences,
echoed credentials). The certificates are made by the tests and trusted with --ca-file, the
option a user with a private CA has too."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from helpers import tree
from mailservers import (
    PASSWORD,
    USER,
    Hostile,
    Servers,
    echoing_smtp,
    endless_line,
    endless_lines,
    free_port,
    imap_login_disabled,
    make_certs,
    smtp_starttls_injection,
    smtpd_log,
    start_dovecot,
    start_smtpd,
)
from referencing import Registry, Resource

from mailgitops.cli import main

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
WRONG = "wrong-password-must-not-leak"


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    certs = make_certs(tmp_path_factory.mktemp("certs"))
    servers = Servers(certs)
    try:
        start_dovecot(servers, "imap", tls=True)  # imap-tls, imap-starttls
        start_dovecot(servers, "imap", tls=False)  # imap-plain
        basic = ["PLAIN", "LOGIN"]
        start_smtpd(
            servers,
            {
                "smtp-tls": ("ssl_tls", certs.good, basic),
                "smtp-starttls": ("starttls", certs.good, basic),
                "smtp-plain": ("none", None, basic),
                "smtp-xoauth2": ("ssl_tls", certs.good, ["XOAUTH2"]),
                "smtp-wrong-host": ("ssl_tls", certs.wrong_host, basic),
                "smtp-expired": ("ssl_tls", certs.expired, basic),
                "smtp-expiring": ("ssl_tls", certs.expiring, basic),
                "smtp-self-signed": ("ssl_tls", certs.self_signed, basic),
            },
        )
        yield servers
    finally:
        servers.stop()
    # A check never sends a message: the SMTP server saw no DATA in the whole module.
    assert "DATA RECEIVED" not in smtpd_log(servers)


def provider(
    name: str,
    imap: tuple[int, str],
    smtp: tuple[int, str],
    auth: str = "basic",
    domain: str | None = None,
) -> str:
    text = f"name: {name}\ndomains: [{domain or name + '.example'}]\n"
    for key, server in (("imap", imap), ("smtp", smtp)):
        text += f"{key}:\n  host: 127.0.0.1\n  port: {server[0]}\n  security: {server[1]}\n"
    if auth == "oauth2":
        text += "auth:\n  method: oauth2\n  client_id: abc\n  client_secret: {env: OAUTH_SECRET}\n"
    return text


def config(root: Path, providers: dict[str, str], mailboxes: str = "mailboxes: []\n") -> Path:
    files = {f"providers.d/{name}.yaml": text for name, text in providers.items()}
    files["mailboxes.d/team.yaml"] = mailboxes
    return tree(root, files)


def check(
    capsys: pytest.CaptureFixture[str], servers: Servers, root: Path, *args: str
) -> tuple[int, str, str]:
    code = main(["check", "-C", str(root), "--ca-file", servers.certs.ca, *args])
    out, err = capsys.readouterr()
    return code, out, err


def check_json(
    capsys: pytest.CaptureFixture[str], servers: Servers, root: Path, *args: str
) -> tuple[int, dict[str, Any]]:
    code, out, _err = check(capsys, servers, root, "--format", "json", *args)
    data = json.loads(out)
    jsonschema.validate(data, json.loads((SCHEMAS / "check.schema.json").read_text()))
    return code, data


def steps(data: dict[str, Any], name: str) -> dict[tuple[str, str, str | None], dict[str, Any]]:
    """(server, step, mailbox) -> the check, for one provider (the last of a repeated step)."""
    (result,) = [p for p in data["providers"] if p["name"] == name]
    return {(c["server"], c["step"], c.get("mailbox")): c for c in result["checks"]}


def test_all_ok_implicit_tls_starttls_and_plain(
    tmp_path: Path, servers: Servers, capsys: pytest.CaptureFixture[str]
) -> None:
    p = servers.ports
    root = config(
        tmp_path,
        {
            "tls": provider("tls", (p["imap-tls"], "ssl_tls"), (p["smtp-tls"], "ssl_tls")),
            "starttls": provider(
                "starttls", (p["imap-starttls"], "starttls"), (p["smtp-starttls"], "starttls")
            ),
            "plain": provider("plain", (p["imap-plain"], "none"), (p["smtp-plain"], "none")),
        },
    )
    code, data = check_json(capsys, servers, root)
    assert code == 0, data
    assert data["ok"] is True and data["summary"]["fail"] == 0
    assert [r["name"] for r in data["providers"]] == ["plain", "starttls", "tls"]
    tls = steps(data, "tls")
    assert "verified" in tls[("imap", "certificate", None)]["message"]
    assert "mailgitops test CA" in tls[("smtp", "certificate", None)]["message"]
    assert "Dovecot" in tls[("imap", "greeting", None)]["message"]
    assert "PLAIN" in tls[("imap", "auth", None)]["message"]
    assert "SIZE limit" in tls[("smtp", "capabilities", None)]["message"]
    starttls = steps(data, "starttls")
    for server in ("imap", "smtp"):
        assert starttls[(server, "starttls", None)]["status"] == "ok"
        assert starttls[(server, "capabilities", None)]["message"].startswith("after STARTTLS")
    assert "AUTH LOGIN PLAIN" in starttls[("smtp", "capabilities", None)]["message"]
    plain = steps(data, "plain")
    assert all(c["status"] == "ok" for c in plain.values())
    assert ("imap", "certificate", None) not in plain

    code, out, err = check(capsys, servers, root, "tls")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == "tls (providers.d/tls.yaml:1)"
    assert f"  ok      imap 127.0.0.1:{p['imap-tls']} dns: resolved to 127.0.0.1" in lines
    assert lines[-1].startswith("OK: 1 provider(s) checked: ")


def test_trust_from_ssl_cert_file(
    tmp_path: Path,
    servers: Servers,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    p = servers.ports
    root = config(
        tmp_path, {"tls": provider("tls", (p["imap-tls"], "ssl_tls"), (p["smtp-tls"], "ssl_tls"))}
    )
    assert main(["check", "-C", str(root)]) == 1  # the test CA is not in the system store
    assert "not issued by a trusted authority" in capsys.readouterr().out
    monkeypatch.setenv("SSL_CERT_FILE", servers.certs.ca)
    assert main(["check", "-C", str(root)]) == 0, capsys.readouterr().out


def test_wrong_port_refused(
    tmp_path: Path, servers: Servers, capsys: pytest.CaptureFixture[str]
) -> None:
    closed = free_port()
    root = config(tmp_path, {"corp": provider("corp", (closed, "ssl_tls"), (closed, "ssl_tls"))})
    code, data = check_json(capsys, servers, root)
    assert code == 1 and data["ok"] is False
    tcp = steps(data, "corp")[("imap", "tcp", None)]
    assert tcp["status"] == "fail" and "connection refused" in tcp["message"]
    assert data["summary"]["failed_providers"] == 1


def test_tls_port_as_starttls_and_the_reverse(
    tmp_path: Path, servers: Servers, capsys: pytest.CaptureFixture[str]
) -> None:
    p = servers.ports
    root = config(
        tmp_path,
        {
            "a": provider("a", (p["imap-tls"], "starttls"), (p["smtp-tls"], "starttls")),
            "b": provider("b", (p["imap-starttls"], "ssl_tls"), (p["smtp-starttls"], "ssl_tls")),
        },
    )
    code, data = check_json(capsys, servers, root, "--timeout", "0.5")
    assert code == 1
    a, b = steps(data, "a"), steps(data, "b")
    for server in ("imap", "smtp"):
        # A TLS port waits for our handshake: the greeting never comes.
        greeting = a[(server, "greeting", None)]
        assert greeting["status"] == "fail"
        assert "no answer from the server within 0.5 s" in greeting["message"]
        assert "try security: ssl_tls" in greeting["message"]
        # A STARTTLS port greets in plain text: the handshake fails.
        tls = b[(server, "tls", None)]
        assert tls["status"] == "fail" and "try security: starttls or none" in tls["message"]


@pytest.mark.parametrize(
    ("listener", "status", "words"),
    [
        ("smtp-wrong-host", "fail", "not valid for the IP address 127.0.0.1"),
        ("smtp-expired", "fail", "the certificate has expired"),
        ("smtp-self-signed", "fail", "self-signed"),
        ("smtp-expiring", "warning", "expires in 1"),
    ],
)
def test_certificates(
    tmp_path: Path,
    servers: Servers,
    capsys: pytest.CaptureFixture[str],
    listener: str,
    status: str,
    words: str,
) -> None:
    root = config(
        tmp_path,
        {
            "corp": provider(
                "corp", (servers.ports["imap-tls"], "ssl_tls"), (servers.ports[listener], "ssl_tls")
            )
        },
    )
    code, data = check_json(capsys, servers, root)
    cert = steps(data, "corp")[("smtp", "certificate", None)]
    assert cert["status"] == status and words in cert["message"], cert
    assert code == (0 if status == "warning" else 1)


def test_host_name_mismatch_by_name(
    tmp_path: Path, servers: Servers, capsys: pytest.CaptureFixture[str]
) -> None:
    p = servers.ports
    text = provider("corp", (p["imap-tls"], "ssl_tls"), (p["smtp-wrong-host"], "ssl_tls"))
    root = config(tmp_path, {"corp": text.replace("127.0.0.1", "localhost")})
    code, data = check_json(capsys, servers, root)
    assert code == 1
    cert = steps(data, "corp")[("smtp", "certificate", None)]
    assert "not valid for localhost (host name mismatch)" in cert["message"]


def test_silent_and_endless_servers_are_bounded(
    tmp_path: Path, servers: Servers, capsys: pytest.CaptureFixture[str]
) -> None:
    silent, long_line, many_lines = Hostile(None), Hostile(endless_line), Hostile(endless_lines)
    try:
        root = config(
            tmp_path,
            {
                "silent": provider("silent", (silent.port, "none"), (silent.port, "starttls")),
                "long": provider(
                    "long", (long_line.port, "none"), (servers.ports["smtp-tls"], "ssl_tls")
                ),
                "many": provider(
                    "many", (servers.ports["imap-tls"], "ssl_tls"), (many_lines.port, "none")
                ),
            },
        )
        code, data = check_json(capsys, servers, root, "--timeout", "0.5", "--jobs", "3")
    finally:
        for server in (silent, long_line, many_lines):
            server.close()
    assert code == 1
    silent_checks = steps(data, "silent")
    for server in ("imap", "smtp"):
        greeting = silent_checks[(server, "greeting", None)]
        assert "no answer from the server within 0.5 s" in greeting["message"]
    long_greeting = steps(data, "long")[("imap", "greeting", None)]
    assert "a line longer than 8192 bytes" in long_greeting["message"]
    many_greeting = steps(data, "many")[("smtp", "greeting", None)]
    assert "more than 200 lines" in many_greeting["message"]


def test_mechanisms_that_do_not_fit(
    tmp_path: Path, servers: Servers, capsys: pytest.CaptureFixture[str]
) -> None:
    p = servers.ports
    disabled = Hostile(imap_login_disabled)
    root = config(
        tmp_path,
        {
            "oauth": provider(
                "oauth", (p["imap-tls"], "ssl_tls"), (p["smtp-tls"], "ssl_tls"), auth="oauth2"
            ),
            "xoauth": provider(
                "xoauth", (p["imap-tls"], "ssl_tls"), (p["smtp-xoauth2"], "ssl_tls")
            ),
            # A STARTTLS port used without TLS, on a server that refuses passwords there.
            "cleartext": provider("cleartext", (disabled.port, "none"), (p["smtp-tls"], "ssl_tls")),
        },
        "mailboxes:\n  - {address: dora@oauth.example, owner: dora}\n",
    )
    try:
        code, data = check_json(capsys, servers, root, "--login")
    finally:
        disabled.close()
    assert code == 1
    oauth = steps(data, "oauth")
    for server in ("imap", "smtp"):
        auth = oauth[(server, "auth", None)]
        assert auth["status"] == "fail"
        assert "none of which fits auth oauth2 (needs XOAUTH2 or OAUTHBEARER)" in auth["message"]
    # An oauth2 login needs the user's token: not attempted, and said so.
    skipped = oauth[("imap", "login", "dora@oauth.example")]
    assert skipped["status"] == "skipped" and "oauth2" in skipped["message"]
    assert data["summary"]["skipped"] == 1
    xoauth = steps(data, "xoauth")[("smtp", "auth", None)]
    assert xoauth["status"] == "fail" and "offers XOAUTH2" in xoauth["message"]
    assert "none of which fits auth basic (needs PLAIN or LOGIN)" in xoauth["message"]
    cleartext = steps(data, "cleartext")
    assert cleartext[("imap", "starttls", None)]["status"] == "warning"
    assert "LOGINDISABLED" in cleartext[("imap", "auth", None)]["message"]


def test_starttls_answer_with_injected_data_is_refused(
    tmp_path: Path, servers: Servers, capsys: pytest.CaptureFixture[str]
) -> None:
    injector = Hostile(smtp_starttls_injection)
    try:
        p = servers.ports
        root = config(
            tmp_path,
            {"corp": provider("corp", (p["imap-tls"], "ssl_tls"), (injector.port, "starttls"))},
        )
        code, data = check_json(capsys, servers, root)
    finally:
        injector.close()
    assert code == 1
    starttls = steps(data, "corp")[("smtp", "starttls", None)]
    assert starttls["status"] == "fail"
    assert "sent data after its STARTTLS answer, before TLS began" in starttls["message"]


MAILBOXES = """mailboxes:
  - address: alice@tls.example
    owner: alice
    provider: tls
    password: {env: GOOD_PW}
  - address: bob@tls.example
    owner: bob
    provider: tls
    password: {env: BAD_PW}
  - address: carol@tls.example
    owner: carol
    provider: tls
    password: {env: UNSET_PW}
"""


def login_config(root: Path, servers: Servers) -> Path:
    """Dovecot and aiosmtpd know one user, alice@example.com; the provider's manual logins
    let every mailbox name it."""
    p = servers.ports
    text = provider("tls", (p["imap-tls"], "ssl_tls"), (p["smtp-starttls"], "starttls"))
    text += "login_format: manual\n"
    mailboxes = MAILBOXES.replace("    password:", f"    login: {USER}\n    password:")
    return config(root, {"tls": text}, mailboxes)


def test_login_correct_and_wrong_password(
    tmp_path: Path,
    servers: Servers,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GOOD_PW", PASSWORD)
    monkeypatch.setenv("BAD_PW", WRONG)
    root = login_config(tmp_path, servers)
    code, data = check_json(capsys, servers, root, "--login", "--mailbox", "alice@tls.example")
    assert code == 0, data
    checks = steps(data, "tls")
    for server in ("imap", "smtp"):
        login = checks[(server, "login", "alice@tls.example")]
        assert login["status"] == "ok"
        assert login["message"] == f"logged in as {USER} and out"
    assert not any(c[2] == "bob@tls.example" for c in checks)

    code, data = check_json(capsys, servers, root, "--login")
    assert code == 1
    checks = steps(data, "tls")
    imap = checks[("imap", "login", "bob@tls.example")]
    assert imap["status"] == "fail"
    assert "refused; the server answered: NO [AUTHENTICATIONFAILED]" in imap["message"]
    smtp = checks[("smtp", "login", "bob@tls.example")]
    assert "the server answered: 535 5.7.8 Authentication credentials invalid" in smtp["message"]
    unset = checks[("imap", "login", "carol@tls.example")]
    assert (
        "cannot read the password: env:UNSET_PW: environment variable not set" in unset["message"]
    )

    code, out, _err = check(capsys, servers, root, "--login")
    assert code == 1
    assert (
        f"  FAIL    imap 127.0.0.1:{servers.ports['imap-tls']} login bob@tls.example: login as "
        f"{USER} refused; the server answered: NO [AUTHENTICATIONFAILED]"
    ) in out


def test_github_annotations_on_the_server_lines(
    tmp_path: Path, servers: Servers, capsys: pytest.CaptureFixture[str]
) -> None:
    p = servers.ports
    root = config(
        tmp_path,
        {"corp": provider("corp", (p["imap-tls"], "ssl_tls"), (p["smtp-expired"], "ssl_tls"))},
    )
    code, out, _err = check(capsys, servers, root, "--format", "github")
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith(
        f"::error file={os.path.relpath(tmp_path)}/providers.d/corp.yaml,"
        "line=7,title=check corp smtp certificate::"
    )
    assert "the certificate has expired" in lines[0]
    assert lines[-1].startswith("::notice title=mailgitops check::FAILED: 1 provider(s)")
    assert len(lines) == 2  # passing checks are not annotated


def test_untrusted_server_text_is_escaped_and_secrets_redacted(
    tmp_path: Path,
    servers: Servers,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    received: list[bytes] = []
    evil = Hostile(echoing_smtp(received))
    monkeypatch.setenv("GOOD_PW", PASSWORD)
    try:
        root = config(
            tmp_path,
            {"evil": provider("evil", (servers.ports["imap-tls"], "ssl_tls"), (evil.port, "none"))},
            f"mailboxes:\n  - address: {USER.replace('example.com', 'evil.example')}\n"
            "    owner: alice\n    password: {env: GOOD_PW}\n",
        )
        outputs = [check(capsys, servers, root, "--login", "--format", f) for f in FORMATS]
    finally:
        evil.close()
    assert any(b"AUTH PLAIN" in line for line in received)  # the password was sent ...
    for code, out, err in outputs:
        assert code == 1
        assert "\x1b" not in out + err and "\x07" not in out + err
        assert_no_secret(out + err, PASSWORD)
    text = outputs[0][1]
    assert "\\x1b[31mEVIL\\x1b]0;owned\\x07 ready" in text
    assert "535 you sent AUTH PLAIN (redacted)" in text  # ... and its echo is not shown


FORMATS = ("text", "json", "github")


def assert_no_secret(text: str, secret: str) -> None:
    forms = [secret, base64.b64encode(secret.encode()).decode()]
    forms += [base64.b64encode(f"\0{USER}\0{secret}".encode()).decode()]
    for form in forms:
        assert form not in text


def test_no_secret_in_any_output(
    tmp_path: Path,
    servers: Servers,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GOOD_PW", PASSWORD)
    monkeypatch.setenv("BAD_PW", WRONG)
    root = login_config(tmp_path, servers)
    runs = 0
    for fmt in FORMATS:
        for selection in (["--mailbox", "alice@tls.example"], []):  # success; with failures
            code, out, err = check(capsys, servers, root, "--login", "--format", fmt, *selection)
            assert code == (0 if selection else 1)
            for secret in (PASSWORD, WRONG):
                assert_no_secret(out + err, secret)
            runs += 1
    assert runs == 6


def test_exchange_autodiscover_that_does_not_resolve(
    tmp_path: Path, servers: Servers, capsys: pytest.CaptureFixture[str]
) -> None:
    root = config(
        tmp_path,
        {
            "ex": "name: ex\nservice_type: exchange\ndomains: [corp.invalid]\nexchange:\n"
            "  autodiscover: true\n"
        },
    )
    code, data = check_json(capsys, servers, root, "--timeout", "2")
    assert code == 1
    dns = steps(data, "ex")[("autodiscover", "dns", None)]
    assert dns["status"] == "fail" and "autodiscover.corp.invalid" in dns["message"]


def test_usage_errors(tmp_path: Path, servers: Servers, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    root = config(tmp_path, {"corp": provider("corp", (port, "ssl_tls"), (port, "ssl_tls"))})
    code, _out, err = check(capsys, servers, root, "crop")
    assert code == 1 and "unknown provider `crop`; did you mean `corp`?" in err
    code, _out, err = check(capsys, servers, root, "--mailbox", "a@corp.example")
    assert code == 1 and "add --login" in err
    code, _out, err = check(capsys, servers, root, "--timeout", "0")
    assert code == 1 and "--timeout" in err
    code, _out, err = (
        main(["check", "-C", str(root), "--ca-file", str(tmp_path / "nope")]),
        *capsys.readouterr(),
    )
    assert code == 1 and "cannot load --ca-file" in err


# --- plan --check and apply ----------------------------------------------------------------


def plan_schema_validator() -> jsonschema.protocols.Validator:
    registry: Registry[Any] = Registry()
    for name in ("plan", "check"):
        schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
        registry = registry.with_resource(schema["$id"], Resource.from_contents(schema))
    plan = json.loads((SCHEMAS / "plan.schema.json").read_text())
    return jsonschema.Draft202012Validator(plan, registry=registry)


def test_plan_check_and_apply(
    tmp_path: Path, servers: Servers, capsys: pytest.CaptureFixture[str]
) -> None:
    p = servers.ports
    root = config(
        tmp_path / "cfg",
        {
            "good": provider("good", (p["imap-tls"], "ssl_tls"), (p["smtp-tls"], "ssl_tls")),
            "bad": provider("bad", (p["imap-tls"], "ssl_tls"), (p["smtp-expired"], "ssl_tls")),
        },
    )
    state, planfile = tmp_path / "live.json", tmp_path / "plan.json"
    base = ["-C", str(root), "--state", str(state)]
    trust = ["--check", "--ca-file", servers.certs.ca]

    assert main(["plan", *base, *trust, "--out", str(planfile), "--format", "json"]) == 0
    out, _err = capsys.readouterr()
    data = json.loads(out)
    plan_schema_validator().validate(data)
    assert data["checks"]["failed"] == 1
    assert [r["name"] for r in data["checks"]["providers"]] == ["bad", "good"]
    assert json.loads(planfile.read_text())["checks"] == data["checks"]

    assert main(["plan", *base, *trust]) == 0
    text, _err = capsys.readouterr()
    assert "Connection checks of the providers this plan creates or changes:" in text
    assert "the certificate has expired" in text
    assert "CHECK FAILED: 1 connection check(s) failed" in text

    assert main(["plan", *base, *trust, "--format", "markdown"]) == 0
    markdown, _err = capsys.readouterr()
    assert "> [!CAUTION]\n> **CHECK FAILED: 1 connection check(s) failed" in markdown
    assert "Connection checks: FAILED: 1 provider(s) failed a check" in markdown

    assert main(["apply", *base, str(planfile)]) == 1
    _out, err = capsys.readouterr()
    assert "records 1 failed connection check(s)" in err and "--allow-failed-check" in err
    assert not state.exists()
    assert main(["apply", *base, str(planfile), "--allow-failed-check"]) == 0
    capsys.readouterr()

    # Only providers the plan creates or changes are checked: now none.
    assert main(["plan", *base, *trust, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr()[0])
    assert data["checks"] == {"failed": 0, "providers": []}
    # Without --check a plan has no checks and apply has nothing to refuse.
    assert main(["plan", *base, "--format", "json"]) == 0
    assert "checks" not in json.loads(capsys.readouterr()[0])


def test_progress_bar_on_a_terminal_only(tmp_path: Path) -> None:
    """stderr a pty: the bar is drawn (and wiped); stderr a pipe: nothing but the result."""
    closed = free_port()
    root = config(tmp_path, {"corp": provider("corp", (closed, "ssl_tls"), (closed, "ssl_tls"))})
    argv = [sys.executable, "-m", "mailgitops", "check", "-C", str(root)]
    env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(SCHEMAS.parent)}
    master, slave = os.openpty()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    out, _ = proc.communicate(timeout=60)
    drawn = b""
    with contextlib.suppress(OSError):  # EIO once the child has closed its end
        while chunk := os.read(master, 4096):
            drawn += chunk
    os.close(master)
    assert proc.returncode == 1
    assert b"[##############################] 1/1 providers" in drawn
    assert b"[#" not in out and b"FAILED: 1 provider(s)" in out
    piped = subprocess.run(argv, capture_output=True, env=env, timeout=60, check=False)
    assert piped.returncode == 1 and piped.stderr == b""


def test_invalid_config_is_refused_with_one_json_document(
    tmp_path: Path, servers: Servers, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    text = provider("corp", (port, "ssl_tls"), (port, "ssl_tls")).replace("ssl_tls", "tls", 1)
    root = config(tmp_path, {"corp": text})
    code, data = check_json(capsys, servers, root)
    assert code == 1 and data["ok"] is False and data["providers"] == []
    assert "nothing was checked" in data["error"]
    assert [d["rule"] for d in data["diagnostics"] if d["severity"] == "error"] == ["enum"]


def test_malformed_checks_in_a_plan_file_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A plan file whose `checks` was rewritten (checksum recomputed: it is not keyed) is
    refused as not a plan file, never a crash."""
    port = free_port()
    root = config(
        tmp_path / "cfg", {"corp": provider("corp", (port, "ssl_tls"), (port, "ssl_tls"))}
    )
    state, planfile = tmp_path / "live.json", tmp_path / "plan.json"
    base = ["-C", str(root), "--state", str(state)]
    assert main(["plan", *base, "--check", "--timeout", "0.5", "--out", str(planfile)]) == 0
    data = json.loads(planfile.read_text())
    data["checks"]["providers"] = ["not a provider"]
    body = {k: v for k, v in data.items() if k != "checksum"}  # as plan.schema.json says
    blob = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    data["checksum"] = hashlib.sha256(blob).hexdigest()
    planfile.write_text(json.dumps(data))
    capsys.readouterr()
    assert main(["apply", *base, str(planfile), "--allow-failed-check"]) == 1
    err = capsys.readouterr().err
    assert "not a mailgitops plan file (malformed `checks`)" in err and "bug" not in err
