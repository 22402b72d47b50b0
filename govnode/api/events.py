"""`GET /api/v1/events`: server-sent events for an agency, resumable with Last-Event-ID.

Events are read from the database's tracking trail, never buffered per
client: a stream fetches only when its client keeps up (the transport tells
it through pause/resume), and a client that stops reading for longer than
`limits.event_stream_stall` seconds is disconnected.
"""

from __future__ import annotations

import contextlib
import json

from twisted.internet import defer, task
from twisted.internet.interfaces import IPushProducer, IReactorTime
from twisted.logger import Logger
from twisted.web.iweb import IRequest
from twisted.web.server import Request
from zope.interface import implementer

from govnode.api.base import app
from govnode.api.errors import invalid_field
from govnode.api.hub import EventHub
from govnode.api.letters import LetterRoutes, event_json, summary_json
from govnode.store import mailbox
from govnode.store.database import Database

HEARTBEAT = 15.0
FETCH = 200


def _frame(item: mailbox.StreamItem) -> bytes:
    """`letter`: the letter's summary; `status`: the summary and the tracking event."""
    letter = item.kind == "letter"
    summary = summary_json(
        mailbox.Summary(
            item.letter_id,
            item.number,
            item.sender,
            item.subject,
            item.priority,
            item.classification,
            item.created_at,
            item.event.at if letter else None,
            None,
            item.event.id,
        )
    )
    data = summary if letter else {**summary, **event_json(item.event)}
    text = json.dumps(data, ensure_ascii=False)
    return f"id: {item.event.id}\nevent: {item.kind}\ndata: {text}\n\n".encode()


@implementer(IPushProducer)
class EventStream:
    _log = Logger()

    def __init__(
        self,
        request: Request,
        address: str,
        *,
        after: int,
        db: Database,
        hub: EventHub,
        clock: IReactorTime,
        max_stall: float,
    ) -> None:
        self._request = request
        self._max_stall = max_stall
        self._address = address
        self._after = after
        self._db = db
        self._hub = hub
        self._clock = clock
        self._paused_since: float | None = None
        self._last_beat = clock.seconds()
        self._fetching = False
        self._again = False
        self._closed = False

    # IPushProducer: the transport's write buffer is full, or has room again.
    def pauseProducing(self) -> None:
        if self._paused_since is None:
            self._paused_since = self._clock.seconds()

    def resumeProducing(self) -> None:
        self._paused_since = None
        self.wake()

    def stopProducing(self) -> None:
        self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed

    def wake(self) -> None:
        if self._closed:
            return
        if self._fetching or self._paused_since is not None:
            self._again = True
            return
        self._fetching = True
        defer.Deferred.fromCoroutine(self._fetch()).addErrback(
            lambda failure: self._log.failure("event stream fetch failed", failure)
        )

    async def _fetch(self) -> None:
        try:
            while not self._closed and self._paused_since is None:
                self._again = False
                items = await self._db.read(
                    mailbox.thd_stream, self._address, after=self._after, limit=FETCH
                )
                if self.closed:  # the client left while we read
                    return
                for item in items:
                    self._request.write(_frame(item))
                    self._after = item.event.id
                if len(items) < FETCH and not self._again:
                    return
        finally:
            self._fetching = False
        if self._again:
            self.wake()

    def _tick(self) -> None:
        """Heartbeat, and the verdict on a client that stopped reading."""
        if self._closed:
            return
        if self._paused_since is not None:
            if self._clock.seconds() - self._paused_since > self._max_stall:
                self._log.warn(
                    "dropping the event stream of {address}: it stopped reading",
                    address=self._address,
                )
                self._closed = True
                # Abort, not lose: a graceful close would wait to flush what this
                # client will never read (and TLS waits while a producer is registered).
                self._request.unregisterProducer()
                transport = self._request.channel.transport
                if transport is not None:
                    transport.abortConnection()  # type: ignore[attr-defined]
            return
        if self._clock.seconds() - self._last_beat >= HEARTBEAT:
            self._last_beat = self._clock.seconds()
            self._request.write(b": heartbeat\n\n")
        self.wake()  # a safety net: anything no notification announced arrives now

    async def run(self) -> None:
        """Serve until the client goes away (klein cancels this coroutine then)."""
        request = self._request
        request.setHeader(b"Content-Type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-cache")
        request.registerProducer(self, True)
        request.write(b"retry: 3000\n\n")
        unsubscribe = self._hub.subscribe(self._address, self.wake)
        beat = task.LoopingCall(self._tick)
        beat.clock = self._clock
        # Often enough to notice a stalled client in time, at most every HEARTBEAT.
        beat.start(min(HEARTBEAT, self._max_stall / 2), now=False)
        done: defer.Deferred[None] = request.notifyFinish()
        try:
            self.wake()
            await done
        finally:
            self._closed = True
            unsubscribe()
            if beat.running:
                beat.stop()


class EventRoutes(LetterRoutes):
    @app.route("/api/v1/events", methods=["GET"])
    async def events(self, request: IRequest) -> bytes:
        address = await self.caller_address(request)
        header = request.getHeader(b"last-event-id")
        if header is not None:
            text = header.decode("latin-1").strip()
            if not (text.isascii() and text.isdigit()):
                raise invalid_field("Last-Event-ID", "Last-Event-ID must be an event id")
            after = int(text)
        else:
            after = await self._db.read(mailbox.thd_last_event_id)
        assert isinstance(request, Request)
        stream = EventStream(
            request,
            address,
            after=after,
            db=self._db,
            hub=self._hub,
            clock=self._clock,
            max_stall=self._limits.event_stream_stall,
        )
        with contextlib.suppress(defer.CancelledError):  # the client went away
            await stream.run()
        return b""
