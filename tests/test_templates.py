"""Templates (`*.yaml.j2`, SPEC §7), end to end through the CLI: rendering from vars: and
data/, errors at their places, the sandbox and its bounds against hostile templates, generated
entries in plan/apply/rules, the cache, and `mailgitops render`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from helpers import CORP, OTHER, Cli, tree

from mailgitops.cli import main

MACRO = """{% macro mailbox(person, domain) %}
  - address: {{ person.user }}@{{ domain }}
    owner: {{ person.user }}
    sender_name: {{ person.name }}
{% endmacro %}
"""

TEAM_TEMPLATE = """{% import 'mailbox.j2' as m %}
defaults:
  provider: corp
  password: {env: TEAM_PW}
mailboxes:
{% for person in data.roster.people %}
{{ m.mailbox(person, vars.domain) }}
{%- endfor %}
"""


def _roster(count: int) -> str:
    lines = ["people:"]
    lines += [f"  - {{user: user{i:03d}, name: User {i}}}" for i in range(count)]
    return "\n".join(lines) + "\n"


def _config(root: Path, count: int = 3, **extra: str) -> Path:
    files = {
        "mailgitops.yaml": "vars:\n  domain: example.com\n",
        "providers.d/corp.yaml": CORP,
        "data/roster.yaml": _roster(count),
        "templates/mailbox.j2": MACRO,
        "mailboxes.d/team.yaml.j2": TEAM_TEMPLATE,
    }
    files.update(extra)
    return tree(root, files)


def _validate(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["validate", "-C", str(root), *args])
    out, _err = capsys.readouterr()
    return code, out


def _only_template(root: Path, body: str) -> Path:
    return tree(
        root,
        {
            "mailgitops.yaml": "vars:\n  domain: example.com\n",
            "providers.d/corp.yaml": CORP,
            "mailboxes.d/bad.yaml.j2": body,
        },
    )


# -- a roster of 200 -----------------------------------------------------------------------------


def test_a_roster_of_200_is_rendered_planned_and_applied(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEAM_PW", "s3cr3t-value")
    cli = Cli(_config(tmp_path, 200), capsys)
    code, out, _ = cli("validate", state=False)
    assert (code, out) == (0, "OK: 1 provider(s), 200 mailbox(es): 0 error(s), 0 warning(s)\n")

    code, out, _ = cli("render", "mailboxes.d/team.yaml.j2", state=False)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "# rendered from mailboxes.d/team.yaml.j2"
    assert lines[1] == "   1  defaults:"
    assert lines[5] == "   5    - address: user000@example.com"

    code, plan = cli.plan_json()
    assert code == 0
    assert plan["summary"] == {"create": 201, "update": 0, "delete": 0, "adopt": 0}
    first = next(c for c in plan["changes"] if c["id"] == "user000@example.com")
    last = next(c for c in plan["changes"] if c["id"] == "user199@example.com")
    # the template and the line of the generated entry (`mailgitops render` numbers them)
    assert first["source"] == {"file": "mailboxes.d/team.yaml.j2", "line": 5}
    assert last["source"] == {"file": "mailboxes.d/team.yaml.j2", "line": 5 + 3 * 199}
    code, out, _ = cli("plan")
    assert '+ mailbox "user007@example.com"  # mailboxes.d/team.yaml.j2:26' in out

    assert cli("apply", "--auto-approve")[0] == 0
    assert len(cli.live()["mailboxes"]) == 200
    assert "s3cr3t-value" not in cli.state.read_text()
    code, out, _ = cli("plan", "--detailed-exitcode")
    assert code == 0 and "No changes." in out

    # one person leaves the roster: the plan destroys exactly that mailbox
    tree(
        tmp_path,
        {"data/roster.yaml": _roster(200).replace("  - {user: user150, name: User 150}\n", "")},
    )
    code, plan = cli.plan_json()
    assert [(c["action"], c["id"]) for c in plan["changes"]] == [("delete", "user150@example.com")]


def test_vars_and_json_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree(
        tmp_path,
        {
            "mailgitops.yaml": "vars:\n  provider: {name: corp, host: mail.example.com}\n",
            "data/hosts.json": '{"smtp": "smtp.example.com"}',
            "providers.d/corp.yaml.j2": (
                "name: {{ vars.provider.name }}\n"
                "domains: [example.com]\n"
                "imap: {host: {{ vars.provider.host }}}\n"
                "smtp: {host: {{ data.hosts.smtp }}}\n"
            ),
        },
    )
    assert _validate(tmp_path, capsys) == (
        0,
        "OK: 1 provider(s), 0 mailbox(es): 0 error(s), 0 warning(s)\n",
    )
    assert main(["resolve", "-C", str(tmp_path), "x@example.com"]) == 0
    assert "smtp.example.com" in capsys.readouterr().out


# -- errors and their places ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "mailboxes:\n{% for p in data.roster %}\n",
            "mailboxes.d/bad.yaml.j2:2:4: error: Unexpected end of template. Jinja was looking "
            "for the following tags: 'endfor' or 'else'. The innermost block that needs to be "
            "closed is 'for'. [template-syntax]",
        ),
        (
            "mailboxes:\n  - address: {{ vars.domain }}\n    owner: {{ owner }}\n",
            "mailboxes.d/bad.yaml.j2:3:15: error: 'owner' is undefined [template-undefined]",
        ),
        (
            "mailboxes:\n\n  - address: {{ vars.nope }}\n",
            "mailboxes.d/bad.yaml.j2:3:22: error: 'dict object' has no attribute 'nope' "
            "[template-undefined]",
        ),
        (
            "mailboxes:\n  - address: {{ vars.__class__ }}\n",
            "mailboxes.d/bad.yaml.j2:2:22: error: access to attribute '__class__' of 'dict' "
            "object is unsafe. [template-sandbox]",
        ),
        (
            "mailboxes: []\n{% for i in range(10) %}{% for j in range(200000) %}{% endfor %}"
            "{% endfor %}\n",
            "mailboxes.d/bad.yaml.j2:2:1: error: range() of 200,000 items; the limit is 100,000 "
            "[template-limit]",
        ),
        (
            "mailboxes:\n  - address: {{ 1 // 0 }}\n",
            "mailboxes.d/bad.yaml.j2:2:3: error: ZeroDivisionError: integer division or modulo "
            "by zero [template-error]",
        ),
    ],
    ids=["syntax", "undefined", "undefined-attribute", "sandbox", "limit", "runtime"],
)
def test_template_errors_at_the_template_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, expected: str
) -> None:
    code, out = _validate(_only_template(tmp_path, body), capsys)
    assert code == 1
    assert out.splitlines()[0] == expected


def test_an_error_in_an_included_template_names_that_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _config(tmp_path, 2, **{"templates/mailbox.j2": MACRO.replace("person.name", "person.nick")})
    code, out = _validate(tmp_path, capsys)
    assert code == 1
    assert out.splitlines()[0] == (
        "templates/mailbox.j2:4:28: error: 'dict object' has no attribute 'nick' "
        "[template-undefined]"
    )
    _config(tmp_path, 2, **{"templates/mailbox.j2": "{% macro mailbox(p, d) %}\n{% if %}\n"})
    code, out = _validate(tmp_path, capsys)
    assert out.splitlines()[0].startswith("templates/mailbox.j2:2:1: error: ")
    assert out.splitlines()[0].endswith("[template-syntax]")


def test_yaml_and_schema_errors_at_the_rendered_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = (
        "{# a comment line: rendered lines differ from template lines #}\n"
        "mailboxes:\n"
        "{% for i in range(3) %}\n"
        "  - address: u{{ i }}@example.com\n"
        "    owner: u{{ i }}\n"
        "    password: {env: PW}\n"
        "{% if i == 2 %}\n"
        "    colour: blue\n"
        "{% endif %}\n"
        "{% endfor %}\n"
    )
    code, out = _validate(_only_template(tmp_path, body), capsys)
    assert code == 1
    first = out.splitlines()[0]
    assert first.startswith("mailboxes.d/bad.yaml.j2:11:5: error: unknown key `colour`")
    assert first.endswith(
        "(line 11 of the rendered text: mailgitops render mailboxes.d/bad.yaml.j2) [unknown-key]"
    )
    code = main(["render", "-C", str(tmp_path)])
    rendered = capsys.readouterr().out.splitlines()
    assert rendered[11] == "  11      colour: blue"

    _only_template(tmp_path, "mailboxes:\n{% for i in range(2) %}\n  - address: [\n{% endfor %}")
    code, out = _validate(tmp_path, capsys)
    assert code == 1
    line = out.splitlines()[0]
    assert line.startswith("mailboxes.d/bad.yaml.j2:3:") and line.endswith("[yaml-syntax]")


def test_a_rendered_literal_secret_is_plaintext_secret_without_echo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _config(
        tmp_path,
        2,
        **{
            "mailgitops.yaml": "vars:\n  domain: example.com\n  pw: Hunter2-Secret\n",
            "mailboxes.d/team.yaml.j2": TEAM_TEMPLATE.replace(
                "password: {env: TEAM_PW}", "password: {{ vars.pw }}"
            ),
        },
    )
    code, out = _validate(tmp_path, capsys)
    assert code == 1
    assert out.splitlines()[0].startswith("mailboxes.d/team.yaml.j2:3:13: error: `password` is")
    assert "[plaintext-secret]" in out
    assert "Hunter2" not in out
    assert main(["plan", "-C", str(tmp_path), "--state", str(tmp_path / "s.json")]) == 1
    assert "Hunter2" not in "".join(capsys.readouterr())


def test_duplicates_across_a_template_and_a_file_name_both_places(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _config(
        tmp_path,
        3,
        **{
            "mailboxes.d/other.yaml": (
                "mailboxes:\n  - address: user001@example.com\n    owner: x\n"
                "    password: {env: X}\n"
            )
        },
    )
    code, out = _validate(tmp_path, capsys)
    assert code == 1
    assert "mailboxes.d/team.yaml.j2:8" in out and "mailboxes.d/other.yaml:2" in out
    assert "[duplicate-address]" in out


def test_github_annotations_are_on_the_template(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _only_template(tmp_path, "mailboxes:\n  - {{ missing }}\n")
    code = main(["validate", "-C", str(tmp_path), "--format", "github"])
    out = capsys.readouterr().out
    assert code == 1
    prefix = os.path.relpath(tmp_path)
    assert out.startswith(
        f"::error file={prefix}/mailboxes.d/bad.yaml.j2,line=2,col=8,title=template-undefined::"
    )


def test_the_deletion_rule_sees_generated_mailboxes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEAM_PW", "x")
    cli = Cli(_config(tmp_path, 2, **{"providers.d/other.yaml": OTHER}), capsys)
    assert cli("apply", "--auto-approve")[0] == 0
    (tmp_path / "providers.d/corp.yaml").unlink()
    code, _out, err = cli("plan")
    assert code == 1
    assert "corp" in err and "mailboxes.d/team.yaml.j2:5" in err


def test_access_and_saved_plans_cover_generated_entries(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEAM_PW", "x")
    settings = "vars:\n  domain: example.com\naccess:\n  administrators: [root]\n"
    cli = Cli(_config(tmp_path, 2, **{"mailgitops.yaml": settings}), capsys)
    assert cli("apply", "--auto-approve", "--actor", "root")[0] == 0
    tree(tmp_path, {"data/roster.yaml": _roster(2).replace("User 1", "Someone Else")})
    code, _out, err = cli("plan", "--actor", "user000")
    assert code == 1
    assert (
        "update mailbox `user001@example.com` (mailboxes.d/team.yaml.j2:8): needs an "
        "administrator, a mailbox manager, or its owner `user001`"
    ) in err
    plan = str(tmp_path / "plan.json")
    assert cli("plan", "--actor", "user001", "--out", plan)[0] == 0
    assert cli("apply", plan, "--actor", "user000")[0] == 1  # access counts for who applies
    assert cli("apply", plan, "--actor", "user001")[0] == 0
    assert cli.live()["mailboxes"]["user001@example.com"]["sender_name"] == "Someone Else"


# -- the sandbox and its bounds ------------------------------------------------------------------

ESCAPES = {
    "class": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "subclasses": "{{ data.__class__.__base__.__subclasses__() }}",
    "globals": "{{ range.__globals__ }}",
    "cycler": "{{ cycler(1, 2).next() }}",
    "joiner": "{{ joiner(',')() }}",
    "namespace": "{% set ns = namespace(n=0) %}{% set ns.n = 1 %}{{ ns.n }}",
    "lipsum": "{{ lipsum(5) }}",
    "dict": "{{ dict(a=1) }}",
    "vars-mutation": "{{ vars.update({'domain': 'evil.com'}) }}",
    "vars-pop": "{{ vars.pop('domain') }}",
    "vars-dunder": "{{ vars.__init__ }}",
    "random": "{{ [1, 2]|random }}",
    "absolute-include": "{% include '/etc/passwd' %}",
    "parent-include": "{% include '../mailgitops.yaml' %}",
    "dot-include": "{% include 'a/../../mailgitops.yaml' %}",
    "import": "{% import '../providers.d/corp.yaml' as x %}",
    "environment": "{{ env }}{{ environ }}",
    "self": "{{ self.__init__.__globals__ }}",
}


@pytest.mark.parametrize("body", ESCAPES.values(), ids=ESCAPES.keys())
def test_sandbox_escapes_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str
) -> None:
    code, out = _validate(_only_template(tmp_path, "mailboxes: []\n" + body + "\n"), capsys)
    assert code == 1
    first = out.splitlines()[0]
    assert first.startswith("mailboxes.d/bad.yaml.j2:2:")
    assert first.endswith(("[template-sandbox]", "[template-undefined]", "[template-syntax]"))


def test_a_symlink_in_templates_that_leads_outside_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root"
    (tmp_path / "outside.j2").write_text("password: hunter2\n")
    _only_template(root, "mailboxes: []\n{% include 'leak.j2' %}\n")
    (root / "templates").mkdir()
    (root / "templates" / "leak.j2").symlink_to(tmp_path / "outside.j2")
    (root / "templates" / "dir").symlink_to(tmp_path)
    code, out = _validate(root, capsys)
    assert code == 1
    assert out.splitlines()[0] == (
        "mailboxes.d/bad.yaml.j2:2:1: error: `leak.j2` resolves outside templates/ "
        "(a symlink?) [template-sandbox]"
    )
    _only_template(root, "mailboxes: []\n{% include 'dir/outside.j2' %}\n")
    code, out = _validate(root, capsys)
    assert "resolves outside templates/" in out and "hunter2" not in out
    # templates/ itself a symlink to a folder outside
    (root / "templates" / "dir").unlink()
    (root / "templates" / "leak.j2").unlink()
    (root / "templates").rename(root / "templates.real")
    (root / "templates").symlink_to(tmp_path)
    _only_template(root, "mailboxes: []\n{% include 'outside.j2' %}\n")
    code, out = _validate(root, capsys)
    assert "resolves outside templates/" in out and "hunter2" not in out
    (root / "templates").unlink()
    (root / "templates.real").rename(root / "templates")
    # a symlink that stays inside templates/ is fine
    (root / "templates" / "real.j2").write_text("# shared\n")
    (root / "templates" / "alias.j2").symlink_to("real.j2")
    _only_template(root, "mailboxes: []\n{% include 'alias.j2' %}\n")
    assert _validate(root, capsys)[0] == 0


BOMBS = {
    "range": ("{% for i in range(10**9) %}{% endfor %}", "too large for an argument"),
    "nested-loops": (
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "a loop bomb?)",  # the iteration count, or on a slow machine the clock
    ),
    "data-loops": (
        "{% for a in data.big.list %}{% for b in data.big.list %}{% for c in data.big.list %}"
        "{% endfor %}{% endfor %}{% endfor %}",
        "a loop bomb?)",  # the iteration count, or on a slow machine the clock
    ),
    "recursive-macro": (
        "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
        "(a recursive macro?)",
    ),
    "doubling-macro": (
        "{% macro f(s) %}{{ f(s ~ s) }}{% endmacro %}{{ f('ab') }}",
        "more than the output limit",
    ),
    "string-product": ("{{ 'a' * 10**9 }}", "the limit is"),
    "power": ("{{ 7 ** 99999999 }}", "bits"),
    "join": (
        "{% set x = range(100000)|list %}{{ x|join(x|join) }}",
        "more than the output limit",
    ),
    "center": ("{{ 'x'.center(10**9) }}", "too large for an argument"),
    "indent": ("{{ 'x'|indent(10**9) }}", "too large for an argument"),
    "format": ("{{ '%999999999d' % 1 }}", "a format with a width"),
    "str-format": ("{{ '{:>999999999}'.format(1) }}", "a format with a width"),
    "replace": (
        "{% set s = 'x' * 1000000 %}{{ s.replace('', s) }}",
        "more than the output limit",
    ),
    "output": (
        "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}",
        "the rendered text is larger than",
    ),
    "caller": (
        "{% macro f() %}{% for i in range(100000) %}{{ caller() }}{% endfor %}{% endmacro %}"
        "{% call f() %}{{ 'x' * 1000000 }}{% endcall %}",
        "characters in all",
    ),
    "recursive-include": ("{% include 'self.j2' %}", "nested too deeply"),
    "nested-format": ("{{ '{0:{1}}'.format('x', '999999999') }}", "a format with a width"),
    "indent-lines": (
        "{% set s = '\\n' * 1000000 %}{{ s|indent(1000) }}",
        "this indent would give more",
    ),
    "slice": ("{{ [1]|slice(10000000)|list }}", "slice() into more than"),
    "recursive-loop": (
        "{% for x in range(100000) recursive %}{% if loop.depth < 3 %}"
        "{{ loop(range(100000)) }}{% endif %}{% endfor %}",
        "a loop bomb?)",  # the iteration count, or on a slow machine the clock
    ),
    "string-plus": (
        "{% macro f(s) %}{{ f(s + s) }}{% endmacro %}{{ f('ab') }}",
        "`+` would make a value larger",
    ),
}


@pytest.mark.parametrize(("body", "message"), BOMBS.values(), ids=BOMBS.keys())
def test_bombs_are_refused_with_a_limit_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, message: str
) -> None:
    _only_template(tmp_path, "mailboxes: []\n" + body + "\n")
    tree(
        tmp_path,
        {
            "data/big.yaml": "list: [" + ", ".join(str(i) for i in range(2000)) + "]\n",
            "templates/self.j2": "{% include 'self.j2' %}",
        },
    )
    code, out = _validate(tmp_path, capsys)
    assert code == 1
    first = out.splitlines()[0]
    assert first.endswith("[template-limit]"), first
    assert message in first
    assert first.split(":")[0] in ("mailboxes.d/bad.yaml.j2", "templates/self.j2")


# -- files, data and the cache -------------------------------------------------------------------


def test_no_file_is_skipped_silently(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree(
        tmp_path,
        {
            "providers.d/corp.yaml": CORP,
            "providers.d/README.md": "docs\n",
            "providers.d/.hidden": "x\n",
            "mailboxes.d/team.yml.j2": "mailboxes: []\n",
            "mailboxes.d/team.txt": "x\n",
            "mailboxes.d/team.yaml.bak": "x\n",
            "mailboxes.d/sub/a.yaml": "mailboxes: []\n",
            "data/notes.txt": "x\n",
        },
    )
    code, out = _validate(tmp_path, capsys)
    assert code == 0
    assert out.splitlines() == [
        "mailboxes.d/sub:1:1: warning: ignored: a folder inside mailboxes.d/ is not read "
        "(files of the folder itself are) [ignored-file]",
        "mailboxes.d/team.txt:1:1: warning: ignored: only *.yaml files and *.yaml.j2 "
        "templates are read [ignored-file]",
        "mailboxes.d/team.yaml.bak:1:1: warning: ignored: only *.yaml files and *.yaml.j2 "
        "templates are read [ignored-file]",
        "mailboxes.d/team.yml.j2:1:1: warning: ignored: only *.yaml and *.yaml.j2 files are "
        "read (rename to *.yaml.j2) [ignored-file]",
        "OK: 1 provider(s), 0 mailbox(es): 0 error(s), 4 warning(s)",
    ]


def test_data_and_templates_outside_the_root_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root"
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "roster.yaml").write_text("people: [{user: hunter2}]\n")
    _config(root, 2)
    (root / "data" / "roster.yaml").unlink()
    (root / "data" / "roster.yaml").symlink_to(tmp_path / "secret" / "roster.yaml")
    code, out = _validate(root, capsys)
    assert code == 1
    assert "data/roster.yaml:1:1: error: resolves outside data/ (a symlink?) [io]" in out
    assert "hunter2" not in out
    shutil.rmtree(root / "data")
    (root / "data").symlink_to(tmp_path / "secret")
    code, out = _validate(root, capsys)
    assert "data:1:1: error: resolves outside the config root (a symlink?) [io]" in out
    assert "hunter2" not in out


def test_a_template_over_the_size_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _only_template(tmp_path, "mailboxes: []\n" + "#" * 300_000 + "\n")
    code, out = _validate(tmp_path, capsys)
    assert code == 1
    assert out.splitlines()[0] == (
        "mailboxes.d/bad.yaml.j2:1:1: error: the template is larger than 262,144 bytes, the "
        "limit [file-too-large]"
    )


def test_broken_data_files_are_reported_at_their_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _config(
        tmp_path,
        2,
        **{
            "data/dup.yaml": "a: 1\na: 2\n",
            "data/bad.json": '{"a": 1,\n  "b": }',
            "data/roster.json": "{}",
        },
    )
    code, out = _validate(tmp_path, capsys)
    assert code == 1
    lines = out.splitlines()
    assert "data/bad.json:2:8: error: invalid JSON: Expecting value [json-syntax]" in lines
    assert any(x.startswith("data/dup.yaml:2:1: error: duplicate key `a`") for x in lines)
    assert (
        "data/roster.yaml:1:1: error: `data.roster` is defined by data/roster.json already "
        "[duplicate-data]"
    ) in lines


@pytest.mark.parametrize(
    "change",
    ["vars", "data", "include", "template"],
)
def test_the_cache_follows_every_input_of_a_template(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: str
) -> None:
    _config(tmp_path, 2)
    for _ in range(2):  # fill the cache, then read from it
        code, plan = Cli(tmp_path, capsys).plan_json()
        assert code == 0
    names = {c["id"]: c for c in plan["changes"]}
    assert names["user001@example.com"]["after"]["sender_name"] == "User 1"
    if change == "vars":
        tree(tmp_path, {"mailgitops.yaml": "vars:\n  domain: example.org\n"})
        expected = "user001@example.org"
    elif change == "data":
        tree(tmp_path, {"data/roster.yaml": _roster(2).replace("user001", "carol")})
        expected = "carol@example.com"
    elif change == "include":
        tree(
            tmp_path,
            {"templates/mailbox.j2": MACRO.replace("{{ person.user }}@", "x.{{ person.user }}@")},
        )
        expected = "x.user001@example.com"
    else:
        tree(
            tmp_path,
            {
                "mailboxes.d/team.yaml.j2": TEAM_TEMPLATE.replace(
                    "data.roster.people", "data.roster.people|reverse"
                )
            },
        )
        expected = "user001@example.com"
    for args in ([], ["--no-cache"]):
        code, plan = Cli(tmp_path, capsys).plan_json(*args)
        assert expected in {c["id"] for c in plan["changes"]}
    assert _validate(tmp_path, capsys)[0] == 0


def test_render_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _config(tmp_path, 2, **{"providers.d/x.yaml.j2": "name: {{ vars.domain|replace('.', '-') }}\n"})
    assert main(["render", "-C", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[:2] == [
        "# rendered from providers.d/x.yaml.j2",
        "   1  name: example-com",
    ]
    assert "# rendered from mailboxes.d/team.yaml.j2" in out
    assert main(["render", "-C", str(tmp_path), "--no-line-numbers", "providers.d/x.yaml.j2"]) == 0
    assert capsys.readouterr().out == "# rendered from providers.d/x.yaml.j2\nname: example-com\n"
    assert main(["render", "-C", str(tmp_path), "providers.d/corp.yaml"]) == 1
    assert "is not a template of the config" in capsys.readouterr().err
    tree(tmp_path, {"providers.d/x.yaml.j2": "name: {{ nope }}\n"})
    assert main(["render", "-C", str(tmp_path), "providers.d/x.yaml.j2"]) == 1
    _out, err = capsys.readouterr()
    assert "providers.d/x.yaml.j2:1:10: error: 'nope' is undefined [template-undefined]" in err
    assert "Traceback" not in err
