"""Certificates over the years on a running node: `govnode cert renew`, `agency renew`,
`agency revoke` and a new CA bundle, each taken on SIGHUP without dropping the
connections already open; expiry in the log and in /metrics 30 days ahead.

The node runs two API processes (`make_node_home`), so SIGHUP must also reach
the secondary: every check of a new connection is made several times in a row.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from cryptography import x509

from govnode.pki import ca
from govnode.pki.files import write_atomic
from govnode.testing.client import AgencyClient, tls_context
from govnode.testing.home import ClientFiles, add_peer, configure, init_home
from govnode.testing.process import NodeProcess
from govnode.testing.pytest_plugin import NodeHome, make_node_home
from govnode.testing.slapd import Slapd

IN_A_ROW = 6  # new connections that must agree (they land on either process)


@pytest.fixture
def home(tmp_path_factory: pytest.TempPathFactory, govnode_slapd: Slapd) -> NodeHome:
    made = make_node_home(
        tmp_path_factory.mktemp("renewal"), govnode_slapd, codes=("edu", "welfare")
    )
    # A long reload interval, so only SIGHUP can explain a reload.
    configure(made.path, reload_interval=3600.0)
    return made


@pytest.fixture
def node(home: NodeHome) -> Iterator[NodeProcess]:
    process = NodeProcess(home.path).start()
    yield process
    process.stop()


def govnode(home: NodeHome, *argv: str | Path) -> subprocess.CompletedProcess[str]:
    """`govnode --home HOME ARGV` as the sysadmin runs it, beside the running node."""
    done = subprocess.run(
        [sys.executable, "-m", "govnode.cli.main", "--home", str(home.path), *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )
    assert "Traceback" not in done.stderr
    return done


def served_certificate(process: NodeProcess, files: ClientFiles) -> x509.Certificate:
    parts = urlsplit(process.api_url)
    context = tls_context(files.ca, files.cert, files.key)
    with (
        socket.create_connection((parts.hostname, parts.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=parts.hostname) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def answers(process: NodeProcess, ca_file: Path, cert: Path, key: Path) -> bool:
    """Whether a new connection with this client certificate gets an HTTP answer
    (False: the TLS handshake refused it; TLS 1.3 may say so on the first read)."""
    parts = urlsplit(process.api_url)
    connection = http.client.HTTPSConnection(
        parts.hostname or "127.0.0.1",
        parts.port,
        context=tls_context(ca_file, cert, key),
        timeout=10,
    )
    try:
        connection.request("GET", "/api/v1/directory/edu")
        connection.getresponse().read()
    except (ssl.SSLError, ConnectionError, http.client.RemoteDisconnected):
        return False
    finally:
        connection.close()
    return True


def eventually(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    """`check` true IN_A_ROW times in a row (every process has reloaded)."""
    deadline = time.monotonic() + timeout
    streak = 0
    while streak < IN_A_ROW:
        assert time.monotonic() < deadline, what
        streak = streak + 1 if check() else 0
        if not streak:
            time.sleep(0.1)


def metric(process: NodeProcess, name: str, labels: str) -> float:
    """The value of one sample of /metrics, once the node has set it."""
    pattern = re.compile(rf"^{re.escape(name)}{{{re.escape(labels)}}} (\S+)$", re.M)
    deadline = time.monotonic() + 10
    while True:
        with urllib.request.urlopen(f"{process.admin_url}/metrics", timeout=10) as answer:
            found = pattern.search(answer.read().decode())
        if found:
            return float(found[1])
        assert time.monotonic() < deadline, f"no {name}{{{labels}}} in /metrics"
        time.sleep(0.1)


def open_session(process: NodeProcess, files: ClientFiles, code: str) -> AgencyClient:
    client = AgencyClient(process.api_url, files.ca, files.cert, files.key)
    assert client.login(code, f"demo-{code}").status == 200
    assert client.request("GET", "/api/v1/directory/edu").status == 200
    return client


def same_connection_answers(client: AgencyClient) -> None:
    """A request on the connection opened before the reload: answered, same socket."""
    assert client._connection is not None
    sock = client._connection.sock
    assert client.request("GET", "/api/v1/directory/welfare").status == 200
    assert client._connection.sock is sock, "the connection was dropped and reopened"


def test_renewed_server_certificate_on_sighup_keeps_open_connections(
    home: NodeHome, node: NodeProcess
) -> None:
    files = home.clients["edu"]
    established = open_session(node, files, "edu")
    before = served_certificate(node, files)
    server_gauge = 'certificate="server"'
    assert metric(node, "govnode_certificate_expiry_seconds", server_gauge) > 300 * 86400

    renewed = govnode(home, "cert", "renew", "server", "--days", "10")

    assert renewed.returncode == 0, renewed.stderr
    new = x509.load_pem_x509_certificate(home.config.tls.server_cert.read_bytes())
    assert new.serial_number != before.serial_number
    assert served_certificate(node, files).serial_number == before.serial_number
    node.signal(signal.SIGHUP)
    eventually(
        lambda: served_certificate(node, files).serial_number == new.serial_number,
        "SIGHUP did not load the renewed certificate in every process",
    )
    same_connection_answers(established)
    established.close()
    # /metrics follows, and the log warns: ten days is within the 30-day window.
    eventually(
        lambda: metric(node, "govnode_certificate_expiry_seconds", server_gauge) < 10 * 86400,
        "the expiry gauge still shows the old certificate",
    )
    log = node.log_text(200)
    assert re.search(
        r"#warn\] server certificate \S+server\.pem valid until .* \(9 days left\); "
        r"renew: govnode cert renew server",
        log,
    ), log


def test_revoked_agency_is_refused_on_sighup_while_others_go_on(
    home: NodeHome, node: NodeProcess
) -> None:
    edu, welfare = home.clients["edu"], home.clients["welfare"]
    established = open_session(node, welfare, "welfare")
    assert answers(node, edu.ca, edu.cert, edu.key)

    revoked = govnode(home, "agency", "revoke", "edu")

    assert revoked.returncode == 0, revoked.stderr
    node.signal(signal.SIGHUP)
    eventually(
        lambda: not answers(node, edu.ca, edu.cert, edu.key),
        "a revoked agency still gets through after SIGHUP",
    )
    same_connection_answers(established)
    assert answers(node, welfare.ca, welfare.cert, welfare.key)
    established.close()


def test_new_ca_bundle_on_sighup_lets_its_agencies_in(
    home: NodeHome, node: NodeProcess, tmp_path: Path
) -> None:
    """A second CA in `tls.ca_cert` (a CA rollover), with its CRL beside the node's."""
    tls = home.config.tls
    now = datetime.now(UTC)
    other = ca.create_ca("kb", "rollover CA", now=now)
    issued = ca.issue_agency_certificate(
        other.cert_pem, other.key_pem, code="roads", node_id="kb", now=now
    )
    cert, key = tmp_path / "roads.pem", tmp_path / "roads.key"
    cert.write_bytes(issued.cert_pem)
    key.write_bytes(issued.key_pem)
    established = open_session(node, home.clients["welfare"], "welfare")
    assert not answers(node, tls.ca_cert, cert, key)

    other_crl = ca.build_crl(other.cert_pem, other.key_pem, [], now=now, crl_number=1)
    write_atomic(tls.crl, tls.crl.read_bytes() + other_crl)
    write_atomic(tls.ca_cert, tls.ca_cert.read_bytes() + other.cert_pem)
    node.signal(signal.SIGHUP)

    eventually(
        lambda: answers(node, tls.ca_cert, cert, key),
        "the CA added to the bundle is not trusted after SIGHUP",
    )
    same_connection_answers(established)
    established.close()


def test_expiring_certificates_are_logged_at_start_and_in_metrics(
    home: NodeHome, tmp_path: Path
) -> None:
    enrolled = govnode(
        home, "agency", "enroll", "roads", "--out", tmp_path / "roads", "--days", "5"
    )
    assert enrolled.returncode == 0, enrolled.stderr
    node_renewed = govnode(home, "cert", "renew", "node", "--days", "20")
    assert node_renewed.returncode == 0, node_renewed.stderr
    process = NodeProcess(home.path).start()
    try:
        log = process.log_text(200)
        assert re.search(
            r"#warn\] node certificate \S+node\.pem valid until .* \(19 days left\); "
            r"renew: govnode cert renew node",
            log,
        ), log
        assert (
            "#warn] 1 agency certificate(s) expire within 30 days: roads; "
            "renew: govnode agency renew CODE --out DIR"
        ) in log
        assert "server certificate" not in log  # a year left: nothing to say
        expiring = 'within="30d"'
        assert metric(process, "govnode_agency_certificates_expiring", expiring) == 1
        for name, at_most in (("node", 20), ("crl", 30), ("ca", 3650)):
            left = metric(process, "govnode_certificate_expiry_seconds", f'certificate="{name}"')
            assert (at_most - 1) * 86400 < left <= at_most * 86400, name

        renewed = govnode(home, "agency", "renew", "roads", "--out", tmp_path / "roads-2")
        assert renewed.returncode == 0, renewed.stderr
        process.signal(signal.SIGHUP)
        eventually(
            lambda: metric(process, "govnode_agency_certificates_expiring", expiring) == 0,
            "the gauge still counts the renewed agency",
        )
    finally:
        process.stop()


# -- federation: the node certificate and the peers' CAs ---------------------------


def hello(connection: http.client.HTTPSConnection) -> int:
    connection.request("GET", "/federation/v1/hello")
    answer = connection.getresponse()
    answer.read()
    return answer.status


def peer_connection(
    process: NodeProcess, ca_file: Path, cert: Path, key: Path
) -> http.client.HTTPSConnection:
    parts = urlsplit(process.federation_url)
    return http.client.HTTPSConnection(
        parts.hostname or "127.0.0.1",
        parts.port,
        context=tls_context(ca_file, cert, key),
        timeout=10,
    )


def test_federation_takes_a_renewed_node_certificate_and_a_peers_new_ca_on_sighup(
    tmp_path: Path, govnode_slapd: Slapd
) -> None:
    """kb with one peer, center (not running: only its certificates are used here)."""
    center_home = tmp_path / "center"
    center = init_home(center_home, govnode_slapd, node_id="center", name="center")
    (tmp_path / "kb-root").mkdir()
    kb = make_node_home(tmp_path / "kb-root", govnode_slapd, codes=())
    add_peer(kb.path, center, "https://127.0.0.1:9")
    configure(kb.path, reload_interval=3600.0, processes=1, federation="127.0.0.1:0")
    kb_ca = kb.config.tls.ca_cert
    center_tls = center.tls
    # center after a CA rollover: a new CA and a node certificate from it.
    now = datetime.now(UTC)
    new_ca = ca.create_ca("center", "center, new CA", now=now)
    new_node = ca.issue_node_certificate(
        new_ca.cert_pem,
        new_ca.key_pem,
        node_id="center",
        dns_names=["localhost"],
        ip_addresses=["127.0.0.1"],
        now=now,
    )
    new_cert, new_key = tmp_path / "center-new.pem", tmp_path / "center-new.key"
    new_cert.write_bytes(new_node.cert_pem)
    new_key.write_bytes(new_node.key_pem)

    process = NodeProcess(kb.path).start()
    try:
        established = peer_connection(process, kb_ca, center_tls.node_cert, center_tls.node_key)
        assert hello(established) == 200
        later = peer_connection(process, kb_ca, new_cert, new_key)
        with pytest.raises((ssl.SSLError, ConnectionError, http.client.RemoteDisconnected)):
            hello(later)
        later.close()

        renewed = govnode(kb, "cert", "renew", "node")
        assert renewed.returncode == 0, renewed.stderr
        peer_ca = kb.path / "peers" / "center-ca.pem"
        write_atomic(peer_ca, peer_ca.read_bytes() + new_ca.cert_pem)
        process.signal(signal.SIGHUP)

        new_serial = x509.load_pem_x509_certificate(
            kb.config.tls.node_cert.read_bytes()
        ).serial_number

        def renewed_and_trusted() -> bool:
            """A new connection of center's new certificate: let in, named center
            (200, not 403), and served kb's renewed node certificate."""
            fresh = peer_connection(process, kb_ca, new_cert, new_key)
            try:
                if hello(fresh) != 200:
                    return False
                der = fresh.sock.getpeercert(binary_form=True)
            except (ssl.SSLError, ConnectionError, http.client.RemoteDisconnected):
                return False  # not reloaded yet
            finally:
                fresh.close()
            assert der is not None
            return x509.load_der_x509_certificate(der).serial_number == new_serial

        eventually(renewed_and_trusted, "the renewed node certificate and center's new CA")
        sock = established.sock
        assert hello(established) == 200
        assert established.sock is sock, "the peer's connection was dropped"
        established.close()
    finally:
        process.stop()
