"""Sends status notices (read, answered, delivered further on...) towards letters' origins.

Due notices go in one request per next hop; this node's own are signed as
they leave, others' go as they came with this node added to their hops. A
peer that does not take them gets them again with backoff; notices older
than the federation lifetime are dropped (logged): a status, unlike a
letter, is not worth holding forever.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from govnode.config.model import Config, PeerSection
from govnode.domain.envelope import SignedReceipt, Signer, StatusNotice
from govnode.domain.routing import NoRoute, RoutingTable
from govnode.relay.peer_client import PeerUnreachable, call_peer
from govnode.store import notices
from govnode.store.database import Database

BATCH = 500


class NoticeSender:
    _log = Logger()

    def __init__(
        self, *, config: Config, db: Database, sign: Signer, reactor: Any, routing: RoutingTable
    ) -> None:
        self._config = config
        self._db = db
        self._sign = sign
        self._reactor = reactor
        self._routing = routing
        self._by_id = {peer.id: peer for peer in config.peers}

    async def send_due(self) -> int:
        """Send the notices due now, per next hop; how many were tried."""
        claimed = await self._db.run(notices.thd_claim, now=self._reactor.seconds(), limit=BATCH)
        by_hop: dict[str, list[notices.Notice]] = defaultdict(list)
        unroutable = []
        for notice in claimed:
            try:
                hop = self._routing.next_hop(notice.destination)
            except NoRoute:
                hop = None
            if hop is None or hop not in self._by_id:
                unroutable.append(notice)
            else:
                by_hop[hop].append(notice)
        if unroutable:
            self._log.error(
                "{count} notices dropped: no peer leads to {nodes}",
                count=len(unroutable),
                nodes=sorted({n.destination for n in unroutable}),
            )
            await self._db.run(notices.thd_done, [n.id for n in unroutable])
        for hop, batch in by_hop.items():
            await self._send(self._by_id[hop], batch)
        return len(claimed)

    async def _send(self, peer: PeerSection, batch: list[notices.Notice]) -> None:
        problem: str | None = await deferToThreadPool(
            self._reactor, self._reactor.getThreadPool(), self._post, peer, batch
        )
        if problem is None:
            await self._db.run(notices.thd_done, [n.id for n in batch])
            return
        federation = self._config.federation
        dropped = await self._db.run(
            notices.thd_retry_later,
            batch,
            problem,
            now=self._reactor.seconds(),
            retry_min=federation.retry_min,
            retry_max=federation.retry_max,
            lifetime=federation.lifetime,
        )
        self._log.warn(
            "{count} notices for {peer}: {problem}; {dropped} too old, dropped",
            count=len(batch),
            peer=peer.id,
            problem=problem,
            dropped=dropped,
        )

    def _post(self, peer: PeerSection, batch: list[notices.Notice]) -> str | None:
        """On a thread: the notices to `peer`; None when it took them, else why not."""
        here = self._config.node.id
        documents = [
            StatusNotice(
                n.destination,
                SignedReceipt(n.receipt, n.signature or self._sign(n.receipt.canonical())),
                (*n.hops, here),
            ).to_json()
            for n in batch
        ]
        tls = self._config.tls
        try:
            answer = call_peer(
                peer,
                "POST",
                "/federation/v1/notices",
                node_cert=tls.node_cert,
                node_key=tls.node_key,
                body={"notices": documents},
            )
        except PeerUnreachable as exc:
            return str(exc)
        if answer.status != 200:
            return f"HTTP {answer.status}"
        results = (answer.document or {}).get("results", [])
        refused = [r for r in results if isinstance(r, dict) and not r.get("accepted")]
        for result in refused:
            self._log.error(
                "{peer} refused a notice: {reason}", peer=peer.id, reason=result.get("reason")
            )
        return None
