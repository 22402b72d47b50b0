"""The agency listener refuses every client certificate it must refuse, in the handshake."""

from __future__ import annotations

import ssl
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from govnode.cli.main import main as govnode
from govnode.pki import ca
from govnode.pki.files import write_private
from govnode.testing.client import AgencyClient
from govnode.testing.home import enroll
from govnode.testing.process import NodeProcess
from govnode.testing.pytest_plugin import NodeHome

HANDSHAKE_REFUSED = (ssl.SSLError, ConnectionResetError, BrokenPipeError)


def handshake(node: NodeProcess, ca_file: Path, cert: Path | None, key: Path | None) -> int:
    """Status of an unauthenticated GET; raises when the TLS handshake is refused."""
    client = AgencyClient(node.api_url, ca_file, cert, key, timeout=10)
    try:
        return client.request("GET", "/api/v1/directory").status
    finally:
        client.close()


def write_pair(folder: Path, issued: ca.Issued) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "cert.pem", folder / "key.pem"
    cert.write_bytes(issued.cert_pem)
    write_private(key, issued.key_pem)
    return cert, key


def node_ca(home: NodeHome) -> tuple[bytes, bytes]:
    return home.config.tls.ca_cert.read_bytes(), home.config.tls.ca_key.read_bytes()


def test_a_valid_certificate_gets_through(
    govnode_home: NodeHome, govnode_node: NodeProcess
) -> None:
    files = govnode_home.clients["edu"]
    assert handshake(govnode_node, files.ca, files.cert, files.key) == 401  # TLS ok, no token


def test_no_client_certificate_is_refused(
    govnode_home: NodeHome, govnode_node: NodeProcess
) -> None:
    with pytest.raises(HANDSHAKE_REFUSED):
        handshake(govnode_node, govnode_home.config.tls.ca_cert, None, None)


def test_certificate_of_another_ca_is_refused(
    govnode_home: NodeHome, govnode_node: NodeProcess, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    other = ca.create_ca("kb", "an impostor CA with the same name", now=now)
    cert, key = write_pair(
        tmp_path,
        ca.issue_agency_certificate(
            other.cert_pem, other.key_pem, code="edu", node_id="kb", now=now
        ),
    )
    with pytest.raises(HANDSHAKE_REFUSED):
        handshake(govnode_node, govnode_home.config.tls.ca_cert, cert, key)


@pytest.mark.parametrize(
    ("issued_days_ago", "valid_days"), [(800, 730), (-30, 730)], ids=["expired", "not-yet-valid"]
)
def test_certificate_outside_its_validity_is_refused(
    govnode_home: NodeHome,
    govnode_node: NodeProcess,
    tmp_path: Path,
    issued_days_ago: int,
    valid_days: int,
) -> None:
    ca_cert, ca_key = node_ca(govnode_home)
    issued = ca.issue_agency_certificate(
        ca_cert,
        ca_key,
        code="edu",
        node_id="kb",
        now=datetime.now(UTC) - timedelta(days=issued_days_ago),
        valid_days=valid_days,
    )
    cert, key = write_pair(tmp_path, issued)
    with pytest.raises(HANDSHAKE_REFUSED):
        handshake(govnode_node, govnode_home.config.tls.ca_cert, cert, key)


def test_server_certificate_cannot_serve_as_a_client_certificate(
    govnode_home: NodeHome, govnode_node: NodeProcess
) -> None:
    tls = govnode_home.config.tls
    with pytest.raises(HANDSHAKE_REFUSED):
        handshake(govnode_node, tls.ca_cert, tls.server_cert, tls.server_key)


def test_revoked_while_running_is_refused_within_seconds(
    govnode_home: NodeHome, govnode_node: NodeProcess, tmp_path: Path
) -> None:
    files = enroll(govnode_home.config, ["tax"], tmp_path)["tax"]
    assert handshake(govnode_node, files.ca, files.cert, files.key) == 401
    assert govnode(["--home", str(govnode_home.path), "agency", "revoke", "tax"]) == 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            handshake(govnode_node, files.ca, files.cert, files.key)
        except HANDSHAKE_REFUSED:
            break
        time.sleep(0.2)
    else:
        pytest.fail("the revoked certificate was still accepted after 10 s")
    # Other agencies are untouched by the reload.
    edu = govnode_home.clients["edu"]
    assert handshake(govnode_node, edu.ca, edu.cert, edu.key) == 401


def test_revocation_also_ends_connections_opened_before_it(
    govnode_home: NodeHome, govnode_node: NodeProcess, tmp_path: Path
) -> None:
    files = enroll(govnode_home.config, ["natres"], tmp_path)["natres"]
    client = AgencyClient(govnode_node.api_url, files.ca, files.cert, files.key)
    assert client.login("natres", "demo-natres").status == 200
    assert client.request("GET", "/api/v1/directory/natres").status == 200
    connection = client._connection
    assert govnode(["--home", str(govnode_home.path), "agency", "revoke", "natres"]) == 0
    deadline = time.monotonic() + 10
    while (refused := client.request("GET", "/api/v1/directory/natres")).status == 200:
        assert time.monotonic() < deadline, "the open connection kept working"
        time.sleep(0.1)
    assert client._connection is connection, "the test must reuse the open connection"
    assert (refused.status, refused.error_code) == (403, "forbidden")
    login = client.login("natres", "demo-natres")
    assert login.status == 403
    client.close()


def test_tokens_are_bound_to_the_certificate_they_were_issued_over(
    govnode_home: NodeHome, govnode_node: NodeProcess, tmp_path: Path
) -> None:
    first = enroll(govnode_home.config, ["literacy"], tmp_path / "1")["literacy"]
    with AgencyClient(govnode_node.api_url, first.ca, first.cert, first.key) as old:
        assert old.login("literacy", "demo-literacy").status == 200
        token = old.token
    # A second valid certificate of the same agency (say, its other office) may not
    # carry a token that was issued over the first: a stolen token alone is useless.
    second = enroll(govnode_home.config, ["literacy"], tmp_path / "2")["literacy"]
    with AgencyClient(govnode_node.api_url, second.ca, second.cert, second.key) as new:
        response = new.request("GET", "/api/v1/directory", token=token)
        assert (response.status, response.error_code) == (401, "unauthenticated")
        assert new.login("literacy", "demo-literacy").status == 200
        assert new.request("GET", "/api/v1/directory").status == 200
