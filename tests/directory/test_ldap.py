"""The LDAP client against real slapd: sync, login, server lists, TLS, attribute maps."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import ldap3
import pytest

from govnode.config.model import AttributeMap, LdapSection
from govnode.directory.errors import DirectoryUnavailable, InvalidCredentials
from govnode.directory.ldap import Identity, LdapDirectory
from govnode.pki import ca
from govnode.pki.files import write_private
from govnode.testing.demo_data import demo_file, load_agencies
from govnode.testing.pytest_plugin import DEMO_USERS
from govnode.testing.slapd import Slapd

REPOSITORY = Path(__file__).resolve().parents[2]
AGENCIES = load_agencies(demo_file("agencies.csv"))


def section(slapd: Slapd, **changes: object) -> LdapSection:
    config = LdapSection(
        urls=(slapd.url,),
        base_dn=slapd.base_dn,
        agencies_dn=f"ou=agencies,{slapd.base_dn}",
        bind_dn=slapd.service_dn,
        bind_password=slapd.service_password,
        start_tls=False,
        ca_file=None,
        agency_filter="(&(objectClass=inetOrgPerson)(businessCategory=*))",
        user_filter="(objectClass=inetOrgPerson)",
        attributes=AttributeMap(),
        connect_timeout=2.0,
        receive_timeout=2.0,
        sync_interval=300.0,
        pool_size=2,
    )
    return replace(config, **changes)  # type: ignore[arg-type]


def dead_url() -> str:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"ldap://127.0.0.1:{probe.getsockname()[1]}"  # closed again: refuses


def test_sync_reads_every_agency_exactly(govnode_slapd: Slapd) -> None:
    found = LdapDirectory(section(govnode_slapd)).fetch_agencies_sync()
    assert len(found) == len(AGENCIES)
    assert {agency for agency, _ in found} == set(AGENCIES)  # Persian names byte for byte
    dns = {agency.code: dn for agency, dn in found}
    assert dns["edu"] == f"uid=edu,ou=agencies,{govnode_slapd.base_dn}"


def test_agency_and_user_logins(govnode_slapd: Slapd) -> None:
    directory = LdapDirectory(section(govnode_slapd))
    assert directory.authenticate_sync("edu", "demo-edu") == Identity(
        "edu", "edu", f"uid=edu,ou=agencies,{govnode_slapd.base_dn}"
    )
    user = directory.authenticate_sync("dabir.edu", "demo-dabir.edu")
    assert (user.agency, user.user) == ("edu", "dabir.edu")
    for username, password in [
        ("edu", "wrong"),
        ("nobody", "demo-nobody"),
        ("edu", ""),
        ("", "x"),
        ("*", "demo-edu"),
        ("x" * 300, "demo-edu"),
    ]:
        with pytest.raises(InvalidCredentials):
            directory.authenticate_sync(username, password)


def test_servers_are_tried_in_order(govnode_slapd: Slapd) -> None:
    directory = LdapDirectory(section(govnode_slapd, urls=(dead_url(), govnode_slapd.url)))
    assert directory.authenticate_sync("welfare", "demo-welfare").agency == "welfare"
    nowhere = LdapDirectory(section(govnode_slapd, urls=(dead_url(), dead_url())))
    started = time.monotonic()
    with pytest.raises(DirectoryUnavailable, match="unreachable"):
        nowhere.authenticate_sync("welfare", "demo-welfare")
    assert time.monotonic() - started < 2, "a refusing server must cost no waiting"


def test_a_refused_service_account_is_unavailable_not_bad_credentials(
    govnode_slapd: Slapd,
) -> None:
    directory = LdapDirectory(section(govnode_slapd, bind_password="not-the-password"))
    with pytest.raises(DirectoryUnavailable, match="service account"):
        directory.authenticate_sync("edu", "demo-edu")


@pytest.fixture(scope="module")
def tls_slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Slapd, Path]]:
    """A slapd with a certificate from its own CA, on ldap:// (StartTLS) and ldaps://."""
    root = tmp_path_factory.mktemp("ldap-tls")
    now = datetime.now(UTC)
    authority = ca.create_ca("ldap", "Province directory CA", now=now)
    server = ca.issue_server_certificate(
        authority.cert_pem,
        authority.key_pem,
        node_id="ldap",
        dns_names=["localhost"],
        ip_addresses=["127.0.0.1"],
        now=now,
    )
    (root / "ca.pem").write_bytes(authority.cert_pem)
    (root / "server.pem").write_bytes(server.cert_pem)
    write_private(root / "server.key", server.key_pem)
    slapd = Slapd(
        root / "slapd",
        tls=(root / "server.pem", root / "server.key"),
        extra_schema=[REPOSITORY / "etc" / "ldap" / "govnode.schema"],
    )
    # Two users with one uid, under different agencies: a login by it is ambiguous.
    slapd.seed(AGENCIES[:5], users={**DEMO_USERS, "ostandari": ["twin"], "health-univ": ["twin"]})
    slapd.start()
    yield slapd, root / "ca.pem"
    slapd.stop()


def test_ldaps_and_start_tls_verify_the_directory(
    tls_slapd: tuple[Slapd, Path], tmp_path: Path
) -> None:
    slapd, ca_file = tls_slapd
    over_ldaps = LdapDirectory(section(slapd, urls=(slapd.ldaps_url,), ca_file=ca_file))
    assert over_ldaps.authenticate_sync("edu", "demo-edu").agency == "edu"
    with_start_tls = LdapDirectory(section(slapd, start_tls=True, ca_file=ca_file))
    assert len(with_start_tls.fetch_agencies_sync()) == 5
    stranger = ca.create_ca("x", "Some other CA", now=datetime.now(UTC))
    (tmp_path / "other.pem").write_bytes(stranger.cert_pem)
    for config in (
        section(slapd, urls=(slapd.ldaps_url,), ca_file=tmp_path / "other.pem"),
        section(slapd, start_tls=True, ca_file=tmp_path / "other.pem"),
    ):
        with pytest.raises(DirectoryUnavailable):
            LdapDirectory(config).authenticate_sync("edu", "demo-edu")


def test_ldaps_verifies_against_the_system_cas_when_no_ca_file_is_set(
    tls_slapd: tuple[Slapd, Path],
) -> None:
    slapd, _ = tls_slapd
    with pytest.raises(DirectoryUnavailable):
        LdapDirectory(section(slapd, urls=(slapd.ldaps_url,))).authenticate_sync("edu", "demo-edu")


def test_ambiguous_usernames_are_bad_credentials_not_an_outage(
    tls_slapd: tuple[Slapd, Path],
) -> None:
    slapd, _ = tls_slapd
    with pytest.raises(InvalidCredentials):
        LdapDirectory(section(slapd)).authenticate_sync("twin", "demo-twin")


def test_logins_can_be_confined_to_one_agency(govnode_slapd: Slapd) -> None:
    directory = LdapDirectory(section(govnode_slapd))
    edu = f"uid=edu,ou=agencies,{govnode_slapd.base_dn}"
    welfare = f"uid=welfare,ou=agencies,{govnode_slapd.base_dn}"
    assert directory.authenticate_sync("dabir.edu", "demo-dabir.edu", within=edu).agency == "edu"
    with pytest.raises(InvalidCredentials):
        directory.authenticate_sync("edu", "demo-edu", within=welfare)
    with pytest.raises(InvalidCredentials):
        directory.authenticate_sync("edu", "demo-edu", within=f"uid=gone,{welfare}")


def test_dedicated_schema_through_the_attribute_map(tls_slapd: tuple[Slapd, Path]) -> None:
    slapd, _ = tls_slapd
    dn = f"uid=water-x,ou=agencies,{slapd.base_dn}"
    with ldap3.Connection(
        ldap3.Server(slapd.url), slapd.root_dn, slapd.root_password, auto_bind=True
    ) as admin:
        assert admin.add(
            dn,
            ["inetOrgPerson", "govnodeAgency"],
            {
                "uid": "water-x",
                "cn": "water-x",
                "sn": "water-x",
                "userPassword": "demo-water-x",
                "govnodeAgencyCode": "water-x",
                "govnodeNameFa": "شرکت آب منطقه‌ای",
                "govnodeNameEn": "Regional Water Company",
                "govnodeKind": "company",
                "govnodePhase": "2",
                "govnodeCounty": "dena",
            },
        ), admin.result
    mapped = AttributeMap(
        code="govnodeAgencyCode",
        name_fa="govnodeNameFa",
        name_en="govnodeNameEn",
        kind="govnodeKind",
        phase="govnodePhase",
        parent="govnodeParent",
        county="govnodeCounty",
    )
    directory = LdapDirectory(
        section(
            slapd,
            attributes=mapped,
            agency_filter="(objectClass=govnodeAgency)",
            user_filter="(objectClass=govnodeAgency)",
        )
    )
    ((agency, found_dn),) = directory.fetch_agencies_sync()
    assert found_dn == dn
    assert (agency.code, agency.name_fa, agency.kind, agency.phase, agency.county) == (
        "water-x",
        "شرکت آب منطقه‌ای",
        "company",
        2,
        "dena",
    )
    assert directory.authenticate_sync("water-x", "demo-water-x").agency == "water-x"


def test_a_code_used_twice_in_the_directory_is_synced_once(tls_slapd: tuple[Slapd, Path]) -> None:
    slapd, _ = tls_slapd
    nested = f"uid=edu,uid=ostandari,ou=agencies,{slapd.base_dn}"
    with ldap3.Connection(
        ldap3.Server(slapd.url), slapd.root_dn, slapd.root_password, auto_bind=True
    ) as admin:
        assert admin.add(
            nested,
            ["inetOrgPerson"],
            {
                "uid": "edu",
                "cn": "copy",
                "sn": "edu",
                "o": "نسخه",
                "businessCategory": "x",
                "employeeType": "1",
            },
        ), admin.result
    try:
        found = LdapDirectory(section(slapd)).fetch_agencies_sync()
        assert [agency.code for agency, _ in found].count("edu") == 1
    finally:
        with ldap3.Connection(
            ldap3.Server(slapd.url), slapd.root_dn, slapd.root_password, auto_bind=True
        ) as admin:
            admin.delete(nested)
