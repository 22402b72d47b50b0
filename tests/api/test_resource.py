"""The agency API's Klein resource frees each request when it is done (no cycles).

Requests kept in reference cycles waited for the garbage collector, whose
pauses showed in the submit latency; here the collector is off and every
finished request must be gone all the same. Real HTTP over loopback.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
import treq
from klein import Klein
from twisted.internet import reactor as default_reactor
from twisted.internet import task
from twisted.web.server import Request, Site

from govnode.api.resource import AcyclicKleinResource, _static_routes

reactor: Any = default_reactor


class Refused(Exception):
    pass


def make_app() -> Klein:
    app = Klein()

    @app.route("/ok")
    def ok(request: Any) -> bytes:
        return b"fine"

    @app.route("/later")
    async def later(request: Any) -> str:
        await task.deferLater(reactor, 0.01, lambda: None)
        return "done"

    @app.route("/refused")
    def refused(request: Any) -> bytes:
        raise Refused

    @app.handle_errors(Refused)
    def on_refused(request: Any, failure: Any) -> bytes:
        request.setResponseCode(422)
        return b"refused"

    @app.route("/broken")
    def broken(request: Any) -> bytes:
        raise RuntimeError("a bug")

    return app


@pytest.fixture
def no_collector() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest_twisted.ensureDeferred
async def test_finished_requests_are_freed_without_the_collector(no_collector: None) -> None:
    made: list[weakref.ref[Request]] = []

    class Tracked(Request):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(weakref.ref(self))

    site = Site(AcyclicKleinResource(make_app()), requestFactory=Tracked)
    site.displayTracebacks = False
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    base = f"http://127.0.0.1:{port.getHost().port}"
    answers = {}
    try:
        for path in ("/ok", "/later", "/refused", "/broken", "/missing"):
            response = await treq.get(base + path, persistent=False)
            answers[path] = (response.code, await response.content())
    finally:
        await port.stopListening()
    assert answers["/ok"] == (200, b"fine")
    assert answers["/later"] == (200, b"done")
    assert answers["/refused"] == (422, b"refused")
    assert answers["/broken"][0] == 500
    assert b"a bug" not in answers["/broken"][1]
    assert answers["/missing"][0] == 404
    await task.deferLater(reactor, 0.05, lambda: None)  # let the connections close
    assert len(made) == 5
    # A bug's 500 keeps its request in the traceback's frames until a collection:
    # rare, and logged. Every answer the API gives on purpose frees its request.
    alive = [request.uri for ref in made if (request := ref()) is not None]
    assert alive == [b"/broken"]


def routed_app() -> Klein:
    app = Klein()

    @app.route("/api/letters", methods=["POST"])
    def submit(request: Any) -> bytes:
        return b"submitted"

    @app.route("/api/letters/<string:letter_id>", methods=["GET"])
    def show(request: Any, letter_id: str) -> bytes:
        return b"letter " + letter_id.encode()

    @app.route("/api/inbox", methods=["GET"])
    def inbox(request: Any) -> bytes:
        return b"inbox " + b"/".join(request.prepath)

    return app


def test_static_routes_are_looked_up_without_werkzeug() -> None:
    static = _static_routes(routed_app())
    assert static == {
        (b"POST", (b"api", b"letters")): "submit",
        (b"GET", (b"api", b"inbox")): "inbox",
        (b"HEAD", (b"api", b"inbox")): "inbox",
    }


@pytest_twisted.ensureDeferred
async def test_static_and_variable_routes_answer_as_werkzeug_would() -> None:
    site = Site(AcyclicKleinResource(routed_app()))
    site.displayTracebacks = False
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    base = f"http://127.0.0.1:{port.getHost().port}"
    answers = {}
    try:
        for method, path in (
            ("POST", "/api/letters"),
            ("POST", "/api/%6Cetters"),  # the same path, percent-encoded
            ("GET", "/api/letters"),  # wrong method: 405 from werkzeug
            ("GET", "/api/letters/01JD"),
            ("GET", "/api/inbox?after=x"),
            ("GET", "/api/inbox/"),  # trailing slash: werkzeug decides
            ("GET", "/api/outbox"),
        ):
            response = await treq.request(method, base + path, persistent=False)
            answers[(method, path)] = (response.code, await response.content())
    finally:
        await port.stopListening()
    assert answers[("POST", "/api/letters")] == (200, b"submitted")
    assert answers[("POST", "/api/%6Cetters")] == (200, b"submitted")
    assert answers[("GET", "/api/letters")][0] == 405
    assert answers[("GET", "/api/letters/01JD")] == (200, b"letter 01JD")
    # Klein's prepath: the route's segments, as with werkzeug's match.
    assert answers[("GET", "/api/inbox?after=x")] == (200, b"inbox api/inbox")
    assert answers[("GET", "/api/inbox/")][0] in (308, 404)
    assert answers[("GET", "/api/outbox")][0] == 404
