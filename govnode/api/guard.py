"""Limits that keep a listener alive under abuse (`[limits]`).

Connections in total (over the limit they are closed on arrival, before any
TLS work) and per agency; requests in progress per agency; the size of a
request head and of its URL; how long a TLS handshake and a request head may
take, and how long a connection may stay silent; letters per agency per minute.

Twisted's own HTTPChannel limits answer a bare `400 Bad Request`; the checks
here come first and answer the API's JSON error with the status the HTTP spec
names (408, 414, 429, 431), then close the connection: the rest of what such a
client sent is not worth reading.

Everything is counted per process: with `listen.processes` = N the kernel
spreads connections over N processes, so the node as a whole admits up to N
times each figure.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote_to_bytes

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IHandshakeListener, IReactorTime
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.server import Request, Site
from zope.interface import implementer

from govnode.api.errors import ApiError
from govnode.api.ratelimit import TokenBucket, retry_after
from govnode.config.model import LimitsSection
from govnode.pki.handshake import CountingTLSFactory
from govnode.pki.identity import agency_code_from_certificate
from govnode.pki.tls import peer_certificate

LETTERS_PATH = b"/api/v1/letters"
EVENTS_PATH = b"/api/v1/events"  # long-lived: counted as a connection, not a request
FORGET_BUCKETS_AT = 10_000  # buckets kept before the full ones are dropped


def rate_limited(message: str, wait: float) -> ApiError:
    return ApiError(429, "rate_limited", message, headers={"Retry-After": retry_after(wait)})


def raw_answer(error: ApiError) -> bytes:
    """A whole HTTP response carrying `error`, for a connection about to close."""
    body = error.body()
    lines = [
        f"HTTP/1.1 {error.status} {HTTPStatus(error.status).phrase}",
        "Content-Type: application/json; charset=utf-8",
        f"Content-Length: {len(body)}",
        "Server: govnode",
        "Connection: close",
        *(f"{name}: {value}" for name, value in error.headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def route_of(target: bytes) -> bytes:
    """The path a request target routes to: no query, %-escapes decoded, no
    repeated slashes (as the router sees it: `/api/v1/%6cetters` is still letters)."""
    path = unquote_to_bytes(target.split(b"?", 1)[0])
    return re.sub(rb"/{2,}", b"/", path)


def agency_of(node_id: str) -> Callable[[object], str | None]:
    """Who a TLS transport's client certificate names: an agency code, or None."""

    def identify(transport: object) -> str | None:
        certificate = peer_certificate(transport)
        if certificate is None:
            return None
        return agency_code_from_certificate(certificate, node_id)

    return identify


class Guard:
    """The limits of one listener in this process, and what they count.

    Per-agency limits need to know the agency: its client certificate, read
    once the TLS handshake is over (`identify`). Without one (the federation
    listener, or `tls.require_client_cert = false`) only the others apply.
    """

    _log = Logger()

    def __init__(
        self,
        limits: LimitsSection,
        *,
        clock: IReactorTime,
        count_refused: Callable[[str], None],
        identify: Callable[[object], str | None] | None = None,
        key_used: Callable[[str, str], Awaitable[bool]] | None = None,
    ) -> None:
        """`key_used(agency, key)`: whether the agency sent a letter with this
        Idempotency-Key (its retry is never refused for the rate)."""
        self.limits = limits
        self.clock = clock
        self._count_refused = count_refused
        self.identify = identify
        self._key_used = key_used
        self.connections: Counter[str] = Counter()
        self.in_flight: Counter[str] = Counter()
        self._buckets: dict[str, TokenBucket] = {}

    def refused(self, limit: str) -> None:
        self._count_refused(limit)

    def site(self, site: Site) -> Site:
        """Make `site` answer through guarded channels and requests (its idle
        timeout becomes `limits.idle_timeout`)."""
        limits = self.limits
        site.protocol = type(  # type: ignore[method-assign]
            "GuardedChannel",
            (GuardedChannel,),
            {
                "guard": self,
                # Twisted's own limits stay as a backstop behind ours.
                "MAX_LENGTH": max(limits.max_url_bytes + 1024, limits.max_header_bytes),
                "totalHeadersSize": limits.max_url_bytes + limits.max_header_bytes + 2048,
                "maxHeaders": limits.max_headers + 1,
            },
        )
        request_class: Any = type(
            "GuardedRequest", (ReplayCheck, site.requestFactory), {"guard": self}
        )
        site.requestFactory = request_class
        site.timeOut = limits.idle_timeout
        return site

    def tls(
        self, context_factory: Any, site: Site, *, count: Callable[[str], None]
    ) -> TLSMemoryBIOFactory:
        """The TLS factory for `site`, closing connections over `max_connections`;
        `count(reason)` for each refused handshake (see pki/handshake.py)."""
        return CappedTLSFactory(self, context_factory, self.site(site), count=count)

    # -- per agency ------------------------------------------------------------

    def connection_opened(self, agency: str) -> ApiError | None:
        """Count a connection of `agency`; an error when it has too many already."""
        if self.connections[agency] >= self.limits.max_connections_per_agency:
            self.refused("agency_connections")
            return rate_limited(
                f"agency {agency} has {self.limits.max_connections_per_agency} connections "
                "open (the limit); reuse one or close one",
                5,
            )
        self.connections[agency] += 1
        return None

    def connection_closed(self, agency: str) -> None:
        self.connections[agency] -= 1
        if self.connections[agency] <= 0:
            del self.connections[agency]

    def admit(self, agency: str, command: bytes, path: bytes, request: Request) -> ApiError | None:
        """Count a request of `agency` in progress, or the error refusing it."""
        path = route_of(path)
        if path == EVENTS_PATH:
            return None
        if self.in_flight[agency] >= self.limits.max_requests_per_agency:
            self.refused("agency_requests")
            return rate_limited(
                f"agency {agency} has {self.limits.max_requests_per_agency} requests "
                "in progress (the limit)",
                1,
            )
        # The router matches methods in any case (werkzeug upper-cases them).
        if command.upper() == b"POST" and path == LETTERS_PATH:
            wait = self._bucket(agency).take(self.clock.seconds())
            if wait > 0:
                key = request.requestHeaders.getRawHeaders(b"idempotency-key")
                if not key or self._key_used is None:
                    self.refused("submissions")
                    return self.too_many_letters(agency, wait)
                # Maybe a retry of a letter already accepted: looked up once the
                # body is in (ReplayCheck), without taking a token.
                # The last one, as the handler's `getHeader` reads it.
                request.replay_check = (agency, key[-1].decode("latin-1"), wait)  # type: ignore[attr-defined]
        self.in_flight[agency] += 1
        return None

    def request_done(self, agency: str) -> None:
        self.in_flight[agency] -= 1
        if self.in_flight[agency] <= 0:
            del self.in_flight[agency]

    def too_many_letters(self, agency: str, wait: float) -> ApiError:
        return rate_limited(
            f"agency {agency} is over {self.limits.submissions_per_minute} letters a minute "
            f"(bursts of {self.limits.submissions_burst}); try again later",
            wait,
        )

    async def is_replay(self, agency: str, key: str) -> bool:
        """Whether `agency` already sent a letter with this Idempotency-Key."""
        if self._key_used is None:
            return False
        try:
            return await self._key_used(agency, key)
        except Exception:  # noqa: BLE001 - unknown: the rate limit stands
            self._log.failure("cannot look up an Idempotency-Key of {agency}", agency=agency)
            return False

    def _bucket(self, agency: str) -> TokenBucket:
        bucket = self._buckets.get(agency)
        if bucket is None:
            now = self.clock.seconds()
            if len(self._buckets) >= FORGET_BUCKETS_AT:
                self._buckets = {k: b for k, b in self._buckets.items() if not b.full(now)}
            bucket = self._buckets[agency] = TokenBucket(
                self.limits.submissions_per_minute / 60, self.limits.submissions_burst, now
            )
        return bucket


class CappedTLSFactory(CountingTLSFactory):
    """Closes a connection on arrival when `max_connections` are open (counting
    those still in their handshake): no TLS work and no memory for it."""

    def __init__(
        self, guard: Guard, context_factory: Any, site: Site, *, count: Callable[[str], None]
    ) -> None:
        super().__init__(context_factory, False, site, count=count)
        self._guard = guard

    def buildProtocol(self, addr: Any) -> Any:
        if len(self.protocols) >= self._guard.limits.max_connections:
            self._guard.refused("connections")
            return None
        return super().buildProtocol(addr)


@implementer(IHandshakeListener)
class GuardedChannel(HTTPChannel):
    """An HTTP/1.1 channel that enforces the `Guard`'s limits (see the module)."""

    guard: Guard
    _agency: str | None = None  # counted as a connection of this agency
    _flight: str | None = None  # a request counted in progress for this agency
    _refusal: ApiError | None = None  # over the agency's connections: its answer
    _handshake_call: IDelayedCall | None = None
    _head_call: IDelayedCall | None = None
    _in_head = False
    _head_bytes = 0
    _head_lines = 0
    _in_body = False
    _answered = False

    def connectionMade(self) -> None:
        super().connectionMade()
        transport: object = self.transport
        if isinstance(transport, TLSMemoryBIOProtocol):
            self._handshake_call = self.callLater(
                self.guard.limits.handshake_timeout, self._handshake_expired
            )

    def handshakeCompleted(self) -> None:
        self._cancel_handshake()
        if self.guard.identify is None or self._agency is not None or self._refusal is not None:
            return  # nothing per agency, or counted already (a TLS 1.2 renegotiation)
        agency = self.guard.identify(self.transport)
        if agency is None:
            return  # the API answers 403 for a certificate that names no agency
        self._refusal = self.guard.connection_opened(agency)
        if self._refusal is None:
            self._agency = agency
        else:
            # Its first request gets the answer; one that sends none is closed.
            self._head_call = self.callLater(self.guard.limits.header_timeout, self._head_expired)

    def dataReceived(self, data: bytes) -> None:
        if self._answered:
            return
        if self._head_call is None and not (self._handlingRequest or self._in_body):
            # A request begins: its head must be whole in header_timeout, however
            # the bytes trickle in (each of them resets the idle timeout).
            self._head_call = self.callLater(self.guard.limits.header_timeout, self._head_expired)
        super().dataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        if self._answered:
            return
        limits = self.guard.limits
        if not self._in_head:
            if line:  # the request line
                self._in_head = True
                self._head_bytes = self._head_lines = 0
                parts = line.split(b" ")
                url = parts[1] if len(parts) > 1 else line
                if len(url) > limits.max_url_bytes:
                    self._url_too_long()
                    return
        elif line:
            self._head_bytes += len(line) + 2
            self._head_lines += 1
            if self._head_bytes > limits.max_header_bytes or self._head_lines > limits.max_headers:
                self._head_too_large()
                return
        else:
            self._in_head = False  # the blank line ending the head
        super().lineReceived(line)

    def lineLengthExceeded(self, line: bytes) -> None:
        if self._in_head:
            self._head_too_large()
        else:
            self._url_too_long()

    def allHeadersReceived(self) -> None:
        self._cancel_head()
        refusal = self._refusal
        if refusal is None and self._agency is not None:
            refusal = self.guard.admit(self._agency, self._command, self._path, self.requests[-1])
            if refusal is None and route_of(self._path) != EVENTS_PATH:
                self._flight = self._agency
        if refusal is not None:
            self._answer(refusal)
            return
        self._in_body = True
        super().allHeadersReceived()

    def rawDataReceived(self, data: bytes) -> None:
        if not self._answered:
            super().rawDataReceived(data)

    def allContentReceived(self) -> None:
        if self._answered:
            return
        self._in_body = False
        super().allContentReceived()

    def requestDone(self, request: Request) -> None:
        self._end_request()
        super().requestDone(request)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._cancel_handshake()
        self._cancel_head()
        self._end_request()
        if self._agency is not None:
            self.guard.connection_closed(self._agency)
            self._agency = None
        super().connectionLost(reason)

    # -- answers ---------------------------------------------------------------

    def _url_too_long(self) -> None:
        self.guard.refused("url_bytes")
        limit = self.guard.limits.max_url_bytes
        self._answer(ApiError(414, "too_large", f"the URL is over {limit} bytes"))

    def _head_too_large(self) -> None:
        self.guard.refused("header_bytes")
        limits = self.guard.limits
        self._answer(
            ApiError(
                431,
                "too_large",
                f"the request headers are over {limits.max_header_bytes} bytes "
                f"or {limits.max_headers} lines",
            )
        )

    def _head_expired(self) -> None:
        self._head_call = None
        if self._refusal is not None:
            self._answer(self._refusal)
            return
        self.guard.refused("header_timeout")
        seconds = self.guard.limits.header_timeout
        self._answer(
            ApiError(408, "timeout", f"the request head did not arrive within {seconds:g} seconds")
        )

    def _handshake_expired(self) -> None:
        self._handshake_call = None
        self.guard.refused("handshake_timeout")
        transport: Any = self.transport
        if transport is not None:
            transport.abortConnection()

    def _answer(self, error: ApiError) -> None:
        """Send `error` and close: what else the client sent is not read."""
        if self._answered:
            return
        self._answered = True
        self._cancel_head()
        if self.transport is not None:
            self.transport.write(raw_answer(error))
        self.loseConnection()

    def _end_request(self) -> None:
        if self._flight is not None:
            self.guard.request_done(self._flight)
            self._flight = None

    def _cancel_handshake(self) -> None:
        if self._handshake_call is not None and self._handshake_call.active():
            self._handshake_call.cancel()
        self._handshake_call = None

    def _cancel_head(self) -> None:
        if self._head_call is not None and self._head_call.active():
            self._head_call.cancel()
        self._head_call = None


class ReplayCheck(Request):
    """A letter over the agency's rate with an Idempotency-Key: served only when
    it retries a letter already accepted (which then gets its first answer)."""

    guard: Guard
    replay_check: tuple[str, str, float] | None = None

    def process(self) -> None:
        if self.replay_check is None:
            super().process()
            return
        agency, key, wait = self.replay_check
        checked = defer.Deferred.fromCoroutine(self.guard.is_replay(agency, key))
        checked.addCallback(self._checked, agency, wait)

    def _checked(self, replay: bool, agency: str, wait: float) -> None:
        channel: object = self.channel
        if channel is None:
            return  # the client went away meanwhile
        if replay:
            super().process()
            return
        self.guard.refused("submissions")
        error = self.guard.too_many_letters(agency, wait)
        self.setResponseCode(error.status)
        self.setHeader(b"content-type", b"application/json; charset=utf-8")
        for name, value in error.headers.items():
            self.setHeader(name, value)
        self.write(error.body())
        self.finish()
