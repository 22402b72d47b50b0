"""No text typed by a client can change the structure of an LDAP filter."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from ldap3.operation.search import MATCH_EQUAL, ROOT, parse_filter

from govnode.directory.filters import login_filter

USER_FILTER = "(objectClass=inetOrgPerson)"


def _shape(node: Any) -> tuple[Any, ...]:
    return (node.tag, tuple(_shape(child) for child in node.elements))


def _unescape(value: bytes) -> bytes:
    """Undo RFC 4515 `\\XX` escapes: what the server compares against."""
    return re.sub(rb"\\([0-9a-fA-F]{2})", lambda m: bytes([int(m[1], 16)]), value)


def _parse(text: str) -> Any:
    return parse_filter(
        text, None, auto_escape=False, auto_encode=True, validator=None, check_names=False
    )


EXPECTED_SHAPE = _shape(_parse(login_filter(USER_FILTER, "uid", "edu")))


@given(st.text())
def test_any_username_stays_one_equality_assertion(username: str) -> None:
    built = login_filter(USER_FILTER, "uid", username)
    tree = _parse(built)
    assert _shape(tree) == EXPECTED_SHAPE
    assert tree.tag == ROOT
    conjunction = tree.elements[0]
    equality = conjunction.elements[1]
    assert equality.tag == MATCH_EQUAL
    attribute, value = equality.assertion["attr"], equality.assertion["value"]
    assert attribute == "uid"
    # The server receives the typed text itself (ldap3 trims surrounding
    # white space, which LDAP matching ignores anyway), never filter syntax.
    assert _unescape(value) == username.strip().encode("utf-8")


def test_hostile_inputs_are_escaped() -> None:
    assert login_filter(USER_FILTER, "uid", "*)(uid=*") == (
        r"(&(objectClass=inetOrgPerson)(uid=\2a\29\28uid=\2a))"
    )
    assert login_filter(USER_FILTER, "uid", "a\x00b\\") == (
        r"(&(objectClass=inetOrgPerson)(uid=a\00b\5c))"
    )
