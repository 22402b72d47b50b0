"""Klein's resource, rendering without reference cycles.

Klein's `KleinResource.render` keeps each request in a reference cycle (a
nested error handler that refers to itself, and the request's cached
`IKleinRequest` that refers back to the request), so every request, with
its headers and buffers, waits for the cyclic garbage collector instead of
being freed when it is done. At thousands of requests a second that made
collections frequent and long (pauses of 10-70 ms in the submit latency).
This is the same routing and error handling, as one object per request
whose methods refer to nothing that refers back.
"""

from __future__ import annotations

from typing import Any

from klein import Klein
from klein._interfaces import IKleinRequest
from klein._resource import KleinResource, extractURLparts, route_metadata
from twisted.internet import defer
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.reflect import qual
from twisted.web import server
from werkzeug.exceptions import HTTPException


class AcyclicKleinResource(KleinResource):
    """A `KleinResource` whose requests are freed as soon as they finish.

    Handlers must answer with bytes, str or None (govnode's all do): the
    rendering of Twisted resources and templates that Klein also allows is
    not needed here.
    """

    def __init__(self, app: Klein) -> None:
        super().__init__(app)
        self._static = _static_routes(app)

    def render(self, request: Any) -> Any:
        if not request.prepath:
            found = self._static.get((request.method, tuple(request.postpath)))
            if found is not None:
                _Rendering(self._app, request, None, found).start()
                return server.NOT_DONE_YET
        try:
            scheme, server_name, _port, path_info, script_name = extractURLparts(request)
        except Exception:  # noqa: BLE001 - Klein's URLDecodeError: answer, never raise
            request.setResponseCode(400)
            return b"Non-UTF-8 encoding in URL."
        mapper = self._app.url_map.bind(
            server_name,
            script_name,
            path_info=path_info,
            default_method=request.method.decode("utf-8"),
            url_scheme=scheme,
        )
        IKleinRequest(request).mapper = mapper
        _Rendering(self._app, request, mapper).start()
        return server.NOT_DONE_YET


def _static_routes(app: Klein) -> dict[tuple[bytes, tuple[bytes, ...]], str]:
    """(method, path segments) -> endpoint, for the routes without variable parts.

    These are matched by a dictionary look-up instead of werkzeug's URL map
    (binding a map adapter, extracting the URL parts and matching cost more
    than the rest of rendering): the same rule werkzeug would pick, because
    a static rule is the only one that matches its exact path. Anything else
    (variable parts, a trailing slash, an unknown path or method) goes to
    werkzeug as before.
    """
    static: dict[tuple[bytes, tuple[bytes, ...]], str] = {}
    for rule in app.url_map.iter_rules():
        if (
            rule.arguments
            or rule.build_only
            or rule.redirect_to is not None
            or rule.host
            or rule.subdomain
            or not rule.rule.startswith("/")
        ):
            continue
        segments = tuple(part.encode("utf-8") for part in rule.rule[1:].split("/"))
        for method in rule.methods or ():
            static.setdefault((method.encode("ascii"), segments), rule.endpoint)
    return static


class _Rendering:
    """One request on its way through the routes and error handlers."""

    _log = Logger()

    def __init__(self, app: Klein, request: Any, mapper: Any, endpoint: str | None = None) -> None:
        """Either `mapper` (werkzeug matches the URL) or the static route's `endpoint`."""
        self._app = app
        self._request = request
        self._mapper = mapper
        self._endpoint = endpoint
        self._finished = False

    def start(self) -> None:
        done: Deferred[Any] = maybeDeferred(self._execute)
        done.addErrback(self._failed, list(self._app._error_handlers))
        done.addCallback(self._write)
        done.addErrback(self._unhandled)

    def _execute(self) -> Deferred[Any]:
        request = self._request
        if self._endpoint is not None:
            endpoint, kwargs = self._endpoint, {}
        else:
            rule, kwargs = self._mapper.match(return_rule=True)
            endpoint = rule.endpoint
        segments = route_metadata(self._app.endpoints[endpoint]).segment_count
        request.prepath.extend(request.postpath[:segments])
        request.postpath = request.postpath[segments:]
        request.notifyFinish().addBoth(self._on_finish)
        result: Deferred[Any] = maybeDeferred(
            self._app.execute_endpoint, endpoint, request, **kwargs
        )
        request.notifyFinish().addErrback(lambda _: result.cancel())
        return result

    def _on_finish(self, _result: object) -> None:
        self._finished = True
        # The cached IKleinRequest refers back to the request: drop it.
        self._request._adapterCache.pop(qual(IKleinRequest), None)

    def _failed(self, failure: Failure, handlers: list[Any]) -> Any:
        """Try the app's error handlers in order, as Klein does."""
        if self._finished:
            if not failure.check(defer.CancelledError):
                self._log.failure("Unhandled error processing a finished request", failure)
            return None
        while handlers:
            (kinds, handler), handlers = handlers[0], handlers[1:]
            if failure.check(*kinds):
                answer: Deferred[Any] = maybeDeferred(
                    self._app.execute_error_handler, handler, self._request, failure
                )
                return answer.addErrback(self._failed, handlers)
        if failure.check(HTTPException):
            error = failure.value
            assert isinstance(error, HTTPException)
            self._request.setResponseCode(error.code)
            response = error.get_response({})
            for header, value in response.headers:
                self._request.setHeader(header.encode("utf-8"), value.encode("utf-8"))
            return succeed(b"".join(response.iter_encoded()))
        self._request.processingFailed(failure)
        return None

    def _write(self, answer: bytes | str | None) -> None:
        if isinstance(answer, str):
            answer = answer.encode("utf-8")
        if isinstance(answer, bytes):
            self._request.write(answer)
        if not self._finished:
            self._request.finish()

    def _unhandled(self, failure: Failure) -> None:
        self._log.failure("Unhandled error writing a response", failure)
