"""Metrics of letters that their callers cannot compute alone: delivery latency,
and the queue depth and oldest age per destination.

The queue lives in the database (any process may add to it), so the gauges are
set from one query on a database thread just before /metrics renders: fresh at
every scrape, and the reactor never waits on SQL.
"""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger, LogLevel

from govnode import logs
from govnode.api.metrics import Metrics
from govnode.store import queue_admin
from govnode.store.database import Database, DatabaseUnavailable
from govnode.store.delivery import Delivered

_log = Logger()


def observe_deliveries(metrics: Metrics, done: list[Delivered]) -> None:
    """Registration to inbox of each local delivery (failures have no latency), and
    a debug event per recipient when debug is on."""
    for item in done:
        if item.status == "delivered" and item.at:
            metrics.delivery_seconds.labels(path="local").observe(
                max(0.0, item.at - item.registered_at)
            )
    if logs.enabled(LogLevel.debug):
        for item in done:
            _log.debug(
                "letter {letter_id} from {sender} to {agency}: {status}",
                letter_id=item.letter_id,
                sender=item.sender,
                agency=item.code,
                address=item.address,
                status=item.status,
            )


class QueueGauges:
    _log = Logger()

    def __init__(
        self, *, db: Database, metrics: Metrics, node_id: str, clock: IReactorTime
    ) -> None:
        self._db = db
        self._metrics = metrics
        self._node_id = node_id
        self._clock = clock
        self._seen: set[str] = set()

    async def refresh(self) -> None:
        """Set both gauges for every destination; one that emptied shows 0 (a label
        cannot leave the files of several processes, so it stays at 0)."""
        try:
            lines = await self._db.read(queue_admin.thd_overview, node_id=self._node_id)
        except DatabaseUnavailable as exc:
            self._log.warn("queue metrics not refreshed: {error}", error=str(exc))
            return
        now = self._clock.seconds()
        waiting = {line.destination: line for line in lines}
        for destination in self._seen | set(waiting):
            line = waiting.get(destination)
            depth = self._metrics.queue_recipients.labels(destination=destination)
            oldest = self._metrics.queue_oldest_seconds.labels(destination=destination)
            depth.set(line.recipients if line else 0)
            oldest.set(max(0.0, now - line.oldest) if line else 0)
        self._seen |= set(waiting)
