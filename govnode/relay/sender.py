"""Sends letters for other nodes to the next hop and records what it answers.

Run by the delivery worker after local deliveries. Each claimed letter goes,
signed by this node, to the peer the routing table names, at most
`max_concurrency` at a time per peer; a peer's trouble with one letter holds
up no other. The answer's receipts must verify with the peer's key before a
recipient counts as delivered; anything else is retried with backoff until
the letter's lifetime is over.
"""

from __future__ import annotations

import base64
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, DeferredSemaphore
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from govnode.config.model import Config, PeerSection
from govnode.domain.envelope import EnvelopeInvalid, SignedReceipt, Signer
from govnode.domain.routing import NoRoute, RoutingTable
from govnode.pki.peers import Peers
from govnode.relay.peer_client import PeerUnreachable, call_peer
from govnode.store import outbound
from govnode.store.blobs import BlobStore
from govnode.store.database import Database

BATCH = 200


@dataclass(frozen=True, slots=True)
class _Outcome:
    kind: str  # "receipts" | "refused" | "retry"
    receipts: tuple[SignedReceipt, ...] = ()
    reason: str = ""


class FederationSender:
    _log = Logger()

    def __init__(
        self,
        *,
        config: Config,
        db: Database,
        blobs: BlobStore,
        peers: Peers,
        sign: Signer,
        reactor: Any,
        routing: RoutingTable,
        count_refused: Callable[[str], None],
        on_change: Callable[[list[str]], None],
        wake: Callable[[], None] = lambda: None,
        on_outcome: Callable[[str, float, int], None] = lambda _result, _at, _count: None,
    ) -> None:
        """`on_outcome(result, registered_at, recipients)`: a letter relayed, failed or
        expired (the metrics)."""
        self._config = config
        self._on_outcome = on_outcome
        self._db = db
        self._blobs = blobs
        self._peers = peers
        self._sign = sign
        self._reactor = reactor
        self._count_refused = count_refused  # a peer's answer we could not trust, by reason
        self._on_change = on_change
        self.wake = wake  # runs the delivery worker again
        # Peers with letters waiting out a backoff (as far as this process knows).
        self._backed_off: set[str] = set()
        self.routing = routing
        self._by_id = {peer.id: peer for peer in config.peers}
        self._slots = {peer.id: DeferredSemaphore(peer.max_concurrency) for peer in config.peers}

    async def send_due(self) -> int:
        """Send what is due now; returns how many letters were tried."""
        items = await self._db.run(
            outbound.thd_claim_remote,
            node_id=self._config.node.id,
            now=self._reactor.seconds(),
            limit=BATCH,
        )
        by_destination: dict[str, list[outbound.Outgoing]] = defaultdict(list)
        for item in items:  # claimed in order of registration
            by_destination[item.envelope.destination].append(item)
        if by_destination:
            await DeferredList(
                [Deferred.fromCoroutine(self._send_in_order(q)) for q in by_destination.values()],
                consumeErrors=True,
            )
        return len(items)

    async def _send_in_order(self, items: list[outbound.Outgoing]) -> None:
        """One destination's letters one after another, so they arrive in the order
        they were registered; destinations go side by side (within each peer's limit).
        A letter that fails waits for its retry and holds up none after it."""
        for item in items:
            try:
                await self._send(item)
            except Exception:  # noqa: BLE001 - the next letters must still go
                self._log.failure("sending letter {letter_id}", letter_id=item.envelope.letter_id)

    async def _send(self, item: outbound.Outgoing) -> None:
        envelope = item.envelope
        try:
            hop = self.routing.next_hop(envelope.destination)
        except NoRoute as exc:
            await self._db.run(outbound.thd_fail, item, str(exc), now=self._reactor.seconds())
            self._given_up(item, "failed", str(exc))
            return
        peer = self._by_id.get(hop or "")
        if peer is None:
            reason = f"next hop {hop} is not a configured peer"
            await self._db.run(outbound.thd_fail, item, reason, now=self._reactor.seconds())
            self._given_up(item, "failed", reason)
            return
        slot = self._slots[peer.id]
        await slot.acquire()
        try:
            outcome: _Outcome = await deferToThreadPool(
                self._reactor, self._reactor.getThreadPool(), self._transfer, item, peer
            )
        finally:
            slot.release()
        now = self._reactor.seconds()
        if outcome.kind == "receipts":
            changed = await self._db.run(
                outbound.thd_record_receipts, item, list(outcome.receipts), now=now
            )
            if peer.id in self._backed_off:  # it failed before: what waits can go
                await self.release_backlog(peer.id)
            self._on_change([*changed, envelope.sender])
            self._log.info(
                "letter {letter_id} of {agency} handed to {peer}: {count} receipts",
                letter_id=envelope.letter_id,
                agency=envelope.sender,
                peer=peer.id,
                count=len(outcome.receipts),
            )
            self._on_outcome("relayed", item.created_at, len(item.recipient_ids))
            return
        if outcome.kind == "refused":
            self._log.error(
                "letter {letter_id} of {agency} refused by {peer}: {reason}",
                letter_id=envelope.letter_id,
                agency=envelope.sender,
                peer=peer.id,
                reason=outcome.reason,
            )
            await self._db.run(outbound.thd_fail, item, outcome.reason, now=now)
            self._on_outcome("failed", item.created_at, len(item.recipient_ids))
            self._on_change([envelope.sender])
            return
        federation = self._config.federation
        self._backed_off.add(peer.id)
        expired = await self._db.run(
            outbound.thd_retry_later,
            item,
            outcome.reason,
            now=now,
            retry_min=federation.retry_min,
            retry_max=federation.retry_max,
            lifetime=federation.lifetime,
        )
        self._log.warn(
            "letter {letter_id} of {agency} to {peer}: {reason}; {what}",
            letter_id=envelope.letter_id,
            agency=envelope.sender,
            peer=peer.id,
            reason=outcome.reason,
            what="expired" if expired else "will retry",
        )
        if expired:
            self._on_outcome("expired", item.created_at, len(item.recipient_ids))
            self._on_change([envelope.sender])

    def _given_up(self, item: outbound.Outgoing, result: str, reason: str) -> None:
        self._log.error(
            "letter {letter_id} of {agency} to {destination}: {reason}",
            letter_id=item.envelope.letter_id,
            agency=item.envelope.sender,
            destination=item.envelope.destination,
            reason=reason,
        )
        self._on_outcome(result, item.created_at, len(item.recipient_ids))

    async def release_backlog(self, peer: str) -> None:
        """`peer` answers: what waits out a backoff for it goes now, not at its next retry."""
        self._backed_off.discard(peer)
        released = await self._db.run(
            outbound.thd_release_backlog,
            node_id=self._config.node.id,
            via=peer,
            routes=self._next_hop_or_none,
            now=self._reactor.seconds(),
        )
        if released:
            self._log.info(
                "{peer} answers: {count} waiting letters go now", peer=peer, count=released
            )
            self.wake()

    def _next_hop_or_none(self, node: str) -> str | None:
        try:
            return self.routing.next_hop(node)
        except NoRoute:
            return None

    def _transfer(self, item: outbound.Outgoing, peer: PeerSection) -> _Outcome:
        """On a thread: the signed envelope and its files to `peer`, and its answer."""
        envelope = item.envelope
        document = item.signed(self._sign).to_json()
        document["attachments"] = [
            {
                "sha256": a.sha256,
                "data": base64.b64encode(self._blobs.path(a.sha256).read_bytes()).decode(),
            }
            for a in envelope.attachments
        ]
        tls = self._config.tls
        try:
            answer = call_peer(
                peer,
                "POST",
                "/federation/v1/envelopes",
                node_cert=tls.node_cert,
                node_key=tls.node_key,
                body=document,
            )
        except PeerUnreachable as exc:
            return _Outcome("retry", reason=str(exc))
        if answer.status != 200:
            error = answer.document.get("error") if isinstance(answer.document, dict) else None
            said = f"{error.get('code')}: {error.get('message')}" if isinstance(error, dict) else ""
            reason = f"HTTP {answer.status} {said}".strip()
            permanent = 400 <= answer.status < 500 and answer.status not in (408, 429)
            return _Outcome("refused" if permanent else "retry", reason=reason)
        try:
            receipts = tuple(
                SignedReceipt.verified(doc, self._peers.verifier)
                for doc in (answer.document or {}).get("receipts", [])
            )
        except (EnvelopeInvalid, AttributeError, TypeError) as exc:
            self._count_refused("bad_receipt")
            return _Outcome("retry", reason=f"a receipt that does not verify: {exc}")
        wrong = [
            r
            for r in (signed.receipt for signed in receipts)
            if r.envelope_id != envelope.id or r.node != peer.id
        ]
        if wrong:
            self._count_refused("bad_receipt")
            return _Outcome("retry", reason="receipts for another envelope or from another node")
        return _Outcome("receipts", receipts=receipts)
