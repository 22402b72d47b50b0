"""The private slapd and the LDIF it is seeded from.

The `slapd`-marked tests run the real server: the directory client is written
against the attribute mapping checked here, so it is checked on the wire.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ldap3
import pytest
from ldap3.core.exceptions import LDAPSocketOpenError

from govnode.domain.agency import Agency
from govnode.testing.demo_data import demo_file, demo_password, load_agencies
from govnode.testing.ldif import agencies_ldif, ssha, value_line
from govnode.testing.slapd import Slapd, SlapdNotFound, find_slapd

GOVNODE_SCHEMA = Path(__file__).resolve().parents[2] / "etc" / "ldap" / "govnode.schema"
AGENCY_FILTER = "(&(objectClass=inetOrgPerson)(businessCategory=*))"
MAPPED = ["uid", "o", "cn", "sn", "businessCategory", "employeeType", "ou", "l"]
BASE = "dc=kb,dc=gov,dc=ir"
SERVICE = f"cn=govnode,ou=services,{BASE}"


def expected_attributes(agency: Agency) -> dict[str, list[bytes]]:
    """The contract between the directory and govnode's LDAP client."""
    attributes = {
        "uid": agency.code,
        "o": agency.name_fa,
        "cn": agency.name_en,
        "sn": agency.code,
        "businessCategory": agency.kind,
        "employeeType": str(agency.phase),
        "ou": agency.parent,
        "l": agency.county,
    }
    return {name: [value.encode()] for name, value in attributes.items() if value is not None}


def parse_ldif(text: str) -> list[list[tuple[str, str]]]:
    """Just enough of an LDIF reader to check what ldif.py writes: unfold, decode base64."""
    records = []
    for block in text.strip("\n").split("\n\n"):
        lines: list[str] = []
        for line in block.split("\n"):
            if line.startswith(" "):
                lines[-1] += line[1:]
            else:
                lines.append(line)
        record = []
        for line in lines:
            attribute, _, rest = line.partition(":")
            if rest.startswith(":"):
                value = base64.b64decode(rest[1:].strip()).decode("utf-8")
            else:
                value = rest.lstrip(" ")
            record.append((attribute, value))
        records.append(record)
    return records


def ssha_matches(hashed: str, password: str) -> bool:
    raw = base64.b64decode(hashed.removeprefix("{SSHA}"))
    digest, salt = raw[:20], raw[20:]
    recomputed = hashlib.sha1(password.encode() + salt).digest()  # noqa: S324 - SSHA is SHA-1
    return hashed.startswith("{SSHA}") and len(salt) == 8 and recomputed == digest


# -- ldif.py, no server ---------------------------------------------------------------


@pytest.fixture(scope="module")
def agencies() -> list[Agency]:
    loaded = load_agencies(demo_file("agencies.csv"))
    assert len(loaded) == 181
    return loaded


def test_ssha_verifies_by_recomputing() -> None:
    hashed = ssha("demo-edu")
    assert ssha_matches(hashed, "demo-edu")
    assert not ssha_matches(hashed, "demo-edu ")
    assert ssha("demo-edu") != hashed  # fresh salt each time
    assert ssha("رمز", salt=b"12345678") == ssha("رمز", salt=b"12345678")
    assert ssha_matches(ssha("رمز"), "رمز")


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("edu", False),
        ("", False),
        ("a: b <c>", False),
        (" leading space", True),
        (":colon", True),
        ("<url", True),
        ("trailing space ", True),
        ("two\nlines", True),
        ("اداره کل", True),
    ],
)
def test_value_line_base64_when_ldif_requires(value: str, encoded: bool) -> None:
    line = value_line("o", value)
    assert line.startswith("o:: ") is encoded
    assert parse_ldif(line) == [[("o", value)]]


def test_ldif_maps_agencies_and_users(agencies: list[Agency]) -> None:
    text = agencies_ldif(
        BASE,
        agencies,
        password_for=demo_password,
        service_dn=SERVICE,
        service_password="s3cret",
        users={"edu": ["dabir.edu"]},
    )
    assert text.isascii()  # Persian only ever appears base64-encoded
    assert max(len(line) for line in text.splitlines()) <= 76
    assert "o:: " in text

    records = {dict(record)["dn"]: record for record in parse_ldif(text)}
    assert list(records)[:4] == [BASE, f"ou=agencies,{BASE}", f"ou=services,{BASE}", SERVICE]
    assert ssha_matches(dict(records[SERVICE])["userPassword"], "s3cret")

    for agency in agencies:
        record = records[f"uid={agency.code},ou=agencies,{BASE}"]
        values = {name: [value.encode()] for name, value in record if name in MAPPED}
        assert values == expected_attributes(agency)
        assert ssha_matches(dict(record)["userPassword"], f"demo-{agency.code}")

    user = dict(records[f"uid=dabir.edu,uid=edu,ou=agencies,{BASE}"])
    assert "businessCategory" not in user
    assert ssha_matches(user["userPassword"], "demo-dabir.edu")


def test_ldif_escapes_dn_values_and_rejects_orphans() -> None:
    odd = Agency(code="a,b+c", name_fa="الف", name_en="A", kind="x", phase=1)
    text = agencies_ldif(
        BASE, [odd], password_for=demo_password, service_dn=SERVICE, service_password="s"
    )
    assert f"dn: uid=a\\,b\\+c,ou=agencies,{BASE}" in text.splitlines()
    with pytest.raises(ValueError, match="unknown agency"):
        agencies_ldif(
            BASE,
            [odd],
            password_for=demo_password,
            service_dn=SERVICE,
            service_password="s",
            users={"edu": ["dabir.edu"]},
        )
    with pytest.raises(ValueError, match="twice"):
        agencies_ldif(
            BASE, [odd, odd], password_for=demo_password, service_dn=SERVICE, service_password="s"
        )


# -- a real slapd ---------------------------------------------------------------------


def require_slapd() -> None:
    try:
        find_slapd()
    except SlapdNotFound as exc:
        pytest.skip(str(exc))


def connect(directory: Slapd, user: str | None = None, password: str | None = None) -> Any:
    """A plain SYNC connection, used and closed inside one test."""
    server = ldap3.Server(directory.url, get_info=ldap3.NONE, connect_timeout=5)
    return ldap3.Connection(
        server, user=user, password=password, client_strategy=ldap3.SYNC, receive_timeout=5
    )


def agency_dn(directory: Slapd, code: str) -> str:
    return f"uid={code},ou=agencies,{directory.base_dn}"


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory, agencies: list[Agency]) -> Iterator[Slapd]:
    require_slapd()
    directory = Slapd(tmp_path_factory.mktemp("slapd"))
    directory.seed(agencies, users={"edu": ["dabir.edu"]})
    with directory:
        yield directory


@pytest.mark.slapd
def test_service_account_reads_every_agency_as_mapped(slapd: Slapd, agencies: list[Agency]) -> None:
    connection = connect(slapd, slapd.service_dn, slapd.service_password)
    assert connection.bind(), connection.result
    try:
        connection.search(
            f"ou=agencies,{slapd.base_dn}",
            AGENCY_FILTER,
            search_scope=ldap3.SUBTREE,
            attributes=[*MAPPED, "userPassword"],
        )
        found = {
            entry["raw_attributes"]["uid"][0].decode(): entry["raw_attributes"]
            for entry in connection.response
            if entry["type"] == "searchResEntry"
        }
    finally:
        connection.unbind()

    assert len(found) == len(agencies) == 181
    for agency in agencies:
        raw = {name: values for name, values in found[agency.code].items() if values}
        # Persian names come back byte for byte, zero-width non-joiners included.
        assert raw == expected_attributes(agency), agency.code


@pytest.mark.slapd
def test_agencies_and_users_bind_with_their_passwords(slapd: Slapd) -> None:
    edu = connect(slapd, agency_dn(slapd, "edu"), "demo-edu")
    assert edu.bind(), edu.result
    edu.unbind()

    wrong = connect(slapd, agency_dn(slapd, "edu"), "demo-welfare")
    assert not wrong.bind()
    assert wrong.result["description"] == "invalidCredentials"

    user = connect(slapd, f"uid=dabir.edu,{agency_dn(slapd, 'edu')}", "demo-dabir.edu")
    assert user.bind(), user.result
    user.unbind()


@pytest.mark.slapd
def test_anonymous_reads_nothing(slapd: Slapd) -> None:
    anonymous = connect(slapd)
    assert anonymous.bind()
    try:
        anonymous.search(f"ou=agencies,{slapd.base_dn}", "(objectClass=*)", ldap3.SUBTREE)
        assert [e for e in anonymous.response if e["type"] == "searchResEntry"] == []
        anonymous.search(agency_dn(slapd, "edu"), "(objectClass=*)", ldap3.BASE)
        assert [e for e in anonymous.response if e["type"] == "searchResEntry"] == []
    finally:
        anonymous.unbind()


@pytest.mark.slapd
def test_stop_and_start_keep_url_and_data(slapd: Slapd) -> None:
    url = slapd.url
    slapd.stop()
    slapd.stop()  # idempotent
    running = [slapd.is_running]
    with pytest.raises(LDAPSocketOpenError):
        connect(slapd, slapd.service_dn, slapd.service_password).bind()

    slapd.start()
    running.append(slapd.is_running)
    assert running == [False, True]
    assert slapd.url == url
    edu = connect(slapd, agency_dn(slapd, "edu"), "demo-edu")
    assert edu.bind(), edu.result
    edu.unbind()


@pytest.mark.slapd
def test_govnode_schema_adds_an_auxiliary_agency_class(tmp_path: Path) -> None:
    require_slapd()
    directory = Slapd(tmp_path, extra_schema=[GOVNODE_SCHEMA])
    directory.seed([])
    with directory:
        root = connect(directory, directory.root_dn, directory.root_password)
        assert root.bind(), root.result
        try:
            classes = ["top", "person", "organizationalPerson", "inetOrgPerson", "govnodeAgency"]
            added = root.add(
                agency_dn(directory, "edu-dena"),
                classes,
                {
                    "uid": "edu-dena",
                    "cn": "Education Office, Dena",
                    "sn": "edu-dena",
                    "govnodeAgencyCode": "edu-dena",
                    "govnodeNameFa": "اداره آموزش و پرورش شهرستان دنا",
                    "govnodeNameEn": "Education Office, Dena",
                    "govnodeKind": "county-office",
                    "govnodePhase": 3,
                    "govnodeParent": "edu",
                    "govnodeCounty": "dena",
                },
            )
            assert added, root.result
            # The class is enforced: its code is mandatory.
            assert not root.add(agency_dn(directory, "bad"), classes, {"cn": "x", "sn": "x"})
            assert root.result["description"] == "objectClassViolation"

            root.search(
                f"ou=agencies,{directory.base_dn}",
                "(&(objectClass=govnodeAgency)(govnodePhase>=3)(govnodeNameFa=*دنا))",
                ldap3.SUBTREE,
                attributes=["govnodeNameFa"],
            )
            names = [e["raw_attributes"]["govnodeNameFa"] for e in root.response]
            assert names == [["اداره آموزش و پرورش شهرستان دنا".encode()]]
        finally:
            root.unbind()
