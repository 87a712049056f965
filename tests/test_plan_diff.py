"""Attribute diffs: the paths a reviewer reads, in order, for any two entries."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mailgitops.plan.diff import attribute_diff

leaf = st.booleans() | st.integers(0, 5) | st.sampled_from(["a", "b"])
entries = st.recursive(
    st.dictionaries(
        st.sampled_from(["imap", "port", "host", "password", "sync"]), leaf, max_size=4
    ),
    lambda inner: st.dictionaries(
        st.sampled_from(["imap", "auth", "client_secret", "x"]),
        inner | leaf | st.lists(leaf, max_size=2),
        max_size=4,
    ),
    max_leaves=8,
)


def _apply(before: dict[str, Any], diff: Any) -> dict[str, Any]:
    """Rebuild `after` from `before` and the diff: the diff must say everything."""
    import copy

    out = copy.deepcopy(before)
    for change in diff:
        *parents, last = change.path.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        if change.after is None:
            node.pop(last, None)
        else:
            node[last] = change.after
    return out


@settings(derandomize=True, max_examples=300)
@given(entries, entries)
def test_diff_is_empty_iff_equal_ordered_and_complete(
    before: dict[str, Any], after: dict[str, Any]
) -> None:
    diff = attribute_diff(before, after)
    assert (not diff) == (before == after)
    paths = [tuple(d.path.split(".")) for d in diff]
    assert paths == sorted(paths)
    assert _apply(before, diff) == after


def test_paths_lists_and_secrets() -> None:
    before = {
        "imap": {"host": "a", "port": 143},
        "domains": ["a"],
        "password": {"env": "X"},
        "owner": "m",
    }
    after = {
        "imap": {"host": "a", "port": 993},
        "domains": ["a", "b"],
        "password": {"env": "X", "version": "2"},
        "login": "l",
    }
    diff = attribute_diff(before, after)
    assert [(d.path, d.before, d.after, d.sensitive) for d in diff] == [
        ('domains["b"]', None, "b", False),
        ("imap.port", 143, 993, False),
        ("login", None, "l", False),
        ("owner", "m", None, False),
        ("password", {"env": "X"}, {"env": "X", "version": "2"}, True),
    ]
