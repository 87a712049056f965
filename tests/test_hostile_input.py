"""Hostile input for the loader and the validator (issue 8): whatever the bytes of a config
file, `mailgitops validate` exits 0 or 1 with a message, never with a traceback, never with
"unexpected ...: this is a bug", and never by a signal (real subprocesses for the inputs that
could crash the C parser).

Named cases: deep nesting of every kind (libyaml's C composer recurses, so the loader measures
the depth on the event stream first), nesting built from aliases, huge scalars, lists and
mappings, alias bombs (sequences, mappings, merge keys, quadratic, recursive), odd encodings,
NUL and control characters, YAML directives and tags, non-string keys, odd numbers, and 2,000
files. Generated cases (hypothesis, derandomized): raw bytes, YAML-like token soup, random
typed data dumped as YAML (with anchors where objects repeat), and byte-level mutations of a
valid config, which also go through `plan` when they still validate.

Time is measured per case and never asserted: with MAILGITOPS_FUZZ_REPORT=FILE (read at
import) the count of cases and the slowest ones are written to FILE as JSON."""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import python_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailgitops.cli import main
from mailgitops.config.budget import MAX_FILE_BYTES
from mailgitops.config.parse import parse

REPORT = os.environ.get("MAILGITOPS_FUZZ_REPORT")
TIMINGS: list[tuple[float, str]] = []  # (seconds, case) for every validate run
CHILD_RSS: list[int] = []  # peak resident set of the subprocess runs, in KiB


def fuzz(examples: int) -> settings:
    """A fixed, derandomized set of examples: the same inputs on every run."""
    return settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


PROVIDER = b"""name: corp
domains: [example.com]
imap:
  host: imap.example.com
  port: 993
smtp:
  host: smtp.example.com
  security: starttls
auth:
  method: basic
"""
MAILBOXES = b"""defaults:
  provider: corp
mailboxes:
  - address: alice@example.com
    owner: alice
    password: {env: ALICE_PW}
    sync: {enabled: true, period: week, folders: [INBOX, Sent]}
    shared_with:
      - user: bob
        rights: [send, read]
  - address: bob@example.com
    owner: bob
    password: {file: secrets/bob.pw, version: 2}
"""


@pytest.fixture(autouse=True, scope="module")
def _report() -> Iterator[None]:
    yield
    if REPORT and TIMINGS:
        slowest = sorted(TIMINGS, reverse=True)[:10]
        Path(REPORT).write_text(
            json.dumps(
                {
                    "cases": len(TIMINGS),
                    "slowest": [{"seconds": round(s, 4), "case": c} for s, c in slowest],
                    "child_max_rss_kib": max(CHILD_RSS, default=0),
                },
                indent=2,
            )
        )


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


def validate(root: Path, case: str, *extra: str) -> tuple[int, str, str]:
    """`mailgitops validate` in-process: exit 0 or 1, a message, no traceback."""
    out, err = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["validate", "-C", str(root), *extra])
    TIMINGS.append((time.perf_counter() - started, case))
    _assert_handled(code, out.getvalue(), err.getvalue())
    if "--format" in extra and "json" in extra:
        json.loads(out.getvalue())  # exactly one JSON document
    return code, out.getvalue(), err.getvalue()


def _assert_handled(code: int, out: str, err: str) -> None:
    assert code in (0, 1), (code, out[-2000:], err[-2000:])
    assert "Traceback" not in out + err, err[-4000:]
    assert "this is a bug" not in err, err[-2000:]
    assert out.strip() or err.strip(), "no message"


def validate_everywhere(tmp: Path, content: bytes, case: str, *extra: str) -> list[str]:
    """The same bytes as a provider file, a mailboxes file and mailgitops.yaml (three schemas),
    each in its own tree; returns the outputs."""
    outputs = []
    for rel in ("providers.d/hostile.yaml", "mailboxes.d/hostile.yaml", "mailgitops.yaml"):
        root = tmp / rel.replace("/", "_")
        root.mkdir()
        _tree(root, {rel: content})
        outputs.append(validate(root, f"{case} as {rel}", *extra)[1])
    return outputs


# --- named cases ---------------------------------------------------------------------------------


def _nested_block_map(depth: int) -> bytes:
    return b"".join(b"  " * i + b"k:\n" for i in range(depth)) + b"  " * depth + b"x\n"


def _deep_aliases(depth: int, wrapper: str) -> bytes:
    """Nesting built from aliases, one top-level key per level: each anchor holds the previous
    one, so the event stream is flat while the data is `depth` levels deep."""
    lines = [f"l0: &l0 {wrapper.format('x')}"]
    lines += [f"l{i}: &l{i} {wrapper.format(f'*l{i - 1}')}" for i in range(1, depth)]
    return ("\n".join(lines) + "\n").encode()


def _alias_chain(depth: int, tail: str) -> bytes:
    """The same inside one list, so that the expanded size stays under the alias-bomb limit
    (about depth**2 / 2 nodes); `LAST` in `tail` is replaced by the deepest alias."""
    items = ["&l0 [x]"] + [f"&l{i} [*l{i - 1}]" for i in range(1, depth)]
    return (f"chain: [{', '.join(items)}]\n" + tail.replace("LAST", f"*l{depth - 1}")).encode()


ALIAS_CHAIN_TAILS = {
    "domains": "name: corp\ndomains: [LAST, LAST]\nimap: {host: h}\nsmtp: {host: h}\n",
    "folders": "mailboxes:\n  - address: a@b.c\n    owner: o\n    sync: {folders: [LAST, LAST]}\n",
    "rights": "mailboxes:\n  - {address: a@b.c, owner: o, shared_with: [{user: u, rights: [LAST]}]}"
    "\n",
    "enum": "imap: {host: h, security: LAST}\n"
    "mailboxes: [{address: a@b.c, sync: {period: LAST}}]\n",
}


def _alias_bomb(kind: str) -> bytes:
    if kind == "sequences":
        lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
        lines += [
            f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]"
            for p, c in zip("abcdefgh", "bcdefghi", strict=True)
        ]
        lines.append("mailboxes: *i")
    elif kind == "mappings":
        lines = ["a: &a {k0: x, k1: x, k2: x, k3: x, k4: x, k5: x, k6: x, k7: x, k8: x, k9: x}"]
        lines += [
            f"{c}: &{c} {{{', '.join(f'k{i}: *{p}' for i in range(10))}}}"
            for p, c in zip("abcdefgh", "bcdefghi", strict=True)
        ]
        lines.append("defaults: *i")
    elif kind == "merge-keys":
        lines = ["a: &a {k0: x, k1: x, k2: x, k3: x, k4: x, k5: x, k6: x, k7: x, k8: x, k9: x}"]
        lines += [
            f"{c}: &{c} {{<<: [{', '.join([f'*{p}'] * 10)}], own{c}: 1}}"
            for p, c in zip("abcdefgh", "bcdefghi", strict=True)
        ]
        lines.append("defaults: {<<: *i}")
    elif kind == "quadratic":
        items = ", ".join(f"v{i}" for i in range(5_000))
        lines = [f"a: &a [{items}]", f"mailboxes: [{', '.join(['*a'] * 5_000)}]"]
    elif kind == "keys":
        lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
        lines += [
            f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]"
            for p, c in zip("abcdefgh", "bcdefghi", strict=True)
        ]
        lines.append("? *i\n: 1")
    else:
        raise AssertionError(kind)
    return ("\n".join(lines) + "\n").encode()


def _many_keys(count: int) -> bytes:
    return b"".join(b"key%d: %d\n" % (i, i) for i in range(count))


NAMED: dict[str, bytes] = {
    # nesting
    "flow-seq-99": b"a: " + b"[" * 99 + b"]" * 99,
    "flow-seq-101": b"a: " + b"[" * 101 + b"]" * 101,
    "flow-seq-100k": b"[" * 100_000 + b"]" * 100_000,
    "flow-seq-100k-unclosed": b"[" * 100_000,
    "flow-map-20k": b"{a: " * 20_000 + b"1" + b"}" * 20_000,
    "flow-mixed-20k": b"[{a: " * 10_000 + b"1" + b"}]" * 10_000,
    "brackets-inside-a-quoted-scalar": b'address: "' + b"[" * 200_000 + b'"\nowner: x\n',
    "block-map-150": _nested_block_map(150),
    "block-map-1500": _nested_block_map(1_500),
    "block-seq-compact-20k": b"- " * 20_000 + b"x\n",
    "complex-keys-20k": b"? " * 20_000 + b"x\n",
    "anchored-flow-seq-5k": b"a: " + b"&x [" * 5_000 + b"]" * 5_000,
    "alias-nesting-seq-3000": _deep_aliases(3_000, "[{}]"),
    "alias-nesting-map-3000": _deep_aliases(3_000, "{{k: {}}}"),
    "alias-nesting-101": _alias_chain(101, ALIAS_CHAIN_TAILS["domains"]),
    **{
        f"alias-nesting-600-in-{where}": _alias_chain(600, tail)
        for where, tail in ALIAS_CHAIN_TAILS.items()
    },
    "alias-nesting-97-is-fine": _alias_chain(97, ALIAS_CHAIN_TAILS["domains"]),
    "merge-chain-3000": (
        "\n".join(
            ["m0: &m0 {k: 1}"]
            + [f"m{i}: &m{i} {{<<: *m{i - 1}, k{i}: 1}}" for i in range(1, 3_000)]
        )
        + "\n"
    ).encode(),
    # alias bombs
    "bomb-sequences": _alias_bomb("sequences"),
    "bomb-mappings": _alias_bomb("mappings"),
    "bomb-merge-keys": _alias_bomb("merge-keys"),
    "bomb-quadratic": _alias_bomb("quadratic"),
    "bomb-as-key": _alias_bomb("keys"),
    "recursive-seq": b"a: &a [*a]\n",
    "recursive-map": b"a: &a {b: *a}\n",
    "recursive-merge": b"a: &a {<<: *a, b: 1}\n",
    "undefined-alias": b"a: *nowhere\n",
    # size
    "scalar-15mb": b"name: corp\ndisplay_name: " + b"x" * 15_000_000 + b"\n",
    "scalar-15mb-in-an-enum": b"imap: {host: h, security: " + b"s" * 15_000_000 + b"}\n",
    "file-over-the-limit": b"# " + b"x" * (MAX_FILE_BYTES + 10) + b"\n",
    "list-50k-items": b"mailboxes: [" + b"1, " * 50_000 + b"1]\n",
    "list-5k-mailboxes": b"mailboxes:\n" + b"  - {address: a@b.c, owner: o}\n" * 5_000,
    "mapping-5k-keys": _many_keys(5_000),
    "key-1mb": b"k" * 1_000_000 + b": 1\n",
    "line-of-10mb-spaces": b"name: corp" + b" " * 10_000_000 + b"\n",
    # encodings
    "utf16-le-bom": "name: corp\nowner: zoë\n".encode("utf-16"),
    "utf16-be-bom": b"\xfe\xff" + "name: corp\n".encode("utf-16-be"),
    "utf32-le-bom": "name: corp\n".encode("utf-32"),
    "utf8-bom": b"\xef\xbb\xbfname: corp\n",
    "bom-in-the-middle": b"name: corp\n\xef\xbb\xbfdisplay_name: x\n",
    "latin1": "name: corp\ndisplay_name: Müller\n".encode("latin-1"),
    "invalid-utf8": b"name: corp\ndisplay_name: \xc3\x28\n",
    "overlong-utf8": b"name: \xc0\xaf\n",
    "utf8-surrogate": b"name: \xed\xa0\x80\n",
    "truncated-utf8": b"name: corp\ndisplay_name: caf\xc3",
    # control characters
    "nul-in-a-value": b"name: co\x00rp\n",
    "nul-first": b"\x00name: corp\n",
    "only-nuls": b"\x00" * 1000,
    "control-characters": bytes(range(1, 32)) + b"\n" + b"name: corp\n",
    "del-and-c1": b"name: corp\x7f\ndisplay_name: \xc2\x85\xc2\x9b31m\n",
    "ansi-escape-in-a-value": b'name: corp\nservice_type: "\x1b[31mred\x1b[0m"\n',
    "line-separators": "name: corp\u2028\u2029\ndisplay_name: x\u0085y\n".encode(),
    "cr-only-lines": b"name: corp\rimap:\r  host: h\r",
    "tabs": b"name: corp\nimap:\n\thost: h\n",
    "tab-after-colon": b"name:\tcorp\ndomains:\t[a.com]\n",
    # YAML features
    "multiple-documents": b"name: a\n---\nname: b\n",
    "yaml-directive-1.2": b"%YAML 1.2\n---\nname: corp\n",
    "yaml-directive-9.9": b"%YAML 9.9\n---\nname: corp\n",
    "tag-directive": b"%TAG ! tag:evil.example,2000:\n---\nname: !foo corp\n",
    "python-tags": b"name: !!python/object/apply:os.system ['echo pwned']\n",
    "python-name-tag": b"!!python/name:os.system\n",
    "binary-set-omap": b"a: !!binary aGVsbG8=\nb: !!set {x}\nc: !!omap [{x: 1}]\n",
    "custom-tags": b"name: !secret corp\nimap: !<tag:x> {host: h}\n",
    "non-string-keys": b"? [a, b]\n: 1\n{x: 1}: 2\nnull: 3\n1: 4\ntrue: 5\n~: 6\n2026-01-01: 7\n",
    "merge-non-mapping": b"a: {<<: 5}\nb: {<<: [1, 2]}\n",
    "duplicate-keys-many": b"name: a\n" * 1_000,
    "odd-numbers": (
        b"imap: {host: h, port: 99999999999999999999999999999999999999}\n"
        b"smtp: {host: h, port: .nan, timeout_seconds: 1e400}\n"
        b"port: 0x1F\nx: 0b1010\ny: 0o777\nz: 1_000\nw: 0143\nv: 1:20:30\n"
    ),
    "odd-dates": b"sync: {since: 2026-02-30}\nx: 99999-99-99\ny: 2026-01-01T00:00:00Z\n",
    "yaml11-words": b"security: no\nenabled: on\ndefault: Yes\nperiod: ~\n",
    # nearly empty
    "empty": b"",
    "whitespace": b" \n\t\n ",
    "comment-only": b"# nothing\n",
    "document-marker-only": b"---\n",
    "end-marker-only": b"...\n",
    "null": b"~\n",
    "scalar": b"'just text'\n",
    "number": b"42\n",
    "empty-list": b"[]\n",
    "empty-map": b"{}\n",
}


# Large inputs: read once, as a mailboxes file, to keep the suite fast.
LARGE = frozenset(name for name, content in NAMED.items() if len(content) > 1_000_000) | {
    "list-50k-items",
    "list-5k-mailboxes",
    "mapping-5k-keys",
}


@pytest.mark.parametrize("case", sorted(NAMED))
def test_named_hostile_input(tmp_path: Path, case: str) -> None:
    if case in LARGE:
        validate(_tree(tmp_path, {"mailboxes.d/hostile.yaml": NAMED[case]}), case)
    else:
        validate_everywhere(tmp_path, NAMED[case], case)


@pytest.mark.parametrize(
    "case",
    ["flow-seq-101", "block-map-150", "bomb-sequences", "bomb-merge-keys", "alias-nesting-101"],
)
def test_named_hostile_input_as_json(tmp_path: Path, case: str) -> None:
    for text in validate_everywhere(tmp_path, NAMED[case], f"{case} (json)", "--format", "json"):
        assert json.loads(text)["valid"] is False


@pytest.mark.parametrize(
    ("case", "rule"),
    [
        ("flow-seq-100k", "yaml-depth"),
        ("block-map-1500", "yaml-depth"),
        ("bomb-sequences", "alias-bomb"),
        ("bomb-mappings", "alias-bomb"),
        ("bomb-merge-keys", "alias-bomb"),
        ("bomb-quadratic", "alias-bomb"),
        ("recursive-map", "alias-bomb"),
        ("utf16-le-bom", "encoding"),
        ("latin1", "encoding"),
        ("nul-in-a-value", "yaml-syntax"),
        ("tabs", "yaml-tab"),
        ("file-over-the-limit", "file-too-large"),
        ("python-tags", "yaml-syntax"),
    ],
)
def test_hostile_input_gets_its_rule(tmp_path: Path, case: str, rule: str) -> None:
    root = _tree(tmp_path, {"mailboxes.d/hostile.yaml": NAMED[case]})
    code, out, _err = validate(root, f"{case} (rule)")
    assert code == 1 and f"[{rule}]" in out, out[-2000:]


@pytest.mark.parametrize("where", sorted(ALIAS_CHAIN_TAILS))
def test_nesting_made_of_aliases_is_refused_without_a_crash(tmp_path: Path, where: str) -> None:
    """Regression: a chain of 600 anchors, each holding the previous one, nests the data 600
    levels deep with a flat event stream, under the alias-bomb size limit (a 20 KB file). The
    loader's depth check never saw it, and the schema check recursed until RecursionError:
    "unexpected RecursionError: this is a bug in mailgitops". The loader now measures the depth
    of the expanded data while it counts its size."""
    content = _alias_chain(600, ALIAS_CHAIN_TAILS[where])
    for rel in ("providers.d/deep.yaml", "mailboxes.d/deep.yaml"):
        root = _tree(tmp_path / rel.replace("/", "_"), {rel: content})
        code, out, _err = validate(root, f"alias chain in {where} (regression)")
        assert code == 1 and f"{rel}:1:1: error: the document is nested more than 100" in out
        assert "[yaml-depth]" in out


def test_alias_nesting_within_the_limit_is_read(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"providers.d/corp.yaml": NAMED["alias-nesting-97-is-fine"]})
    code, out, _err = validate(root, "alias chain of 97")
    assert code == 1 and "[yaml-depth]" not in out and "[alias-bomb]" not in out
    assert "unknown key `chain`" in out


def test_schema_errors_of_a_file_are_capped(tmp_path: Path) -> None:
    """Regression: 10 MB of `1,` in a list gave 5 million schema errors, each kept as a
    jsonschema error of about 3 KB: the process passed 8 GB within 3 minutes. The check of a
    file now stops after MAX_ERRORS_PER_FILE errors and says so."""
    from mailgitops.schemacheck import MAX_ERRORS_PER_FILE

    # Six bytes a node: not dense enough for the parse budget to refuse the file unread.
    content = b"mailboxes: [" + b"1111, " * (MAX_ERRORS_PER_FILE * 5) + b"1]\n"
    code, out, _err = validate(_tree(tmp_path, {"mailboxes.d/x.yaml": content}), "error cap")
    assert code == 1
    assert out.count("must be a mapping, not an integer [type]") == MAX_ERRORS_PER_FILE
    assert "mailboxes.d/x.yaml:1:1: error: more than 1,000 schema errors" in out
    assert "[too-many-errors]" in out


def test_two_thousand_files(tmp_path: Path) -> None:
    files = {"providers.d/corp.yaml": PROVIDER}
    for i in range(2_000):
        files[f"mailboxes.d/team-{i:04d}.yaml"] = (
            b"mailboxes:\n  - address: user%d@example.com\n    owner: u%d\n"
            b"    provider: corp\n    password: {env: PW}\n" % (i, i)
        )
    files["mailboxes.d/team-0999.yaml"] = b"mailboxes: [\x00"
    files["mailboxes.d/team-1999.yaml"] = NAMED["bomb-sequences"]
    root = _tree(tmp_path, files)
    code, out, _err = validate(root, "2,000 files")
    assert code == 1
    assert "team-0999.yaml" in out and "team-1999.yaml" in out and "2000 mailbox" not in out
    for name in ("team-0999.yaml", "team-1999.yaml"):
        (root / "mailboxes.d" / name).unlink()
    code, out, _err = validate(root, "1,998 files")
    assert code == 0 and "1998 mailbox(es)" in out


@pytest.mark.parametrize(
    "case",
    [
        "flow-seq-100k",
        "flow-seq-100k-unclosed",
        "block-seq-compact-20k",
        "complex-keys-20k",
        "anchored-flow-seq-5k",
        "alias-nesting-600-in-domains",
        "merge-chain-3000",
        "bomb-merge-keys",
        "utf16-le-bom",
        "only-nuls",
        "list-50k-items",
    ],
)
def test_hostile_input_in_a_real_process(tmp_path: Path, case: str) -> None:
    """A crash of the C parser (a segfault) would kill a real process, not raise."""
    root = _tree(
        tmp_path, {"mailboxes.d/hostile.yaml": NAMED[case], "providers.d/p.yaml": PROVIDER}
    )
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "mailgitops", "validate", "-C", str(root), "--no-cache"],
        capture_output=True,
        text=True,
        env=python_env(),
        timeout=120,
        check=False,
    )
    TIMINGS.append((time.perf_counter() - started, f"{case} (subprocess)"))
    CHILD_RSS.append(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    assert done.returncode in (0, 1), (done.returncode, done.stderr[-2000:])
    _assert_handled(done.returncode, done.stdout, done.stderr)


# --- generated cases ------------------------------------------------------------------------------

TOKENS = [
    "- ",
    ": ",
    "? ",
    "[",
    "]",
    "{",
    "}",
    ", ",
    "&a ",
    "&b ",
    "*a",
    "*b",
    "<<: ",
    "!!binary ",
    "!!str ",
    "!!python/tuple ",
    "!x ",
    "'",
    '"',
    "# c",
    "\n",
    "\n  ",
    "\n    ",
    "\n- ",
    "\t",
    "---\n",
    "...\n",
    "%YAML 1.1\n",
    "|\n  ",
    ">-\n  ",
    "yes",
    "no",
    "on",
    "~",
    "null",
    "0143",
    "1:20",
    "0x1F",
    ".inf",
    "2026-01-01",
    "address",
    "owner",
    "mailboxes",
    "defaults",
    "name",
    "imap",
    "smtp",
    "host",
    "port",
    "security",
    "password",
    "{env: X}",
    "{file: /etc/shadow}",
    "domains",
    "sync",
    "shared_with",
    "rights",
    "\x00",
    "\x85",
    "\u2028",
    "\ufeff",
    "é",
    "\x1b",
    "\\",
    "@",
    "a@b.c",
    "corp",
    "99999999999999999999",
]


def _in_tree(tmp: Path, files: dict[str, bytes], case: str, *extra: str) -> tuple[int, str]:
    with tempfile.TemporaryDirectory(dir=tmp) as scratch:
        root = _tree(Path(scratch), files)
        code, out, _err = validate(root, case, *extra)
    return code, out


@fuzz(300)
@given(raw=st.binary(max_size=3_000))
def test_fuzz_raw_bytes(tmp_path_factory: pytest.TempPathFactory, raw: bytes) -> None:
    parse(raw, "direct.yaml")  # never raises
    tmp = tmp_path_factory.getbasetemp()
    _in_tree(
        tmp,
        {"providers.d/f.yaml": raw, "mailboxes.d/f.yaml": raw, "mailgitops.yaml": raw},
        f"bytes {raw[:60]!r}",
    )


@fuzz(300)
@given(parts=st.lists(st.one_of(st.sampled_from(TOKENS), st.text(max_size=5)), max_size=80))
def test_fuzz_yaml_token_soup(tmp_path_factory: pytest.TempPathFactory, parts: list[str]) -> None:
    raw = "".join(parts).encode("utf-8", "surrogatepass")
    parse(raw, "direct.yaml")
    _in_tree(
        tmp_path_factory.getbasetemp(),
        {"providers.d/f.yaml": raw, "mailboxes.d/f.yaml": raw},
        f"tokens {raw[:60]!r}",
    )


KEYS = st.sampled_from(
    [
        "name",
        "display_name",
        "service_type",
        "domains",
        "imap",
        "smtp",
        "exchange",
        "host",
        "port",
        "security",
        "timeout_seconds",
        "autodiscover",
        "allow_receiving",
        "allow_sending",
        "login_format",
        "auth",
        "method",
        "client_id",
        "client_secret",
        "mailboxes",
        "defaults",
        "address",
        "owner",
        "provider",
        "login",
        "password",
        "env",
        "file",
        "version",
        "send_emails",
        "default",
        "signature",
        "sync",
        "enabled",
        "since",
        "period",
        "folders",
        "shared_with",
        "user",
        "rights",
        "state",
        "backend",
        "path",
        "dsn",
    ]
) | st.text(max_size=8)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(
        [
            "ssl_tls",
            "starttls",
            "none",
            "imap",
            "exchange",
            "oauth2",
            "basic",
            "manual",
            "a@b.c",
            "example.com",
            "week",
            "INBOX",
            "send",
            "2026-01-01",
            "",
            " ",
            "corp",
        ]
    ),
)
DATA = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=30,
)


@fuzz(200)
@given(data=st.dictionaries(KEYS, DATA, max_size=6), share=st.booleans(), mutate=st.data())
def test_fuzz_typed_data_as_yaml(
    tmp_path_factory: pytest.TempPathFactory, data: dict[str, Any], share: bool, mutate: Any
) -> None:
    """Random structures in valid YAML: probes the schema mapping and the semantic checks."""
    if share and data:
        # The same object twice: yaml.dump writes an anchor and an alias.
        first = next(iter(data))
        data["mailboxes"] = [data[first], data[first]]
    text = yaml.dump(data, allow_unicode=True, sort_keys=False)
    raw = text.encode("utf-8", "surrogatepass")
    if mutate.draw(st.booleans()):
        at = mutate.draw(st.integers(0, len(raw)))
        raw = raw[:at] + mutate.draw(st.binary(min_size=1, max_size=4)) + raw[at:]
    _in_tree(
        tmp_path_factory.getbasetemp(),
        {
            "providers.d/f.yaml": raw,
            "mailboxes.d/f.yaml": raw,
            "mailboxes.d/g.yaml": MAILBOXES,
            "providers.d/corp.yaml": PROVIDER,
        },
        f"typed {raw[:60]!r}",
    )


@st.composite
def mutated(draw: st.DrawFn, original: bytes) -> bytes:
    raw = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        how = draw(st.sampled_from(("insert", "delete", "flip", "duplicate-line", "indent")))
        at = draw(st.integers(0, len(raw)))
        if how == "insert":
            raw[at:at] = draw(
                st.binary(min_size=1, max_size=3) | st.sampled_from(TOKENS).map(str.encode)
            )
        elif how == "delete":
            del raw[at : at + draw(st.integers(1, 8))]
        elif how == "flip" and at < len(raw):
            raw[at] ^= 1 << draw(st.integers(0, 7))
        else:
            lines = bytes(raw).split(b"\n")
            line = draw(st.integers(0, len(lines) - 1))
            if how == "duplicate-line":
                lines.insert(line, lines[line])
            else:
                lines[line] = b"  " + lines[line]
            raw = bytearray(b"\n".join(lines))
    return bytes(raw)


@fuzz(200)
@given(provider=mutated(PROVIDER), mailboxes=mutated(MAILBOXES))
def test_fuzz_mutated_valid_config_then_plan(
    tmp_path_factory: pytest.TempPathFactory, provider: bytes, mailboxes: bytes
) -> None:
    files = {
        "providers.d/corp.yaml": provider,
        "mailboxes.d/team.yaml": mailboxes,
        "secrets/bob.pw": b"pw\n",
    }
    with tempfile.TemporaryDirectory(dir=tmp_path_factory.getbasetemp()) as scratch:
        root = _tree(Path(scratch), files)
        code, _out, _err = validate(root, f"mutated {mailboxes[:40]!r} {provider[:40]!r}")
        if code == 0:  # still valid: the rest of the pipeline must take it too
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(["plan", "-C", str(root), "--state", str(root / "live.json")])
            _assert_handled(code, out.getvalue(), err.getvalue())
            assert code == 0, err.getvalue()
