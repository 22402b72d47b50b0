"""`govnode directory sync` and the commands that need LDAP, against a slapd of our own.

These tests add entries to the directory and stop it, so they start a private
slapd for this module instead of sharing the session's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import ldap3
import pytest

from govnode.testing.home import init_home, sync_directory
from govnode.testing.pytest_plugin import start_demo_slapd
from govnode.testing.slapd import Slapd
from tests.cli.support import DEMO_AGENCIES, Govnode

NEW_OFFICE = {
    "uid": "edu-sisakht",
    "o": "اداره آموزش و پرورش شهر سی‌سخت",
    "cn": "Education Office, Sisakht",
    "sn": "edu-sisakht",
    "businessCategory": "county-office",
    "employeeType": "3",
    "ou": "edu",
    "l": "dena",
}
PERSON = ["top", "person", "organizationalPerson", "inetOrgPerson"]


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    server = start_demo_slapd(tmp_path_factory.mktemp("cli-slapd"))
    yield server
    server.stop()


@pytest.fixture
def node(tmp_path: Path, slapd: Slapd, capsys: pytest.CaptureFixture[str]) -> Govnode:
    home = tmp_path / "kb"
    sync_directory(init_home(home, slapd))
    return Govnode(capsys, home)


@pytest.fixture
def ldap_root(slapd: Slapd) -> Iterator[ldap3.Connection]:
    """A connection as the rootdn, to change the directory the way its administrator does."""
    conn = ldap3.Connection(
        ldap3.Server(slapd.url, get_info=ldap3.NONE),
        user=slapd.root_dn,
        password=slapd.root_password,
        auto_bind=True,
        receive_timeout=5,
    )
    yield conn
    conn.unbind()


def test_sync_pulls_a_new_agency_and_drops_a_removed_one(
    node: Govnode, slapd: Slapd, ldap_root: ldap3.Connection, tmp_path: Path
) -> None:
    total = len(DEMO_AGENCIES)
    dn = f"uid={NEW_OFFICE['uid']},ou=agencies,{slapd.base_dn}"
    assert ldap_root.add(dn, PERSON, NEW_OFFICE), ldap_root.result
    try:
        assert "edu-sisakht" not in node.agencies()

        synced = node("directory", "sync")

        assert synced.code == 0, synced.err
        assert synced.out == f"synced {total + 1} agencies from {slapd.url} (0 removed)\n"
        listed = node.agencies()
        assert listed["edu-sisakht"] == {
            "code": "edu-sisakht",
            "name": NEW_OFFICE["o"],
            "phase": 3,
            "status": "pending",
            "certificate_expires": None,
        }
        # Now it is in the directory, it can be enrolled.
        enrolled = node("agency", "enroll", "edu-sisakht", "--out", tmp_path / "sisakht")
        assert enrolled.code == 0, enrolled.err
        assert enrolled.out.startswith(f"enrolled edu-sisakht@kb ({NEW_OFFICE['o']})")
    finally:
        assert ldap_root.delete(dn), ldap_root.result

    resynced = node("directory", "sync")
    assert resynced.code == 0, resynced.err
    assert resynced.out == f"synced {total} agencies from {slapd.url} (1 removed)\n"
    assert "edu-sisakht" not in node.agencies()


def test_with_ldap_down_sync_and_check_fail_and_the_cache_stays(
    node: Govnode, slapd: Slapd, tmp_path: Path
) -> None:
    before = node.agencies()
    slapd.stop()
    try:
        synced = node("directory", "sync")
        assert synced.code == 1
        assert synced.err.startswith("govnode: directory sync failed: LDAP unreachable")
        assert slapd.url.removeprefix("ldap://") in synced.err
        assert synced.err.count("\n") == 1
        assert node.agencies() == before, "a failed sync keeps the cache"

        check = node("check")
        assert check.code == 1
        failed = [line for line in check.out.splitlines() if line.startswith("FAIL")]
        assert len(failed) == 1
        assert failed[0].startswith("FAIL   ldap: LDAP unreachable")
        assert check.out.splitlines()[-1] == "1 problem(s)"

        unknown = node("agency", "enroll", "not-cached", "--out", tmp_path / "x")
        assert unknown.code == 1
        assert "LDAP cannot be reached" in unknown.err
        assert not (tmp_path / "x").exists()
    finally:
        slapd.start()

    assert node("directory", "sync").code == 0
    assert node("check").code == 0
