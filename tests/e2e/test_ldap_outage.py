"""A directory that goes away: 503 (never 401), the cache keeps answering, recovery."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from govnode.testing.client import AgencyClient
from govnode.testing.home import configure
from govnode.testing.process import NodeProcess
from govnode.testing.pytest_plugin import NodeHome, make_node_home, start_demo_slapd
from govnode.testing.slapd import Slapd


@pytest.fixture(scope="module")
def outage(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Slapd, NodeHome, NodeProcess]]:
    root = tmp_path_factory.mktemp("outage")
    slapd = start_demo_slapd(root / "slapd")
    home = make_node_home(root, slapd, codes=("edu", "welfare"))
    node = NodeProcess(home.path).start()
    yield slapd, home, node
    node.stop()
    slapd.stop()


def client_of(home: NodeHome, node: NodeProcess, code: str) -> AgencyClient:
    files = home.clients[code]
    return AgencyClient(node.api_url, files.ca, files.cert, files.key)


def health(node: NodeProcess) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"{node.admin_url}/healthz", timeout=10) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_ldap_down_is_503_then_recovers(
    outage: tuple[Slapd, NodeHome, NodeProcess],
) -> None:
    slapd, home, node = outage
    edu = client_of(home, node, "edu")
    assert edu.login("edu", "demo-edu").status == 200
    assert health(node)[0] == 200
    slapd.stop()
    try:
        welfare = client_of(home, node, "welfare")
        down = welfare.login("welfare", "demo-welfare")
        assert down.status == 503
        assert down.error_code == "unavailable"
        assert int(down.headers["retry-after"]) > 0
        wrong = welfare.login("welfare", "a wrong password")
        assert wrong.status == 503, "a dead directory must not look like bad credentials"
        # Logged-in agencies keep working: tokens and the directory cache need no LDAP.
        search = edu.request("GET", "/api/v1/directory", query={"q": "بهزیستی"})
        assert search.status == 200
        assert search.json()["total"] == 9
        status, body = health(node)
        assert status == 503
        assert body["checks"]["database"] == "ok"  # type: ignore[index]
        assert body["checks"]["ldap"] != "ok"  # type: ignore[index]
    finally:
        slapd.start()
    assert client_of(home, node, "welfare").login("welfare", "demo-welfare").status == 200
    assert health(node)[0] == 200


def test_failed_logins_lock_the_username_out(
    outage: tuple[Slapd, NodeHome, NodeProcess],
) -> None:
    _, home, node = outage
    client = client_of(home, node, "welfare")
    for _ in range(home.config.limits.lockout_failures):
        assert client.login("welfare", "guess").status == 401
    locked = client.login("welfare", "demo-welfare")  # even the right password
    assert locked.status == 429
    assert locked.error_code == "locked_out"
    retry_after = int(locked.headers["retry-after"])
    assert 0 < retry_after <= home.config.limits.lockout_window
    # The lock is per username, and case does not get around it.
    assert client.login("WELFARE", "demo-welfare").status == 429
    assert client_of(home, node, "edu").login("edu", "demo-edu").status == 200


def test_a_directory_that_accepts_but_never_answers_times_out(tmp_path: Path) -> None:
    """A hung LDAP server must cost a bounded wait and a 503, not a hung login."""
    import socket
    import time
    from dataclasses import replace

    from govnode.config.model import AttributeMap, LdapSection
    from govnode.directory.errors import DirectoryUnavailable
    from govnode.directory.ldap import LdapDirectory

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        config = LdapSection(
            urls=(f"ldap://127.0.0.1:{port}",),
            base_dn="dc=kb",
            agencies_dn="ou=agencies,dc=kb",
            bind_dn="cn=govnode,dc=kb",
            bind_password="x",
            start_tls=False,
            ca_file=None,
            agency_filter="(objectClass=*)",
            user_filter="(objectClass=*)",
            attributes=AttributeMap(),
            connect_timeout=1.0,
            receive_timeout=1.0,
            sync_interval=300,
            pool_size=1,
        )
        started = time.monotonic()
        with pytest.raises(DirectoryUnavailable):
            LdapDirectory(replace(config)).authenticate_sync("edu", "demo-edu")
        assert time.monotonic() - started < 10


def test_parallel_guesses_cannot_slip_under_the_lockout(
    outage: tuple[Slapd, NodeHome, NodeProcess],
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    _, home, node = outage
    limit = home.config.limits.lockout_failures

    def guess(attempt: int) -> int:
        with client_of(home, node, "edu") as client:
            return client.login("dabir.edu", f"guess-{attempt}").status

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = sorted(pool.map(guess, range(40)))
    assert statuses.count(401) == limit, statuses
    assert statuses.count(429) == 40 - limit


def test_parallel_logins_with_the_right_password_all_succeed(
    govnode_slapd: Slapd, tmp_path: Path
) -> None:
    """An agency's many clients logging in at once are not taken for a guesser,
    even with more node processes than the lockout allows failures."""
    from concurrent.futures import ThreadPoolExecutor

    home = make_node_home(tmp_path, govnode_slapd, codes=("edu",))
    configure(home.path, processes=3, lockout_failures=2)
    logins = 12
    with NodeProcess(home.path) as node:

        def login(_: int) -> int:
            with client_of(home, node, "edu") as client:
                return client.login("edu", "demo-edu").status

        with ThreadPoolExecutor(max_workers=logins) as pool:
            statuses = list(pool.map(login, range(logins)))
        assert statuses == [200] * logins

        # ...while guesses still stop at the limit, across the processes.
        def guess(attempt: int) -> int:
            with client_of(home, node, "edu") as client:
                return client.login("edu", f"guess-{attempt}").status

        with ThreadPoolExecutor(max_workers=logins) as pool:
            guesses = sorted(pool.map(guess, range(logins)))
        assert guesses.count(401) == 2, guesses
        assert guesses.count(429) == logins - 2
