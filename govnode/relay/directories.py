"""Fetching peers' directories into the cache, and the signing keys they vouch for.

A peer speaks for itself and for the nodes this node routes through it,
nothing else: a node entry for which the routing table names another next
hop is left out (logged), so no peer can hand us keys for nodes it does not
carry letters to.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from govnode.config.model import Config, PeerSection
from govnode.domain.envelope import EnvelopeInvalid
from govnode.domain.peer_directory import NodeDirectory, read_directories
from govnode.domain.routing import NoRoute, RoutingTable
from govnode.pki.peers import Peers
from govnode.relay.peer_client import PeerUnreachable, call_peer
from govnode.store import peer_directory
from govnode.store.database import Database

ON_DEMAND_INTERVAL = 60.0  # seconds between out-of-turn fetches of one peer's directory


class PeerDirectoryUnavailable(Exception):
    """A peer's directory could not be fetched or read; the cache keeps the last one."""


class PeerDirectories:
    _log = Logger()

    def __init__(
        self, *, config: Config, db: Database, peers: Peers, routing: RoutingTable, reactor: Any
    ) -> None:
        self._config = config
        self._db = db
        self._peers = peers
        self._routing = routing
        self._reactor = reactor
        self._asked: dict[str, float] = {}  # peer -> when it was last asked out of turn

    async def refresh_all(self) -> None:
        """Every peer's directory; a peer that does not answer keeps its cached one."""
        for peer in self._config.peers:
            try:
                await self.refresh(peer)
            except PeerDirectoryUnavailable as exc:
                self._log.warn(
                    "directory of {peer} not refreshed: {error}", peer=peer.id, error=exc
                )
        await self.load_keys()

    async def refresh_now(self, peer: PeerSection) -> None:
        """Out of turn (a key is missing), at most once a minute per peer: a peer
        cannot make us fetch its directory for every request it sends."""
        now = self._reactor.seconds()
        if now - self._asked.get(peer.id, float("-inf")) < ON_DEMAND_INTERVAL:
            return
        self._asked[peer.id] = now
        try:
            await self.refresh(peer)
        except PeerDirectoryUnavailable as exc:
            self._log.warn("directory of {peer}: {error}", peer=peer.id, error=str(exc))
        await self.load_keys()

    async def load_keys(self) -> None:
        self._peers.learn(await self._db.read(peer_directory.thd_keys))

    async def refresh(self, peer: PeerSection) -> int:
        """Fetch `peer`'s directory into the cache; how many nodes it told us of."""
        served: list[NodeDirectory] = await deferToThreadPool(
            self._reactor, self._reactor.getThreadPool(), self._fetch, peer
        )
        kept = [entry for entry in served if self._speaks_for(peer.id, entry.node)]
        await self._db.run(
            peer_directory.thd_replace, via=peer.id, directories=kept, now=self._reactor.seconds()
        )
        self._log.info(
            "directory of {peer}: {nodes} nodes, {agencies} agencies",
            peer=peer.id,
            nodes=len(kept),
            agencies=sum(len(entry.agencies or ()) for entry in kept),
        )
        return len(kept)

    def _speaks_for(self, peer: str, node: str) -> bool:
        if node == peer:
            return True
        try:
            hop = self._routing.next_hop(node)
        except NoRoute:
            hop = None
        if hop != peer:
            self._log.debug(
                "{peer} serves node {node}, which we reach otherwise", peer=peer, node=node
            )
        return hop == peer

    def _fetch(self, peer: PeerSection) -> list[NodeDirectory]:
        tls = self._config.tls
        try:
            answer = call_peer(
                peer,
                "GET",
                "/federation/v1/directory",
                node_cert=tls.node_cert,
                node_key=tls.node_key,
            )
        except PeerUnreachable as exc:
            raise PeerDirectoryUnavailable(str(exc)) from None
        if answer.status != 200:
            raise PeerDirectoryUnavailable(f"HTTP {answer.status}")
        try:
            return read_directories(answer.document, peer=peer.id)
        except EnvelopeInvalid as exc:
            raise PeerDirectoryUnavailable(f"not a directory: {exc}") from None
