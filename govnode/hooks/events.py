"""Handing committed letter events to `govnode_letter_event`, in order, at least once.

The events table is the node's record of every step of every letter; the
primary process follows it with a cursor kept in the database, so events
committed by any process reach the plugins once each, also across restarts
(after a crash, the last batch may come again). A plugin that fails is
logged and counted; it does not hold up the letters or the other plugins.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from govnode.hooks.api import NodeApi
from govnode.hooks.manager import Plugins
from govnode.store import mailbox, plugin_views
from govnode.store.database import Database, DatabaseUnavailable

POLL_INTERVAL = 0.5  # seconds between looks for new events
BATCH = 500


class EventDispatcher(Service):
    name = "plugin events"
    _log = Logger()

    def __init__(
        self,
        *,
        db: Database,
        plugins: Plugins,
        api: NodeApi,
        clock: IReactorTime,
        leading: Callable[[], bool] = lambda: True,
    ) -> None:
        """`leading`: whether this server dispatches now (one of several on PostgreSQL)."""
        self._db = db
        self._leading = leading
        self._plugins = plugins
        self._api = api
        self._loop = task.LoopingCall(self._tick)
        self._loop.clock = clock
        self._busy: defer.Deferred[None] | None = None

    def startService(self) -> None:
        super().startService()
        self._loop.start(POLL_INTERVAL, now=True)

    def stopService(self) -> defer.Deferred[Any] | None:
        super().stopService()
        if self._loop.running:
            self._loop.stop()
        return self._busy

    def _tick(self) -> defer.Deferred[None] | None:
        if self._busy is not None or not self._leading():
            return None
        self._busy = defer.Deferred.fromCoroutine(self._dispatch_once())
        self._busy.addErrback(lambda failure: self._log.failure("plugin events", failure))

        def idle(_: object) -> None:
            self._busy = None

        return self._busy.addBoth(idle)

    async def _dispatch_once(self) -> None:
        await self.dispatch()

    async def dispatch(self) -> int:
        """Hand on what committed since the last time; returns how many events."""
        node_id = self._api.node_id
        try:
            cursor = await self._db.read(plugin_views.thd_event_cursor)
            if cursor is None:
                # Newly enabled: from now on, not the node's whole history.
                start = await self._db.read(mailbox.thd_last_event_id)
                await self._db.run(plugin_views.thd_set_event_cursor, start)
                return 0
            found, last = await self._db.read(
                plugin_views.thd_events_after, cursor, node_id=node_id, limit=BATCH
            )
        except DatabaseUnavailable:
            return 0  # /healthz says so; try again at the next tick
        for event in found:
            for name in self._plugins.implementers("govnode_letter_event"):
                try:
                    outcome = self._plugins.call_one(
                        "govnode_letter_event", name, api=self._api, event=event
                    )
                    if inspect.isawaitable(outcome):
                        await outcome
                except Exception:  # noqa: BLE001 - logged and counted; the letter goes on
                    self._log.failure(
                        "plugin {plugin} failed on event {kind} of letter {letter_id}",
                        plugin=name,
                        kind=event.kind,
                        letter_id=event.letter_id,
                    )
                    self._api.count_error(name, "govnode_letter_event")
        if last != cursor:
            await self._db.run(plugin_views.thd_set_event_cursor, last)
        return len(found)
