"""The delivery worker: moves queued recipients on: to local inboxes, to peers, and
status notices back to letters' origin nodes.

Plain local letters are delivered by the transaction that registers them;
the worker is woken for letters to other nodes, for what arrives from peers,
after a failed delivery, and runs every `interval` seconds in any case
(after a restart, for retries that fall due). Each run works in batches
through the database writer until nothing due is left.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer, task
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from govnode.directory.errors import DirectoryUnavailable
from govnode.relay.notice_sender import BATCH as NOTICE_BATCH
from govnode.relay.notice_sender import NoticeSender
from govnode.relay.sender import BATCH as SEND_BATCH
from govnode.relay.sender import FederationSender
from govnode.store import delivery, outbound
from govnode.store.database import Database, DatabaseUnavailable

BATCH = 500


class DeliveryWorker(Service):
    _log = Logger()

    def __init__(
        self,
        db: Database,
        *,
        node_id: str,
        clock: IReactorTime,
        on_delivered: Callable[[list[delivery.Delivered]], None],
        interval: float = 1.0,
        recover_leases: bool = False,
    ) -> None:
        self.setName("delivery worker")
        self._db = db
        self._node_id = node_id
        self._clock = clock
        self._on_delivered = on_delivered
        self._loop = task.LoopingCall(self.wake)
        self._loop.clock = clock
        self._interval = interval
        self._recover_leases = recover_leases
        self._running: defer.Deferred[None] | None = None
        self._again = False
        self._soon: IDelayedCall | None = None
        self.sender: FederationSender | None = None  # letters for other nodes, if any peers
        self.notice_sender: NoticeSender | None = None  # statuses back to letters' origins

    def startService(self) -> None:
        super().startService()
        self._loop.start(self._interval, now=True)

    def stopService(self) -> defer.Deferred[Any] | None:
        super().stopService()
        if self._loop.running:
            self._loop.stop()
        if self._soon is not None and self._soon.active():
            self._soon.cancel()
        return self._running  # let a batch under way finish

    def wake(self) -> None:
        """Run now, or right after the run under way (coalesces many wake-ups)."""
        if not self.running:
            return
        if self._running is not None:
            self._again = True
            return
        self._running = defer.Deferred.fromCoroutine(self._run())
        self._running.addBoth(self._finished)

    async def _recover(self) -> None:
        """Transfers leased by processes of this node that died go now, not when
        their leases run out (minutes), as Postfix's queue manager does at start."""
        letters, notices_ = await self._db.run(
            outbound.thd_recover_leases, node_id=self._node_id, now=self._clock.seconds()
        )
        self._recover_leases = False
        if letters or notices_:
            self._log.info(
                "{letters} letters and {notices} notices in flight at the last stop go again",
                letters=letters,
                notices=notices_,
            )

    def _finished(self, result: object) -> None:
        self._running = None
        if self._again and self.running:
            self._again = False
            self._soon = self._clock.callLater(0, self.wake)

    async def _run(self) -> None:
        try:
            if self._recover_leases:
                await self._recover()
            while True:
                done = await self._db.run(
                    delivery.thd_deliver_local,
                    node_id=self._node_id,
                    now=self._clock.seconds(),
                    limit=BATCH,
                )
                if done:
                    self._on_delivered(done)
                if len(done) < BATCH:
                    break
            while self.sender is not None and await self.sender.send_due() >= SEND_BATCH:
                pass
            while (
                self.notice_sender is not None
                and await self.notice_sender.send_due() >= NOTICE_BATCH
            ):
                pass
        except (DatabaseUnavailable, DirectoryUnavailable) as exc:
            self._log.error("delivery paused: {error}", error=str(exc))
        except Exception:  # noqa: BLE001 - the worker must outlive one bad batch
            self._log.failure("delivery run failed")
