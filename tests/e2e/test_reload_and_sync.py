"""A running node picks up new certificates on SIGHUP and new agencies by itself."""

from __future__ import annotations

import signal
import socket
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import urlsplit

import ldap3
import pytest
from cryptography import x509

from govnode.pki import ca
from govnode.pki.files import write_atomic, write_private
from govnode.testing.client import AgencyClient, tls_context
from govnode.testing.home import configure
from govnode.testing.process import NodeProcess
from govnode.testing.pytest_plugin import NodeHome, make_node_home
from govnode.testing.slapd import Slapd


@pytest.fixture
def node(
    tmp_path_factory: pytest.TempPathFactory, govnode_slapd: Slapd
) -> Iterator[tuple[NodeHome, NodeProcess]]:
    home = make_node_home(tmp_path_factory.mktemp("reload"), govnode_slapd, codes=("edu",))
    # A long reload interval, so only SIGHUP can explain a reload.
    configure(home.path, reload_interval=3600.0, sync_interval=1.0)
    process = NodeProcess(home.path).start()
    yield home, process
    process.stop()


def served_serial(home: NodeHome, process: NodeProcess) -> int:
    files = home.clients["edu"]
    parts = urlsplit(process.api_url)
    context = tls_context(files.ca, files.cert, files.key)
    with (
        socket.create_connection((parts.hostname, parts.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=parts.hostname) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def test_sighup_serves_a_renewed_server_certificate(
    node: tuple[NodeHome, NodeProcess],
) -> None:
    home, process = node
    files = home.clients["edu"]
    established = AgencyClient(process.api_url, files.ca, files.cert, files.key)
    assert established.login("edu", "demo-edu").status == 200
    before = served_serial(home, process)
    tls = home.config.tls
    renewed = ca.issue_server_certificate(
        tls.ca_cert.read_bytes(),
        tls.ca_key.read_bytes(),
        node_id="kb",
        dns_names=["localhost"],
        ip_addresses=["127.0.0.1"],
        now=datetime.now(UTC),
    )
    write_private(tls.server_key, renewed.key_pem)
    write_atomic(tls.server_cert, renewed.cert_pem)
    time.sleep(0.5)
    assert served_serial(home, process) == before, "reloaded without being asked"
    process.signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while served_serial(home, process) != renewed.serial:
        assert time.monotonic() < deadline, "SIGHUP did not load the renewed certificate"
        time.sleep(0.1)
    # The connection opened before the reload still works (same socket).
    socket_before = established._connection.sock  # type: ignore[union-attr]
    assert established.request("GET", "/api/v1/directory/edu").status == 200
    assert established._connection.sock is socket_before  # type: ignore[union-attr]
    established.close()


def test_agencies_added_to_ldap_appear_without_a_restart(
    node: tuple[NodeHome, NodeProcess], govnode_slapd: Slapd
) -> None:
    home, process = node
    dn = f"uid=pilot-office,ou=agencies,{govnode_slapd.base_dn}"
    with ldap3.Connection(
        ldap3.Server(govnode_slapd.url),
        govnode_slapd.root_dn,
        govnode_slapd.root_password,
        auto_bind=True,
    ) as admin:
        assert admin.add(
            dn,
            ["inetOrgPerson"],
            {
                "uid": "pilot-office",
                "sn": "pilot-office",
                "cn": "Pilot Office",
                "o": "دفتر آزمایشی",
                "businessCategory": "organization",
                "employeeType": "2",
                "l": "boyer-ahmad",
            },
        ), admin.result
    try:
        files = home.clients["edu"]
        with AgencyClient(process.api_url, files.ca, files.cert, files.key) as client:
            assert client.login("edu", "demo-edu").status == 200
            deadline = time.monotonic() + 10
            while client.request("GET", "/api/v1/directory/pilot-office").status != 200:
                assert time.monotonic() < deadline, "the new agency never appeared"
                time.sleep(0.2)
            found = client.request("GET", "/api/v1/directory", query={"q": "آزمايشي"}).json()
            assert [a["code"] for a in found["agencies"]] == ["pilot-office"]
    finally:
        with ldap3.Connection(
            ldap3.Server(govnode_slapd.url),
            govnode_slapd.root_dn,
            govnode_slapd.root_password,
            auto_bind=True,
        ) as admin:
            admin.delete(dn)


def test_authenticated_requests_cost_no_ldap_call(
    node: tuple[NodeHome, NodeProcess],
) -> None:
    home, process = node

    def binds() -> float:
        with urllib.request.urlopen(f"{process.admin_url}/metrics", timeout=10) as answer:
            for line in answer.read().decode().splitlines():
                if line.startswith('govnode_ldap_request_seconds_count{operation="bind"}'):
                    return float(line.split()[-1])
        return 0.0

    files = home.clients["edu"]
    with AgencyClient(process.api_url, files.ca, files.cert, files.key) as client:
        assert client.login("edu", "demo-edu").status == 200
        after_login = binds()
        assert after_login >= 1
        for _ in range(20):
            assert client.request("GET", "/api/v1/directory", query={"q": "edu"}).status == 200
        assert binds() == after_login
