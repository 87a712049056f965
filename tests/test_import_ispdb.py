"""`mailgitops import-ispdb` end to end through the CLI, on the real ISPDB corpus
(copied into tests/data/ispdb with its MPL-2.0 licence) and on hostile copies of it."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from mailgitops.cli import main

CORPUS = Path(__file__).resolve().parent / "data" / "ispdb"

SECURITY = {"SSL": "ssl_tls", "STARTTLS": "starttls", "plain": "none"}
PREFERENCE = ["ssl_tls", "starttls", "none"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    # import-ispdb writes into a config root (SPEC §8): make one, as `init` would.
    (Path(argv[argv.index("-C") + 1]) / "providers.d").mkdir(parents=True, exist_ok=True)
    code = main(["import-ispdb", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def report_lines(out: str) -> dict[str, str]:
    """{source or written path: line} for the per-file lines of a report."""
    lines: dict[str, str] = {}
    for line in out.splitlines()[:-1]:
        if line.startswith("wrote schemas/"):  # so that the files' $schema header resolves
            continue
        match = re.fullmatch(r"wrote providers\.d/(\S+)\.yaml|skipped (.+?): (.+)", line)
        assert match, f"unexpected report line: {line!r}"
        key = f"{match.group(1)}.xml" if match.group(1) else match.group(2)
        lines[key] = line
    return lines


def load(root: Path, name: str) -> dict[str, Any]:
    data = yaml.safe_load((root / "providers.d" / f"{name}.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def text_of(root: Path, name: str) -> str:
    return (root / "providers.d" / f"{name}.yaml").read_text(encoding="utf-8")


def copy_corpus_file(name: str, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(CORPUS / name, into / name))


@pytest.fixture(scope="module")
def corpus_import(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, str]:
    """The whole corpus imported once; the tests below read the result."""
    root = tmp_path_factory.mktemp("corpus")
    (root / "providers.d").mkdir()
    # capsys is function-scoped; capture the module-wide run by hand.
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(["import-ispdb", str(CORPUS), "-C", str(root)])
    return root, code, buffer.getvalue()


# --- the whole corpus ---------------------------------------------------------------------


def test_whole_corpus_imports_most_providers(corpus_import: tuple[Path, int, str]) -> None:
    root, code, out = corpus_import
    xml_files = sorted(p.name for p in CORPUS.glob("*.xml"))
    written = sorted((root / "providers.d").glob("*.yaml"))
    lines = report_lines(out)

    assert code == 1  # some providers (POP3-only ones, at least) cannot be imported
    assert sorted(lines) == xml_files  # every file is reported, exactly once
    assert 110 <= len(written) <= 120
    skipped = {k: v for k, v in lines.items() if v.startswith("skipped")}
    assert len(written) + len(skipped) == len(xml_files)
    for line in skipped.values():
        assert re.fullmatch(r"skipped \S+\.xml: \S.{5,}", line), line
    assert out.splitlines()[-1] == (f"Imported {len(written)} providers, skipped {len(skipped)}.")
    # Nothing half-written is left behind.
    assert not [p for p in (root / "providers.d").iterdir() if p.suffix != ".yaml"]


def test_every_written_file_matches_its_source(corpus_import: tuple[Path, int, str]) -> None:
    root, _, _ = corpus_import
    written = sorted((root / "providers.d").glob("*.yaml"))
    assert written
    for path in written:
        text = path.read_text(encoding="utf-8")
        doc = yaml.safe_load(text)
        source = CORPUS / f"{path.stem}.xml"
        ep = ET.parse(source).getroot().find("emailProvider")
        assert ep is not None

        assert text.startswith(
            f"# Imported from Thunderbird ISPDB: {source.name} (MPL-2.0). "
            "Review before committing.\n"
            "# yaml-language-server: $schema=../schemas/provider.schema.json\n"
        )
        assert "!!" not in text
        assert doc["name"] == path.stem
        assert list(doc)[:2] == ["name", "display_name"] or "display_name" not in doc
        expected_domains = list(
            dict.fromkeys((d.text or "").strip().lower() for d in ep.findall("domain"))
        )
        assert doc.get("domains", []) == expected_domains

        for kind, tag in (("imap", "incomingServer"), ("smtp", "outgoingServer")):
            servers = [
                (
                    (s.findtext("hostname") or "").strip(),
                    int((s.findtext("port") or "0").strip()),
                    SECURITY[(s.findtext("socketType") or "").strip()],
                )
                for s in ep.findall(tag)
                if s.get("type") == kind
            ]
            got = doc[kind]
            assert set(got) == {"host", "security", "port"}, (path.name, kind)
            assert (got["host"], got["port"], got["security"]) in servers, (path.name, kind)
            # The most secure socket type the file offers is the one chosen.
            best = min(PREFERENCE.index(sec) for _, _, sec in servers)
            assert PREFERENCE.index(got["security"]) == best, (path.name, kind)
            assert isinstance(got["port"], int)


def test_gmail_prefers_basic_when_oauth2_is_also_offered(
    corpus_import: tuple[Path, int, str],
) -> None:
    root, _, out = corpus_import
    assert "wrote providers.d/googlemail.com.yaml" in out.splitlines()
    doc = load(root, "googlemail.com")
    assert doc["imap"] == {"host": "imap.gmail.com", "security": "ssl_tls", "port": 993}
    assert doc["smtp"] == {"host": "smtp.gmail.com", "security": "ssl_tls", "port": 465}
    assert doc["auth"] == {"method": "basic"}
    assert "gmail.com" in doc["domains"]
    text = text_of(root, "googlemail.com")
    # The choice is explained in the file, with the OAuth2 alternative ready to use.
    assert "also offer OAuth2" in text
    assert "GOOGLEMAIL_COM_OAUTH_CLIENT_ID" in text
    assert "login_format" not in doc  # email_address, the default


def test_icloud_logs_in_with_the_local_part(corpus_import: tuple[Path, int, str]) -> None:
    root, _, out = corpus_import
    assert "wrote providers.d/me.com.yaml" in out.splitlines()
    doc = load(root, "me.com")
    assert doc["login_format"] == "mailbox_name"
    assert doc["smtp"] == {"host": "smtp.mail.me.com", "security": "starttls", "port": 587}
    assert doc["imap"] == {"host": "imap.mail.me.com", "security": "ssl_tls", "port": 993}
    assert doc["domains"] == ["mac.com", "me.com", "icloud.com"]
    assert doc["display_name"] == "Apple iCloud"
    # The SMTP server's own login format is named for the reviewer.
    text = text_of(root, "me.com")
    comment = text.split("login_format:")[0]
    assert "%EMAILADDRESS%" in comment and "SMTP" in comment


def test_oauth2_only_provider_gets_env_references(corpus_import: tuple[Path, int, str]) -> None:
    root, _, _ = corpus_import
    auth = load(root, "office365.com")["auth"]
    assert auth["method"] == "oauth2"
    assert auth["client_id"] == {"env": "OFFICE365_COM_OAUTH_CLIENT_ID"}
    assert auth["client_secret"] == {"env": "OFFICE365_COM_OAUTH_CLIENT_SECRET"}
    assert auth["token_url"].startswith("https://login.microsoftonline.com/")


def test_pop3_only_provider_is_skipped(corpus_import: tuple[Path, int, str]) -> None:
    root, _, out = corpus_import
    pop3_only = [
        p
        for p in sorted(CORPUS.glob("*.xml"))
        if not ET.parse(p).getroot().findall(".//incomingServer[@type='imap']")
    ]
    assert pop3_only
    lines = report_lines(out)
    for path in pop3_only:
        assert re.match(rf"skipped {re.escape(path.name)}: no IMAP server", lines[path.name])
        assert not (root / "providers.d" / f"{path.stem}.yaml").exists()


def test_templated_host_is_never_imported_wrong(corpus_import: tuple[Path, int, str]) -> None:
    root, _, out = corpus_import
    templated = [
        p
        for p in sorted(CORPUS.glob("*.xml"))
        if "%EMAILDOMAIN%" in "".join(h.text or "" for h in ET.parse(p).getroot().iter("hostname"))
        and ET.parse(p).getroot().findall(".//incomingServer[@type='imap']")
    ]
    assert templated  # inbox.lv.xml, mail.ee.xml
    lines = report_lines(out)
    for path in templated:
        assert "%EMAILDOMAIN%" in lines[path.name]
        assert "depends on the user's address" in lines[path.name]
        assert not (root / "providers.d" / f"{path.stem}.yaml").exists()
    # And no written file anywhere carries a placeholder.
    for written in (root / "providers.d").glob("*.yaml"):
        body = "".join(
            line
            for line in written.read_text(encoding="utf-8").splitlines(keepends=True)
            if not line.lstrip().startswith("#")
        )
        assert "%" not in body, written.name


def test_unrepresentable_corpus_files_say_why(corpus_import: tuple[Path, int, str]) -> None:
    _, _, out = corpus_import
    lines = report_lines(out)
    # MIT: IMAP is OAuth2-only (Microsoft 365), SMTP password-only: one auth method can't say it.
    assert "one auth method" in lines["mit.edu.xml"]
    # TEOL: the SMTP server names no username although it needs a password.
    assert "no <username>" in lines["teol.net.xml"]


def test_imported_corpus_validates(
    corpus_import: tuple[Path, int, str], capsys: pytest.CaptureFixture[str]
) -> None:
    root, _, _ = corpus_import
    code = main(["validate", "-C", str(root)])
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err


# --- hostile and broken input -------------------------------------------------------------


def test_broken_copy_is_reported_and_the_rest_imported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in"
    copy_corpus_file("googlemail.com.xml", src)
    copy_corpus_file("me.com.xml", src)
    whole = (CORPUS / "aol.com.xml").read_bytes()
    (src / "aol.com.xml").write_bytes(whole[: len(whole) // 2])
    root = tmp_path / "repo"
    root.mkdir()

    code, out, err = run(capsys, str(src), "-C", str(root))

    assert code == 1
    assert err == ""
    lines = report_lines(out)
    assert lines["aol.com.xml"].startswith("skipped aol.com.xml: broken XML:")
    assert "line" in lines["aol.com.xml"]
    assert lines["googlemail.com.xml"] == "wrote providers.d/googlemail.com.yaml"
    assert lines["me.com.xml"] == "wrote providers.d/me.com.yaml"
    assert out.splitlines()[-1] == "Imported 2 providers, skipped 1."
    assert sorted(p.name for p in (root / "providers.d").iterdir()) == [
        "googlemail.com.yaml",
        "me.com.yaml",
    ]


def test_existing_file_needs_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = copy_corpus_file("googlemail.com.xml", tmp_path / "in")
    target = tmp_path / "providers.d" / "googlemail.com.yaml"
    target.parent.mkdir()
    target.write_text("# my hand-tuned gmail\nname: googlemail.com\n", encoding="utf-8")

    code, out, _ = run(capsys, str(source), "-C", str(tmp_path))
    assert code == 1
    assert out.splitlines() == [
        "skipped googlemail.com.xml: providers.d/googlemail.com.yaml exists, use --force",
        "Imported 0 providers, skipped 1.",
    ]
    assert target.read_text(encoding="utf-8").startswith("# my hand-tuned gmail")

    code, out, _ = run(capsys, str(source), "-C", str(tmp_path), "--force")
    assert code == 0
    assert [line for line in out.splitlines() if "schemas/" not in line] == [
        "wrote providers.d/googlemail.com.yaml",
        "Imported 1 providers, skipped 0.",
    ]
    assert load(tmp_path, "googlemail.com")["imap"]["host"] == "imap.gmail.com"
    assert [p.name for p in target.parent.iterdir()] == ["googlemail.com.yaml"]


def test_doctype_and_entities_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in"
    src.mkdir()
    levels = "".join(f'<!ENTITY e{i} "{f"&e{i - 1};" * 10}">' for i in range(1, 10))
    (src / "laughs.xml").write_text(
        f'<?xml version="1.0"?>\n<!DOCTYPE clientConfig [<!ENTITY e0 "lol">{levels}]>\n'
        "<clientConfig><emailProvider><displayName>&e9;</displayName></emailProvider>"
        "</clientConfig>\n",
        encoding="utf-8",
    )
    secret = tmp_path / "secret.txt"
    secret.write_text("do-not-read", encoding="utf-8")
    (src / "external.xml").write_text(
        f'<?xml version="1.0"?>\n<!DOCTYPE clientConfig [<!ENTITY x SYSTEM "file://{secret}">]>'
        "\n<clientConfig>&x;</clientConfig>\n",
        encoding="utf-8",
    )
    (src / "plain-doctype.xml").write_text(
        '<!DOCTYPE clientConfig SYSTEM "http://example.invalid/x.dtd">\n<clientConfig/>\n',
        encoding="utf-8",
    )

    started = time.monotonic()
    code, out, _ = run(capsys, str(src), "-C", str(tmp_path))
    assert time.monotonic() - started < 10  # refused, not expanded

    assert code == 1
    for name in ("laughs.xml", "external.xml", "plain-doctype.xml"):
        assert f"skipped {name}: not a clientConfig document (DOCTYPE/ENTITY" in out
    assert "do-not-read" not in out
    assert list((tmp_path / "providers.d").iterdir()) == []


def test_files_that_cannot_be_read_are_skipped_with_reasons(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in"
    src.mkdir()
    me = (CORPUS / "me.com.xml").read_text(encoding="utf-8")
    (src / "latin.xml").write_bytes(me.replace("Apple iCloud", "Apple \xe9").encode("latin-1"))
    (src / "huge.xml").write_bytes(b"<clientConfig>" + b" " * (1024 * 1024) + b"</clientConfig>")
    (src / "html.xml").write_text("<html><body/></html>", encoding="utf-8")
    (src / "badport.xml").write_text(
        me.replace("<port>993</port>", "<port>99x3</port>"), encoding="utf-8"
    )
    (src / "bigport.xml").write_text(
        me.replace("<port>993</port>", "<port>70000</port>"), encoding="utf-8"
    )
    (src / "pop3.xml").write_text(
        me.replace('incomingServer type="imap"', 'incomingServer type="pop3"'), encoding="utf-8"
    )
    (src / "nosmtp.xml").write_text(
        re.sub(r"<outgoingServer.*</outgoingServer>", "", me, flags=re.S), encoding="utf-8"
    )
    (src / "manual-vs-placeholder.xml").write_text(
        me.replace("<username>%EMAILADDRESS%", "<username>%EMAILLOCALPART%.%EMAILDOMAIN%"),
        encoding="utf-8",
    )
    (src / "Bad Name.xml").write_text(me, encoding="utf-8")

    code, out, err = run(capsys, str(src), "-C", str(tmp_path))

    assert code == 1
    assert err == ""
    lines = report_lines(out)
    assert "not UTF-8" in lines["latin.xml"]
    assert "larger than 1 MiB" in lines["huge.xml"]
    assert "not a clientConfig document" in lines["html.xml"]
    assert "'99x3' is not an integer 1-65535" in lines["badport.xml"]
    assert "'70000' is not an integer 1-65535" in lines["bigport.xml"]
    assert "no IMAP server" in lines["pop3.xml"]
    assert "no SMTP server" in lines["nosmtp.xml"]
    assert "one login per mailbox" in lines["manual-vs-placeholder.xml"]
    assert "does not match" in lines["Bad Name.xml"]
    assert out.splitlines()[-1] == "Imported 0 providers, skipped 9."
    assert list((tmp_path / "providers.d").iterdir()) == []


def test_names_are_lower_cased_and_odd_text_round_trips(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    me = (CORPUS / "me.com.xml").read_text(encoding="utf-8")
    odd = 'yes: "quoted" # not a comment \\ back'
    source = tmp_path / "Example.COM.xml"
    source.write_text(
        me.replace("Apple iCloud", odd.replace("&", "&amp;")).replace(
            "<domain>me.com</domain>", "<domain>ME.com</domain><domain>Mac.COM</domain>"
        ),
        encoding="utf-8",
    )
    code, out, _ = run(capsys, str(source), "-C", str(tmp_path))
    assert code == 0, out
    doc = load(tmp_path, "example.com")
    assert doc["name"] == "example.com"
    assert doc["display_name"] == odd
    assert doc["domains"] == ["mac.com", "me.com", "icloud.com"]


def test_login_format_manual_when_both_servers_agree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    me = (CORPUS / "me.com.xml").read_text(encoding="utf-8")
    manual = "%EMAILLOCALPART%.%EMAILDOMAIN%"
    source = tmp_path / "manual.example.xml"
    source.write_text(
        me.replace("%EMAILLOCALPART%", manual).replace("%EMAILADDRESS%", manual),
        encoding="utf-8",
    )
    code, _, _ = run(capsys, str(source), "-C", str(tmp_path))
    assert code == 0
    assert load(tmp_path, "manual.example")["login_format"] == "manual"
    assert manual in text_of(tmp_path, "manual.example")


def test_missing_path_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = copy_corpus_file("me.com.xml", tmp_path / "in")
    code, out, err = run(capsys, str(good), str(tmp_path / "nope.xml"), "-C", str(tmp_path))
    assert code == 1
    assert out == ""
    assert "nope.xml" in err
    assert list((tmp_path / "providers.d").iterdir()) == []  # nothing imported before the check


# --- issue 16: old authentication names, names without .xml, domain collisions -------------


def test_old_authentication_names_read_as_thunderbird_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Older ISPDB files say `plain` and `secure`; Thunderbird reads them as
    password-cleartext and password-encrypted."""
    text = (CORPUS / "126.com.xml").read_text(encoding="utf-8")
    first, second = text.split("<authentication>password-cleartext</authentication>", 2)[:2]
    rest = text.split("<authentication>password-cleartext</authentication>", 2)[2]
    old = (
        first
        + "<authentication>plain</authentication>"
        + second
        + "<authentication>secure</authentication>"
        + rest
    )
    assert "password-cleartext" not in old
    source = tmp_path / "in" / "126.com.xml"
    source.parent.mkdir()
    source.write_text(old, encoding="utf-8")
    code, out, _ = run(capsys, str(source), "-C", str(tmp_path))
    assert code == 0, out
    doc = load(tmp_path, "126.com")
    assert doc.get("auth", {"method": "basic"})["method"] == "basic"


def test_a_file_named_without_xml_keeps_its_whole_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in" / "126.com"  # as served by the autoconfig URL
    source.parent.mkdir()
    shutil.copy(CORPUS / "126.com.xml", source)
    code, out, _ = run(capsys, str(source), "-C", str(tmp_path))
    assert code == 0, out
    assert "wrote providers.d/126.com.yaml" in out.splitlines()
    assert load(tmp_path, "126.com")["name"] == "126.com"


def test_domain_collisions_are_checked_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in"
    copy_corpus_file("googlemail.com.xml", src)
    copy_corpus_file("me.com.xml", src)
    # A second file that claims gmail.com too: which one is right is the user's call.
    (src / "gmail-clone.xml").write_text(
        (CORPUS / "126.com.xml")
        .read_text(encoding="utf-8")
        .replace("<domain>126.com</domain>", "<domain>GMAIL.com</domain>"),
        encoding="utf-8",
    )
    root = tmp_path / "repo"
    code, out, _ = run(capsys, str(src), "-C", str(root))
    assert code == 1
    lines = report_lines(out)
    assert lines["googlemail.com.xml"] == (
        "skipped googlemail.com.xml: domain gmail.com is also claimed by gmail-clone.xml"
    )
    assert lines["gmail-clone.xml"] == (
        "skipped gmail-clone.xml: domain gmail.com is also claimed by googlemail.com.xml"
    )
    assert lines["me.com.xml"] == "wrote providers.d/me.com.yaml"
    assert sorted(p.name for p in (root / "providers.d").iterdir()) == ["me.com.yaml"]
    assert main(["validate", "-C", str(root)]) == 0
    capsys.readouterr()


def test_a_domain_an_existing_provider_serves_is_not_imported_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = "name: mine\ndomains: [Gmail.com]\nimap: {host: imap.x.org}\nsmtp: {host: smtp.x.org}\n"
    (tmp_path / "providers.d").mkdir()
    (tmp_path / "providers.d" / "mine.yaml").write_text(mine, encoding="utf-8")
    source = copy_corpus_file("googlemail.com.xml", tmp_path / "in")
    for extra in ((), ("--force",)):
        code, out, _ = run(capsys, str(source), "-C", str(tmp_path), *extra)
        assert code == 1
        assert out.splitlines()[0] == (
            "skipped googlemail.com.xml: domain gmail.com is already served by "
            "providers.d/mine.yaml"
        )
    assert sorted(p.name for p in (tmp_path / "providers.d").iterdir()) == ["mine.yaml"]
    # --force replaces a provider's own file, whose domains then count no more.
    (tmp_path / "providers.d" / "mine.yaml").rename(
        tmp_path / "providers.d" / "googlemail.com.yaml"
    )
    code, out, _ = run(capsys, str(source), "-C", str(tmp_path), "--force")
    assert code == 0, out
    assert main(["validate", "-C", str(tmp_path)]) == 0
    capsys.readouterr()
