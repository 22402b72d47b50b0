"""The federation API (`/federation/v1`): what peer nodes call, on their own port.

The TLS handshake admits only certificates that chain to a configured
peer's CA. That is not yet who the caller is: each request must come with a
node certificate (`identity.node_id_from_certificate`) that names a
configured peer *and* was issued by that peer's own CA, so one peer cannot
pass itself off as another.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from klein import Klein
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from werkzeug.exceptions import MethodNotAllowed, NotFound

from govnode.api.errors import ApiError, not_found
from govnode.api.metrics import Metrics
from govnode.config.model import PeerSection
from govnode.pki.identity import node_id_from_certificate
from govnode.pki.tls import peer_certificate


class Peers:
    """The configured peers and the CAs that may vouch for each."""

    def __init__(self, peers: Sequence[PeerSection]) -> None:
        self._peers = {peer.id: peer for peer in peers}
        self._cas: dict[str, list[x509.Certificate]] = {}
        for peer in peers:
            if peer.ca_cert is not None:
                self._cas[peer.id] = x509.load_pem_x509_certificates(peer.ca_cert.read_bytes())

    @property
    def ca_files(self) -> list[PeerSection]:
        return [peer for peer in self._peers.values() if peer.ca_cert is not None]

    def identify(self, cert: x509.Certificate | None) -> PeerSection | None:
        """The peer `cert` belongs to, or None (not a node certificate, not a peer,
        or issued by another peer's CA)."""
        if cert is None:
            return None
        node = node_id_from_certificate(cert)
        peer = self._peers.get(node) if node is not None else None
        if peer is None:
            return None
        for ca in self._cas.get(peer.id, ()):
            try:
                cert.verify_directly_issued_by(ca)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return peer
        return None


class FederationApi:
    app = Klein()
    _log = Logger()

    def __init__(self, *, node_id: str, peers: Peers, metrics: Metrics) -> None:
        self._node_id = node_id
        self._peers = peers
        self._metrics = metrics

    def caller(self, request: IRequest) -> PeerSection:
        """The peer node calling, from its certificate; 403 for anyone else."""
        cert = peer_certificate(request.transport)  # type: ignore[attr-defined]
        peer = self._peers.identify(cert)
        if peer is None:
            subject = cert.subject.rfc4514_string() if cert is not None else "none"
            self._log.warn("federation request refused: certificate {subject}", subject=subject)
            self._metrics.api_errors.labels(code="unknown_peer").inc()
            raise ApiError(403, "unknown_peer", "this certificate names no configured peer node")
        return peer

    @app.route("/federation/v1/hello", methods=["GET"])
    def hello(self, request: IRequest) -> bytes:
        """Who is who: lets an operator (`govnode peers`) and a test see the link works."""
        peer = self.caller(request)
        return _json(request, {"node": self._node_id, "peer": peer.id})

    @app.handle_errors(ApiError)
    def _api_error(self, request: IRequest, failure: Failure) -> bytes:
        error = failure.value
        assert isinstance(error, ApiError)
        return _error(request, error)

    @app.handle_errors(NotFound, MethodNotAllowed)
    def _no_route(self, request: IRequest, failure: Failure) -> bytes:
        return _error(request, not_found("no such federation endpoint"))

    @app.handle_errors
    def _unexpected(self, request: IRequest, failure: Failure) -> bytes:  # type: ignore[misc]
        self._log.failure("unexpected error answering federation {uri}", failure, uri=request.uri)
        return _error(request, ApiError(500, "internal", "internal error"))


def _json(request: IRequest, document: object) -> bytes:
    request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
    return json.dumps(document, ensure_ascii=False).encode("utf-8")


def _error(request: IRequest, error: ApiError) -> bytes:
    request.setResponseCode(error.status)
    request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
    return error.body()
