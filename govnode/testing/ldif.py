"""LDIF for the demo and test directory, built from domain values.

Pure functions, no I/O: `Slapd.seed` writes the text and loads it with
`slapadd`. The attribute mapping of an agency entry is a contract with the
LDAP client (`govnode.directory`):

    uid = code, o = name_fa, cn = name_en, sn = code, businessCategory = kind,
    employeeType = str(phase), ou = parent (if any), l = county (if any),
    userPassword = {SSHA} hash.

Users live one level below their agency and carry no `businessCategory`:
that attribute is what tells an agency from a user.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence

from ldap3.utils.dn import escape_rdn, parse_dn

from govnode.domain.agency import Agency

__all__ = ["agencies_ldif", "ssha", "value_line"]

_SALT_BYTES = 8
_FOLD_AT = 76  # RFC 2849 recommends lines of at most 76 characters

Entry = list[tuple[str, str]]


def ssha(password: str, salt: bytes | None = None) -> str:
    """`{SSHA}` hash of `password` (UTF-8): base64(sha1(password + salt) + salt).

    slapd verifies these natively; a fresh 8-byte salt is drawn unless one is
    given (tests pass one to get a stable result).
    """
    if salt is None:
        salt = secrets.token_bytes(_SALT_BYTES)
    digest = hashlib.sha1(password.encode("utf-8") + salt).digest()  # noqa: S324 - SSHA is SHA-1 by definition
    return "{SSHA}" + base64.b64encode(digest + salt).decode("ascii")


def _is_safe_string(value: str) -> bool:
    """Whether RFC 2849 lets `value` be written as is (SAFE-STRING, no trailing space)."""
    if not value:
        return True
    if value[0] in " :<" or value[-1] == " ":
        return False
    return all(0 < ord(char) < 128 and char not in "\r\n" for char in value)


def _fold(line: str) -> str:
    """Fold a long line into continuation lines that start with one space."""
    if len(line) <= _FOLD_AT:
        return line
    parts = [line[:_FOLD_AT]]
    rest = line[_FOLD_AT:]
    width = _FOLD_AT - 1  # the leading space counts towards the line length
    while rest:
        parts.append(" " + rest[:width])
        rest = rest[width:]
    return "\n".join(parts)


def value_line(attribute: str, value: str) -> str:
    """One `attr: value` line, base64 (`attr:: ...`) whenever LDIF requires it.

    Every value goes through here, so Persian names, DNs and passwords are all
    encoded by the same rules.
    """
    if _is_safe_string(value):
        line = f"{attribute}: {value}" if value else f"{attribute}:"
    else:
        encoded = base64.b64encode(value.encode("utf-8")).decode("ascii")
        line = f"{attribute}:: {encoded}"
    return _fold(line)


def _record(dn: str, attributes: Entry) -> str:
    return "\n".join([value_line("dn", dn), *(value_line(a, v) for a, v in attributes)])


def _leading_rdn(dn: str, expected: str) -> str:
    """The value of the first RDN of `dn`, which must be `expected=...`."""
    attribute, value, _sep = parse_dn(dn)[0]
    if str(attribute).lower() != expected:
        raise ValueError(f"{dn}: must start with {expected}=")
    return str(value)


def _rdn(attribute: str, value: str) -> str:
    escaped: str = escape_rdn(value)
    return f"{attribute}={escaped}"


def agencies_ldif(
    base_dn: str,
    agencies: Iterable[Agency],
    *,
    password_for: Callable[[str], str],
    service_dn: str,
    service_password: str,
    users: Mapping[str, Sequence[str]] = {},
) -> str:
    """The whole demo tree as LDIF, parents before children (slapadd order).

    `password_for(name)` gives the password of an agency code or user id;
    `users` maps an agency code to the user ids created under that agency.
    """
    top = _leading_rdn(base_dn, "dc")
    service_cn = _leading_rdn(service_dn, "cn")
    agencies_dn = f"ou=agencies,{base_dn}"

    records = [
        _record(
            base_dn,
            [
                ("objectClass", "top"),
                ("objectClass", "dcObject"),
                ("objectClass", "organization"),
                ("dc", top),
                ("o", top),
            ],
        ),
        _record(
            agencies_dn,
            [("objectClass", "top"), ("objectClass", "organizationalUnit"), ("ou", "agencies")],
        ),
        _record(
            f"ou=services,{base_dn}",
            [("objectClass", "top"), ("objectClass", "organizationalUnit"), ("ou", "services")],
        ),
        _record(
            service_dn,
            [
                ("objectClass", "top"),
                ("objectClass", "organizationalRole"),
                ("objectClass", "simpleSecurityObject"),
                ("cn", service_cn),
                ("userPassword", ssha(service_password)),
            ],
        ),
    ]

    codes: set[str] = set()
    for agency in agencies:
        if agency.code in codes:
            raise ValueError(f"agency {agency.code!r} appears twice")
        codes.add(agency.code)
        dn = f"{_rdn('uid', agency.code)},{agencies_dn}"
        records.append(_record(dn, _agency_entry(agency, password_for)))

    for code, user_ids in users.items():
        if code not in codes:
            raise ValueError(f"users {list(user_ids)} belong to unknown agency {code!r}")
        parent = f"{_rdn('uid', code)},{agencies_dn}"
        for user in user_ids:
            dn = f"{_rdn('uid', user)},{parent}"
            records.append(_record(dn, _user_entry(user, password_for)))

    # No `version: 1` line: ldapadd accepts one, slapadd (2.5) rejects it as an entry.
    return "\n\n".join(records) + "\n"


_PERSON_CLASSES: Entry = [
    ("objectClass", "top"),
    ("objectClass", "person"),
    ("objectClass", "organizationalPerson"),
    ("objectClass", "inetOrgPerson"),
]


def _agency_entry(agency: Agency, password_for: Callable[[str], str]) -> Entry:
    entry = [
        *_PERSON_CLASSES,
        ("uid", agency.code),
        ("o", agency.name_fa),
        ("cn", agency.name_en),
        ("sn", agency.code),
        ("businessCategory", agency.kind),
        ("employeeType", str(agency.phase)),
    ]
    if agency.parent is not None:
        entry.append(("ou", agency.parent))
    if agency.county is not None:
        entry.append(("l", agency.county))
    entry.append(("userPassword", ssha(password_for(agency.code))))
    return entry


def _user_entry(user: str, password_for: Callable[[str], str]) -> Entry:
    return [
        *_PERSON_CLASSES,
        ("uid", user),
        ("cn", user),
        ("sn", user),
        ("userPassword", ssha(password_for(user))),
    ]
