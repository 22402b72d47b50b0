"""Mutual TLS against real sockets on 127.0.0.1: who gets in, who is refused, and reloads.

The server is the Twisted stack the node uses (``TLSMemoryBIOFactory`` around
``ServerTLS``) answering a greeting that names the agency it saw, then a line
echo. Clients are Python's ``ssl`` module and ``openssl s_client`` in threads
(never on the reactor), so what is tested is the wire behaviour an agency's
software meets, not our own view of it. Every socket has a timeout.
"""

from __future__ import annotations

import re
import socket
import ssl
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
import pytest_twisted
from service_identity import VerificationError
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import SSL4ClientEndpoint, connectProtocol
from twisted.internet.interfaces import IHandshakeListener, ITCPTransport
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.threads import deferToThread
from twisted.protocols.basic import LineOnlyReceiver
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from zope.interface import implementer

from govnode.pki import ca
from govnode.pki.errors import CertificateFileError, PkiError
from govnode.pki.files import read_pem, write_atomic, write_private
from govnode.pki.identity import agency_code_from_certificate
from govnode.pki.tls import (
    MOZILLA_INTERMEDIATE_CIPHERS,
    ServerTLS,
    client_tls_options,
    peer_certificate,
)

NODE = "kb"
TIMEOUT = 5.0  # seconds, for every socket and every wait on the reactor


def _reactor() -> Any:
    """The reactor pytest-twisted runs (untyped in Twisted, hence ``Any``)."""
    from twisted.internet import reactor

    return reactor


# --- a throwaway PKI on disk -------------------------------------------------


@dataclass(frozen=True)
class ClientFiles:
    issued: ca.Issued
    cert_path: Path
    key_path: Path


@dataclass
class Pki:
    """A node CA, the server certificate and a CRL in ``tmp_path``, as the node keeps them."""

    root: Path
    authority: ca.Issued
    server: ca.Issued
    crl_number: int = 1
    revoked: list[tuple[int, datetime]] = field(default_factory=list)

    @property
    def cert_path(self) -> Path:
        return self.root / "server.pem"

    @property
    def key_path(self) -> Path:
        return self.root / "server.key"

    @property
    def ca_path(self) -> Path:
        return self.root / "ca.pem"

    @property
    def crl_path(self) -> Path:
        return self.root / "crl.pem"

    def write(self) -> None:
        write_atomic(self.ca_path, self.authority.cert_pem)
        write_atomic(self.cert_path, self.server.cert_pem)
        write_private(self.key_path, self.server.key_pem)
        self.write_crl()

    def write_crl(self) -> None:
        crl = ca.build_crl(
            self.authority.cert_pem,
            self.authority.key_pem,
            self.revoked,
            now=datetime.now(UTC),
            crl_number=self.crl_number,
        )
        write_atomic(self.crl_path, crl)

    def revoke(self, serial: int) -> None:
        self.revoked.append((serial, datetime.now(UTC)))
        self.crl_number += 1
        self.write_crl()

    def agency(self, code: str, *, now: datetime | None = None) -> ClientFiles:
        issued = ca.issue_agency_certificate(
            self.authority.cert_pem,
            self.authority.key_pem,
            code=code,
            node_id=NODE,
            now=now or datetime.now(UTC),
        )
        return _client_files(self.root, code, issued)


def _client_files(root: Path, name: str, issued: ca.Issued) -> ClientFiles:
    cert_path = root / f"{name}-{issued.serial:x}.pem"
    key_path = root / f"{name}-{issued.serial:x}.key"
    write_atomic(cert_path, issued.cert_pem)
    write_private(key_path, issued.key_pem)
    return ClientFiles(issued, cert_path, key_path)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    now = datetime.now(UTC)
    authority = ca.create_ca(NODE, "استانداری کهگیلویه و بویراحمد", now=now)
    server = ca.issue_server_certificate(
        authority.cert_pem,
        authority.key_pem,
        node_id=NODE,
        dns_names=["localhost"],
        ip_addresses=["127.0.0.1"],
        now=now,
    )
    made = Pki(tmp_path, authority, server)
    made.write()
    return made


# --- the server: greeting naming the agency, then line echo ------------------


@implementer(IHandshakeListener)
class _Greeter(LineOnlyReceiver):
    """Says ``hello <code>`` once the handshake is done, then echoes lines."""

    delimiter = b"\n"

    def __init__(self, seen: list[str | None], open_: set[_Greeter]) -> None:
        self._seen = seen
        self._open = open_

    def connectionMade(self) -> None:
        self._open.add(self)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._open.discard(self)

    def handshakeCompleted(self) -> None:
        cert = peer_certificate(self.transport)
        code = agency_code_from_certificate(cert, NODE) if cert is not None else None
        self._seen.append(code)
        self.sendLine(f"hello {code}".encode())

    def lineReceived(self, line: bytes) -> None:
        self.sendLine(line)


class _GreeterFactory(Factory):
    def __init__(self) -> None:
        self.handshakes: list[str | None] = []
        self.open: set[_Greeter] = set()

    def buildProtocol(self, addr: object) -> _Greeter:
        protocol = _Greeter(self.handshakes, self.open)
        protocol.factory = self
        return protocol


@dataclass(frozen=True)
class Running:
    tls: ServerTLS
    port: int
    factory: _GreeterFactory

    @property
    def handshakes(self) -> list[str | None]:
        """Agency codes of the clients whose handshake the server completed."""
        return self.factory.handshakes


@pytest.fixture
def listen(pki: Pki) -> Iterator[Callable[..., Running]]:
    """Start servers on ephemeral loopback ports; all are closed at teardown."""
    reactor = _reactor()
    ports: list[Any] = []
    factories: list[_GreeterFactory] = []

    def start(*, require_client_cert: bool = True) -> Running:
        tls = ServerTLS(pki.cert_path, pki.key_path, pki.ca_path, pki.crl_path, require_client_cert)
        factory = _GreeterFactory()
        port = reactor.listenTCP(0, TLSMemoryBIOFactory(tls, False, factory), interface="127.0.0.1")
        ports.append(port)
        factories.append(factory)
        return Running(tls, port.getHost().port, factory)

    yield start
    for factory in factories:
        for protocol in list(factory.open):
            cast(ITCPTransport, protocol.transport).abortConnection()
    for port in ports:
        pytest_twisted.blockon(port.stopListening())


@pytest.fixture
def server(listen: Callable[..., Running]) -> Running:
    return listen()


# --- clients, run in a thread ------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What a client saw: the lines it got, or why the connection failed."""

    accepted: bool
    version: str | None = None
    cipher: str | None = None
    lines: tuple[bytes, ...] = ()
    error: str = ""


def _python_client(
    port: int,
    ca_path: Path,
    client: ClientFiles | None,
    *,
    tls_version: ssl.TLSVersion | None = None,
    ciphers: str | None = None,
) -> Outcome:
    """Blocking stdlib client: handshake, read the greeting, echo one line."""
    context = ssl.create_default_context(cafile=str(ca_path))
    if client is not None:
        context.load_cert_chain(client.cert_path, client.key_path)
    if tls_version is not None:
        context.minimum_version = context.maximum_version = tls_version
    if ciphers is not None:
        context.set_ciphers(ciphers)
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
            tls.makefile("rb") as reader,
        ):
            greeting = reader.readline()
            if not greeting:
                return Outcome(False, error="EOF before greeting")
            tls.sendall(b"ping\n")
            echo = reader.readline()
            cipher = tls.cipher()
            return Outcome(True, tls.version(), cipher[0] if cipher else None, (greeting, echo))
    except ssl.SSLError as exc:
        return Outcome(False, error=exc.reason or str(exc))
    except OSError as exc:
        return Outcome(False, error=repr(exc))


async def _connect(port: int, pki: Pki, client: ClientFiles | None, **kw: Any) -> Outcome:
    return await deferToThread(_python_client, port, pki.ca_path, client, **kw)


def _s_client(
    port: int, pki: Pki, client: ClientFiles, *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-brief", "-no_ign_eof",
            "-CAfile", str(pki.ca_path), "-verify_return_error",
            "-cert", str(client.cert_path), "-key", str(client.key_path), *args,
        ],
        input="",
        capture_output=True,
        text=True,
        timeout=3 * TIMEOUT,
        check=False,
    )  # fmt: skip


# --- accepted ----------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_valid_agency_certificate_is_accepted_and_identified(
    pki: Pki, server: Running
) -> None:
    outcome = await _connect(server.port, pki, pki.agency("edu"))
    assert outcome.accepted, outcome.error
    assert outcome.lines == (b"hello edu\n", b"ping\n")
    assert server.handshakes == ["edu"]


@pytest_twisted.ensureDeferred
async def test_tls13_is_negotiated_by_default(pki: Pki, server: Running) -> None:
    outcome = await _connect(server.port, pki, pki.agency("edu"))
    assert outcome.version == "TLSv1.3"


@pytest_twisted.ensureDeferred
async def test_tls12_client_gets_a_mozilla_intermediate_cipher(pki: Pki, server: Running) -> None:
    outcome = await _connect(
        server.port, pki, pki.agency("edu"), tls_version=ssl.TLSVersion.TLSv1_2
    )
    assert outcome.accepted, outcome.error
    assert outcome.version == "TLSv1.2"
    assert outcome.cipher in MOZILLA_INTERMEDIATE_CIPHERS.split(":")


# --- refused during the handshake -------------------------------------------


@pytest_twisted.ensureDeferred
async def test_no_client_certificate_is_refused(pki: Pki, server: Running) -> None:
    outcome = await _connect(server.port, pki, None)
    assert not outcome.accepted
    assert outcome.error == "TLSV13_ALERT_CERTIFICATE_REQUIRED"
    assert server.handshakes == []


@pytest_twisted.ensureDeferred
async def test_certificate_of_another_ca_is_refused(pki: Pki, server: Running) -> None:
    now = datetime.now(UTC)
    other = ca.create_ca(NODE, "another authority", now=now)
    stranger = ca.issue_agency_certificate(
        other.cert_pem, other.key_pem, code="edu", node_id=NODE, now=now
    )
    outcome = await _connect(server.port, pki, _client_files(pki.root, "stranger", stranger))
    assert not outcome.accepted
    assert outcome.error == "TLSV1_ALERT_UNKNOWN_CA"
    assert server.handshakes == []


@pytest_twisted.ensureDeferred
async def test_expired_certificate_is_refused(pki: Pki, server: Running) -> None:
    old = pki.agency("edu", now=datetime.now(UTC) - timedelta(days=800))
    assert old.issued.not_after < datetime.now(UTC)
    outcome = await _connect(server.port, pki, old)
    assert not outcome.accepted
    assert outcome.error == "SSLV3_ALERT_CERTIFICATE_EXPIRED"
    assert server.handshakes == []


@pytest_twisted.ensureDeferred
async def test_not_yet_valid_certificate_is_refused(pki: Pki, server: Running) -> None:
    future = pki.agency("edu", now=datetime.now(UTC) + timedelta(days=10))
    outcome = await _connect(server.port, pki, future)
    assert not outcome.accepted
    assert outcome.error == "SSLV3_ALERT_BAD_CERTIFICATE"
    assert server.handshakes == []


@pytest_twisted.ensureDeferred
async def test_server_certificate_used_as_client_certificate_is_refused(
    pki: Pki, server: Running
) -> None:
    """Same CA, valid, but its EKU is serverAuth only: OpenSSL's sslclient purpose says no."""
    outcome = await _connect(server.port, pki, _client_files(pki.root, "server", pki.server))
    assert not outcome.accepted
    assert outcome.error == "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE"
    assert server.handshakes == []


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
@pytest_twisted.ensureDeferred
async def test_tls11_client_is_refused(pki: Pki, server: Running) -> None:
    # SECLEVEL=0 so that the client's OpenSSL 3 really offers TLS 1.1 and the
    # refusal is the server's ("protocol version" alert), not a local one.
    outcome = await _connect(
        server.port,
        pki,
        pki.agency("edu"),
        tls_version=ssl.TLSVersion.TLSv1_1,
        ciphers="DEFAULT:@SECLEVEL=0",
    )
    assert not outcome.accepted
    assert outcome.error == "TLSV1_ALERT_PROTOCOL_VERSION"
    assert server.handshakes == []


@pytest_twisted.ensureDeferred
async def test_tls12_client_without_an_aead_cipher_is_refused(pki: Pki, server: Running) -> None:
    outcome = await _connect(
        server.port,
        pki,
        pki.agency("edu"),
        tls_version=ssl.TLSVersion.TLSv1_2,
        ciphers="ECDHE-ECDSA-AES128-SHA256",
    )
    assert not outcome.accepted
    assert outcome.error == "SSLV3_ALERT_HANDSHAKE_FAILURE"


@pytest_twisted.ensureDeferred
async def test_optional_client_certificate_still_refuses_bad_ones(
    pki: Pki, listen: Callable[..., Running]
) -> None:
    """``require_client_cert = false``: no certificate is fine, a revoked one is not."""
    server = listen(require_client_cert=False)
    anonymous = await _connect(server.port, pki, None)
    assert anonymous.accepted, anonymous.error
    assert anonymous.lines[0] == b"hello None\n"
    edu = pki.agency("edu")
    assert (await _connect(server.port, pki, edu)).lines[0] == b"hello edu\n"
    pki.revoke(edu.issued.serial)
    assert server.tls.reload_if_changed()
    assert (await _connect(server.port, pki, edu)).error == "SSLV3_ALERT_CERTIFICATE_REVOKED"


# --- revocation and reload while running ------------------------------------


@pytest_twisted.ensureDeferred
async def test_certificate_revoked_while_running_is_refused_after_reload(
    pki: Pki, server: Running
) -> None:
    edu = pki.agency("edu")
    health = pki.agency("health")
    assert (await _connect(server.port, pki, edu)).accepted
    assert server.tls.reload_if_changed() is False

    pki.revoke(edu.issued.serial)
    assert server.tls.reload_if_changed() is True

    refused = await _connect(server.port, pki, edu)
    assert not refused.accepted
    assert refused.error == "SSLV3_ALERT_CERTIFICATE_REVOKED"
    assert (await _connect(server.port, pki, health)).accepted
    assert server.handshakes == ["edu", "health"]


@pytest_twisted.ensureDeferred
async def test_broken_crl_on_reload_raises_and_keeps_the_old_context(
    pki: Pki, server: Running
) -> None:
    edu = pki.agency("edu")
    revoked = pki.agency("health")
    pki.revoke(revoked.issued.serial)
    assert server.tls.reload_if_changed() is True

    write_atomic(pki.crl_path, b"-----BEGIN X509 CRL-----\nbm90IGEgQ1JM\n-----END X509 CRL-----\n")
    with pytest.raises(CertificateFileError, match=re.escape(str(pki.crl_path))):
        server.tls.reload_if_changed()
    assert server.tls.reload_if_changed() is False  # reported once, not every 2 s

    assert (await _connect(server.port, pki, edu)).accepted
    still_revoked = await _connect(server.port, pki, revoked)
    assert still_revoked.error == "SSLV3_ALERT_CERTIFICATE_REVOKED"

    pki.write_crl()  # fixed: the next poll picks it up again
    assert server.tls.reload_if_changed() is True
    assert (await _connect(server.port, pki, edu)).accepted


def test_crl_from_another_ca_is_refused_at_reload(pki: Pki, server: Running) -> None:
    other = ca.create_ca(NODE, "another authority", now=datetime.now(UTC))
    crl = ca.build_crl(other.cert_pem, other.key_pem, [], now=datetime.now(UTC), crl_number=9)
    write_atomic(pki.crl_path, crl)
    with pytest.raises(CertificateFileError, match="not signed by a CA"):
        server.tls.reload()


def test_mismatched_server_key_is_refused(pki: Pki) -> None:
    write_private(pki.key_path, pki.agency("edu").issued.key_pem)
    with pytest.raises(CertificateFileError, match="does not match"):
        ServerTLS(pki.cert_path, pki.key_path, pki.ca_path, pki.crl_path)


def test_missing_file_names_the_path(pki: Pki) -> None:
    pki.ca_path.unlink()
    with pytest.raises(
        CertificateFileError, match=re.escape(f"{pki.ca_path}: cannot read CA certificate")
    ):
        ServerTLS(pki.cert_path, pki.key_path, pki.ca_path, pki.crl_path)


# --- groups (openssl s_client) -----------------------------------------------


@pytest_twisted.ensureDeferred
async def test_key_exchange_groups_are_the_mozilla_ones(pki: Pki, server: Running) -> None:
    assert server.tls.groups_restricted
    edu = pki.agency("edu")
    for group in ("X25519", "prime256v1", "secp384r1"):
        done = await deferToThread(_s_client, server.port, pki, edu, "-groups", group)
        assert done.returncode == 0, done.stderr
        assert f"Server Temp Key: {group}" in done.stderr.replace("ECDH, ", "")
    # X448 and P-521 are in OpenSSL's default list but not in Mozilla's.
    for group in ("X448", "secp521r1"):
        refused = await deferToThread(_s_client, server.port, pki, edu, "-groups", group)
        assert refused.returncode != 0
        assert "handshake failure" in refused.stderr


# --- the Twisted client options ----------------------------------------------


class _GreetingClient(Protocol):
    """Fires ``greeting`` with the server's first line, or fails if the connection drops."""

    def __init__(self) -> None:
        self.greeting: Deferred[bytes] = Deferred()
        self._buffer = b""

    def dataReceived(self, data: bytes) -> None:
        self._buffer += data
        if b"\n" in self._buffer and not self.greeting.called:
            self.greeting.callback(self._buffer.split(b"\n", 1)[0])
            assert self.transport is not None
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if not self.greeting.called:
            self.greeting.errback(reason)


async def _twisted_greeting(port: int, pki: Pki, client: ClientFiles, hostname: str) -> bytes:
    reactor = _reactor()
    options = client_tls_options(
        pki.authority.cert_pem, client.issued.cert_pem, client.issued.key_pem, hostname
    )
    endpoint = SSL4ClientEndpoint(reactor, "127.0.0.1", port, options, timeout=int(TIMEOUT))
    protocol = await connectProtocol(endpoint, _GreetingClient())
    greeting: bytes = await protocol.greeting.addTimeout(TIMEOUT, reactor)
    return greeting


# Twisted 26's CertificateOptions still hands pyOpenSSL X509/PKey objects to pyOpenSSL 26.
_TWISTED_PYOPENSSL_DEPRECATION = pytest.mark.filterwarnings(
    "ignore:Passing pyOpenSSL .* objects is deprecated:DeprecationWarning"
)


@_TWISTED_PYOPENSSL_DEPRECATION
@pytest_twisted.ensureDeferred
async def test_client_tls_options_connect_with_the_agency_certificate(
    pki: Pki, server: Running
) -> None:
    greeting = await _twisted_greeting(server.port, pki, pki.agency("edu"), "127.0.0.1")
    assert greeting == b"hello edu"


@_TWISTED_PYOPENSSL_DEPRECATION
@pytest_twisted.ensureDeferred
async def test_client_tls_options_check_the_server_name(pki: Pki, server: Running) -> None:
    with pytest.raises(VerificationError, match=r"wrong\.example"):
        await _twisted_greeting(server.port, pki, pki.agency("edu"), "wrong.example")
    assert server.handshakes == []


# --- files -------------------------------------------------------------------


def test_write_atomic_sets_the_mode_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "ca.key"
    target.write_bytes(b"old")
    target.chmod(0o644)
    write_private(target, b"secret")
    assert target.read_bytes() == b"secret"
    assert target.stat().st_mode & 0o777 == 0o600
    write_atomic(target, b"public", mode=0o640)
    assert target.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["ca.key"]


def test_write_atomic_into_a_missing_directory_names_the_path(tmp_path: Path) -> None:
    target = tmp_path / "missing" / "crl.pem"
    with pytest.raises(CertificateFileError, match=re.escape(f"{target}: cannot write")):
        write_atomic(target, b"x")


def test_read_pem_names_the_path_and_what_was_expected(tmp_path: Path) -> None:
    path = tmp_path / "ca.pem"
    with pytest.raises(
        CertificateFileError, match=re.escape(f"{path}: cannot read CA certificate")
    ):
        read_pem(path, "CA certificate")
    path.write_bytes(b"not pem at all")
    with pytest.raises(PkiError, match=re.escape(f"{path}: expected CA certificate in PEM format")):
        read_pem(path, "CA certificate")
    path.write_bytes(b"-----BEGIN CERTIFICATE-----\n")
    assert read_pem(path, "CA certificate").startswith(b"-----BEGIN")
