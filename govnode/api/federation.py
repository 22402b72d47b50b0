"""The federation API (`/federation/v1`): what peer nodes call, on their own port.

The TLS handshake admits only certificates that chain to a configured
peer's CA. That is not yet who the caller is: each request must come with a
node certificate (`identity.node_id_from_certificate`) that names a
configured peer *and* was issued by that peer's own CA, so one peer cannot
pass itself off as another.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from klein import Klein
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from werkzeug.exceptions import MethodNotAllowed, NotFound

from govnode.api.base import read_json_object
from govnode.api.errors import ApiError, not_found
from govnode.api.metrics import Metrics
from govnode.config.model import PeerSection
from govnode.domain.envelope import (
    EnvelopeInvalid,
    Receipt,
    RoutingLoop,
    SignedEnvelope,
    Signer,
    StatusNotice,
)
from govnode.domain.routing import RoutingTable
from govnode.pki.peers import Peers
from govnode.pki.tls import peer_certificate
from govnode.store import federation, notices, peer_directory
from govnode.store.blobs import BadBase64, BlobStore
from govnode.store.database import Database
from govnode.store.delivery import Delivered

MAX_NOTICES = 1000  # per request; the sender sends at most notices.BATCH


class FederationApi:
    app = Klein()
    _log = Logger()

    def __init__(
        self,
        *,
        node_id: str,
        peers: Peers,
        metrics: Metrics,
        db: Database,
        blobs: BlobStore,
        sign: Signer,
        reactor: Any,
        on_delivered: Callable[[list[Delivered]], None],
        on_change: Callable[[list[str]], None],
        on_queued: Callable[[], None],
        routing: RoutingTable,
        max_body: int,
        public_key: str,
        refresh_directory: Callable[[PeerSection], Awaitable[object]] | None = None,
    ) -> None:
        self._node_id = node_id
        self._peers = peers
        self._metrics = metrics
        self._db = db
        self._blobs = blobs
        self._sign = sign
        self._reactor = reactor
        self._on_delivered = on_delivered
        self._on_change = on_change  # addresses whose letters changed (event streams)
        self._on_queued = on_queued  # something waits to be handed on: run the worker
        self._routing = routing
        self._refresh_directory = refresh_directory  # a peer's directory, now
        self._max_body = max_body
        self._public_key = public_key  # PEM, served in the directory

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

    @app.route("/federation/v1/directory", methods=["GET"])
    async def directory(self, request: IRequest) -> bytes:
        """This node's agencies and key, then the nodes it knows (`domain.peer_directory`)."""
        peer = self.caller(request)
        served = await self._db.read(
            peer_directory.thd_served,
            node_id=self._node_id,
            signing_key=self._public_key,
            caller=peer.id,
            now=self._reactor.seconds(),
            peer_keys=self._peers.configured_keys(),
        )
        return _json(request, served)

    @app.route("/federation/v1/envelopes", methods=["POST"])
    async def receive(self, request: IRequest) -> bytes:
        """A letter for this node's agencies: verified, stored once, delivered, receipted."""
        peer = self.caller(request)
        pool = self._reactor.getThreadPool()
        document, signed = await deferToThreadPool(
            self._reactor, pool, self._read_envelope, request, peer
        )
        await self._know_key(signed.envelope.origin, peer)
        await deferToThreadPool(self._reactor, pool, self._check_envelope, document, signed)
        envelope = signed.envelope
        now = self._reactor.seconds()
        try:
            accepted = await self._db.run(
                federation.thd_accept_envelope, signed, peer=peer.id, node_id=self._node_id, now=now
            )
        except federation.LetterExists:
            raise self._refuse(
                409, "letter_exists", f"letter {envelope.letter_id} is here under another envelope"
            ) from None
        if accepted.delivered:
            self._on_delivered(list(accepted.delivered))
        if envelope.destination != self._node_id and not accepted.replayed:
            self._on_queued()
        at_ms = int(now * 1000)
        receipts = [
            Receipt(
                envelope.id, envelope.letter_id, self._node_id, address, status, at_ms, detail
            ).signed(self._sign)
            for address, status, detail in accepted.outcome
        ]
        self._log.info(
            "envelope {envelope} of letter {letter_id} of {agency} from {peer} {what}",
            envelope=envelope.id,
            letter_id=envelope.letter_id,
            agency=envelope.sender,
            peer=peer.id,
            what="replayed" if accepted.replayed else "stored",
        )
        return _json(
            request,
            {"envelope_id": envelope.id, "replayed": accepted.replayed, "receipts": receipts},
        )

    async def _know_key(self, node: str, peer: PeerSection) -> None:
        """A node whose key we lack may be new behind `peer`: ask its directory once."""
        if self._peers.verifier(node) is not None or self._refresh_directory is None:
            return
        self._log.info("no key of node {node}: asking {peer}'s directory", node=node, peer=peer.id)
        await self._refresh_directory(peer)

    def _read_envelope(
        self, request: IRequest, peer: PeerSection
    ) -> tuple[dict[str, Any], SignedEnvelope]:
        """On a thread: parse, check the hops and the route."""
        document = read_json_object(request, self._max_body)
        try:
            signed = SignedEnvelope.from_json(document)
        except EnvelopeInvalid as exc:
            raise self._refuse(422, "invalid_field", str(exc), field=exc.field) from None
        envelope = signed.envelope
        if signed.hops[-1] != peer.id:
            raise self._refuse(403, "hop_mismatch", f"the last hop must be you, {peer.id}")
        if envelope.destination != self._node_id:
            if not self._routing.routable(envelope.destination):
                raise self._refuse(422, "no_route", f"no route to node {envelope.destination}")
            try:
                signed.forwarded_by(self._node_id)
            except RoutingLoop as exc:
                raise self._refuse(422, "routing_loop", str(exc)) from None
        return document, signed

    def _check_envelope(self, document: dict[str, Any], signed: SignedEnvelope) -> None:
        """On a thread: the origin's signature, then the files, stored by their hash."""
        envelope = signed.envelope
        verify = self._peers.verifier(envelope.origin)
        if verify is None:
            raise self._refuse(422, "unknown_origin", f"no signing key of node {envelope.origin}")
        if not signed.verify(verify):
            raise self._refuse(422, "bad_signature", f"not signed by {envelope.origin}")
        files = document.get("attachments", [])
        given = {
            item.get("sha256"): item.get("data")
            for item in files
            if isinstance(files, list) and isinstance(item, dict)
        }
        for index, listed in enumerate(envelope.attachments):
            data = given.get(listed.sha256)
            field = f"attachments[{index}]"
            if not isinstance(data, str):
                raise self._refuse(422, "invalid_field", "the file is missing", field=field)
            try:
                sha256, size = self._blobs.write_base64(data)
            except BadBase64:
                raise self._refuse(422, "invalid_field", "not base64", field=field) from None
            if (sha256, size) != (listed.sha256, listed.size):
                raise self._refuse(422, "attachment_mismatch", "not the file signed", field=field)

    @app.route("/federation/v1/notices", methods=["POST"])
    async def receive_notices(self, request: IRequest) -> bytes:
        """Status notices (read, delivered...) for letters of this node or to pass on.

        Each notice is judged alone: one that does not verify is refused
        (logged, counted) and the others are taken. The caller drops them all.
        """
        peer = self.caller(request)
        pool = self._reactor.getThreadPool()
        items = await deferToThreadPool(self._reactor, pool, self._read_notices, request)
        unknown = [node for node in _signers(items) if self._peers.verifier(node) is None]
        if unknown:
            await self._know_key(unknown[0], peer)
        taken, results = await deferToThreadPool(
            self._reactor, pool, self._judge_notices, items, peer
        )
        senders, onward = await self._db.run(
            notices.thd_receive, taken, node_id=self._node_id, now=self._reactor.seconds()
        )
        if senders:
            self._on_change(senders)
        if onward:
            self._on_queued()
        return _json(request, {"results": results})

    def _read_notices(self, request: IRequest) -> list[object]:
        items = read_json_object(request, self._max_body).get("notices")
        if not isinstance(items, list) or len(items) > MAX_NOTICES:
            raise ApiError(
                422, "invalid_field", f"a list of at most {MAX_NOTICES} notices", field="notices"
            )
        return items

    def _judge_notices(
        self, items: list[object], peer: PeerSection
    ) -> tuple[list[StatusNotice], list[dict[str, Any]]]:
        """On a thread: each notice read and verified, alone."""
        taken: list[StatusNotice] = []
        results: list[dict[str, Any]] = []
        for index, item in enumerate(items):
            try:
                notice = StatusNotice.from_json(
                    item, caller=peer.id, here=self._node_id, verify_for=self._peers.verifier
                )
                if notice.destination != self._node_id and not self._routing.routable(
                    notice.destination
                ):
                    raise EnvelopeInvalid("destination", f"no route to {notice.destination}")
            except (EnvelopeInvalid, RoutingLoop) as exc:
                reason = "routing_loop" if isinstance(exc, RoutingLoop) else "bad_notice"
                self._metrics.federation_refused.labels(reason=reason).inc()
                self._log.warn(
                    "notice {index} from {peer} refused: {error}",
                    index=index,
                    peer=peer.id,
                    error=exc,
                )
                results.append({"accepted": False, "reason": str(exc)})
                continue
            taken.append(notice)
            results.append({"accepted": True})
        return taken, results

    def _refuse(
        self, status: int, code: str, message: str, *, field: str | None = None
    ) -> ApiError:
        """Count and log a refused envelope; the error to raise."""
        self._metrics.federation_refused.labels(reason=code).inc()
        self._log.warn("envelope refused: {code}: {message}", code=code, message=message)
        return ApiError(status, code, message, field=field)

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


def _signers(items: list[object]) -> set[str]:
    """The nodes that signed the receipts of these notices (as they claim)."""
    nodes = set()
    for item in items:
        receipt = item.get("receipt") if isinstance(item, dict) else None
        node = receipt.get("node") if isinstance(receipt, dict) else None
        if isinstance(node, str):
            nodes.add(node)
    return nodes


def _json(request: IRequest, document: object) -> bytes:
    request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
    return json.dumps(document, ensure_ascii=False).encode("utf-8")


def _error(request: IRequest, error: ApiError) -> bytes:
    request.setResponseCode(error.status)
    request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
    return error.body()
