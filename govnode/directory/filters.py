"""LDAP filters built from untrusted text: every value escaped, structure fixed.

The configured base filters (`ldap.user_filter`, `ldap.agency_filter`) come
from the sysadmin; values typed by clients only ever enter as escaped
assertion values, so no input can add a clause, a wildcard or a parenthesis.
"""

from __future__ import annotations

from ldap3.utils.conv import escape_filter_chars


def equality(attribute: str, value: str) -> str:
    """`(attribute=value)` with `value` escaped (RFC 4515)."""
    return f"({attribute}={escape_filter_chars(value)})"


def both(base_filter: str, clause: str) -> str:
    """`(&base clause)`: the configured filter narrowed by one clause."""
    return f"(&{base_filter}{clause})"


def login_filter(user_filter: str, code_attribute: str, username: str) -> str:
    """The search that finds the one entry a login names."""
    return both(user_filter, equality(code_attribute, username))
