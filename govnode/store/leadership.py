"""Which of several `govnode serve` servers on one PostgreSQL runs the node's upkeep.

Duties with a cursor or that should happen once per node (plugin event
dispatch, audit checkpoints, directory sync) run in the leader only. The
leader holds a session-level advisory lock on a connection of its own; when
its process dies, PostgreSQL ends the session and frees the lock, and a
survivor, which tries again every few seconds, takes it over. On SQLite there
is one server per database: its primary process always leads.

A leader whose host vanished without closing its connection must not hold
the lock for the two hours of TCP keepalive's defaults, and a leader cut off
from the database must stop leading before anyone else can start: the lock's
session ends after `idle_session_timeout` (5 intervals, at least 10 s)
without a check, the driver gives up on a dead peer within seconds, and a
leader whose last good check is 3 intervals (at least 6 s) old steps down,
even while a check still hangs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError
from twisted.application.service import Service
from twisted.internet import task
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from govnode.store.database import is_sqlite, make_engine

LEADER_LOCK_KEY = 0x676F766C65616472  # "govleadr": never the writers' key
RETRY_INTERVAL = 2.0  # seconds between tries of a follower, and checks of the leader
# libpq settings of the lock's connection: a dead server or network is noticed
# in seconds, not minutes (tcp_user_timeout is in milliseconds).
_CONNECT_ARGS = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
}


class Leadership(Service):
    """`leader` is True while this process holds the node's leadership."""

    name = "leadership"
    _log = Logger()

    def __init__(
        self,
        url: str,
        *,
        reactor: Any,
        interval: float = RETRY_INTERVAL,
        key: int = LEADER_LOCK_KEY,
    ) -> None:
        self._engine: Engine = make_engine(
            url, connect_args=_CONNECT_ARGS if url.startswith("postgresql") else None
        )
        self.shared = not is_sqlite(self._engine)
        self.leader = not self.shared
        self._reactor = reactor
        self._key = key
        self._conn: Connection | None = None
        # One thread: the lock's connection is used from one thread only.
        self._thread = ThreadPool(minthreads=1, maxthreads=1, name="govnode-leadership")
        self._loop = task.LoopingCall(self._tick)
        self._loop.clock = reactor
        self._interval = interval
        self._busy: Deferred[bool] | None = None
        self._last_held = 0.0  # reactor time of the last check that found the lock ours
        # Run when this server takes the lead (the upkeep it missed as a follower).
        self.on_lead: list[Callable[[], Coroutine[Any, Any, Any]]] = []

    def startService(self) -> None:
        super().startService()
        if not self.shared:
            self._engine.dispose()
            return
        self._thread.start()
        self._loop.start(self._interval, now=True)

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        self.leader = False
        if not self.shared:
            return None
        if self._loop.running:
            self._loop.stop()
        # Closing the session frees the lock at once for the other servers; the
        # wait for the lock's thread (a check may hang until its timeouts) is
        # not the reactor's.
        self._thread.callInThread(self._release)

        def stop_thread() -> None:
            self._thread.stop()
            self._engine.dispose()

        return deferToThreadPool(self._reactor, self._reactor.getThreadPool(), stop_thread)

    def _tick(self) -> None:
        if self._busy is not None:
            stale = self._reactor.seconds() - self._last_held > max(3 * self._interval, 6.0)
            if self.leader and stale:  # the check hangs: whoever reaches the database may lead
                self.leader = False
                self._log.warn(
                    "this server no longer runs the node's upkeep: the database does not answer"
                )
            return
        self._busy = deferToThreadPool(self._reactor, self._thread, self._hold)
        self._busy.addCallbacks(self._outcome, self._failed)

    def _outcome(self, held: bool) -> None:
        self._busy = None
        if not self.running:
            return  # stopped meanwhile: the session is closed, and nothing is led
        was = self.leader
        if held != was:
            self._log.info(
                "this server {now} the node's upkeep (directory sync, audit checkpoints, "
                "plugin events)",
                now="now runs" if held else "no longer runs",
            )
        self.leader = held
        if held:
            self._last_held = self._reactor.seconds()
        if held and not was:
            for duty in self.on_lead:
                ensureDeferred(duty()).addErrback(
                    lambda failure: self._log.failure("upkeep on taking the lead", failure)
                )

    def _failed(self, failure: Any) -> None:
        self._busy = None
        self.leader = False
        self._log.failure("leadership check failed", failure)

    def _hold(self) -> bool:
        """On the lock's thread: keep the lock, or try to take it; False when the
        database cannot be reached (whoever can reach it may lead)."""
        try:
            if self._conn is None:
                self._conn = self._engine.connect()
                self._conn.exec_driver_sql("SET application_name = 'govnode leadership'")
                self._conn.exec_driver_sql("SET statement_timeout = '5s'")
                version = int(str(self._conn.exec_driver_sql("SHOW server_version_num").scalar()))
                if version >= 140000:  # a session left idle (a vanished leader) ends
                    idle = int(max(5 * self._interval, 10.0) * 1000)
                    self._conn.exec_driver_sql(f"SET idle_session_timeout = {idle}")
                self._conn.commit()
            if self.leader:
                self._conn.exec_driver_sql("SELECT 1").scalar()
                self._conn.commit()
                return True
            taken = bool(
                self._conn.exec_driver_sql(f"SELECT pg_try_advisory_lock({self._key})").scalar()
            )
            self._conn.commit()  # the lock is the session's, not the transaction's
            return taken
        except DBAPIError:
            self._drop()
            return False

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(DBAPIError):
                self._conn.invalidate()
                self._conn.close()
            self._conn = None

    def _release(self) -> None:
        self._drop()
