"""What every route of the agency API shares: the Klein app, identity, errors, JSON.

Handlers parse and check input, call the parts that hold the rules
(authenticator, store), and shape answers. Every failure leaves as the JSON
error body of API.md; nothing else, and never a traceback, reaches a client.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from cryptography.hazmat.primitives import hashes
from klein import Klein
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.server import Request
from werkzeug.exceptions import MethodNotAllowed, NotFound

from govnode.api.auth import Authenticator, Client
from govnode.api.errors import (
    ApiError,
    invalid_field,
    invalid_json,
    not_found,
    unauthenticated,
    unavailable,
)
from govnode.api.hub import EventHub
from govnode.api.metrics import Metrics
from govnode.api.plugin_routes import PluginSupport
from govnode.config.model import LimitsSection
from govnode.directory.errors import DirectoryUnavailable
from govnode.pki.identity import agency_code_from_certificate
from govnode.pki.tls import peer_certificate
from govnode.store.blobs import BlobStore
from govnode.store.database import Database, DatabaseUnavailable
from govnode.store.delivery import Delivered
from govnode.store.letters import Registrar
from govnode.store.records import AgencyRecord

MAX_JSON_BYTES = 64 * 1024  # for the small JSON bodies of this part of the API
MAX_PAGE = 500
Handler = Callable[..., Awaitable[bytes]]


def agency_json(record: AgencyRecord, node_id: str, *, detail: bool = False) -> dict[str, Any]:
    agency = record.agency
    answer: dict[str, Any] = {
        "code": agency.code,
        "address": f"{agency.code}@{node_id}",
        "name": agency.name_fa,
        "name_en": agency.name_en,
        "kind": agency.kind,
        "phase": agency.phase,
        "parent": agency.parent,
        "county": agency.county,
        "status": str(record.status),
    }
    if detail and record.fingerprint_sha256 is not None:
        answer["certificate_fingerprint_sha256"] = record.fingerprint_sha256
    return answer


# json.dumps makes a new encoder for every call with options; this one is made once.
_ENCODER = json.JSONEncoder(ensure_ascii=False)


def json_answer(request: IRequest, status: int, value: object) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
    return _ENCODER.encode(value).encode("utf-8")


def read_json_object(request: IRequest, limit: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """The request body as a JSON object, or the API error that says why not."""
    content_type = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
    if content_type != b"application/json":
        raise ApiError(
            415, "invalid_json", "the body must be JSON (Content-Type: application/json)"
        )
    length = request.getHeader(b"content-length")
    if length is not None and length.isascii() and length.isdigit() and int(length) > limit:
        raise ApiError(413, "too_large", f"the body is over {limit} bytes")
    assert request.content is not None
    raw = request.content.read(limit + 1)
    if len(raw) > limit:
        raise ApiError(413, "too_large", f"the body is over {limit} bytes")
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise invalid_json(f"the body is not valid UTF-8 JSON: {exc}") from None
    if not isinstance(value, dict):
        raise invalid_json("the body must be a JSON object")
    return value


def query_text(request: IRequest, name: str) -> str | None:
    assert isinstance(request, Request)
    values = request.args.get(name.encode("ascii"))
    if not values:
        return None
    try:
        return str(values[0].decode("utf-8"))
    except UnicodeDecodeError:
        raise invalid_field(name, f"{name} is not UTF-8") from None


def query_int(request: IRequest, name: str, default: int, lowest: int, highest: int) -> int:
    text = query_text(request, name)
    if text is None or text == "":
        return default
    if not (text.isascii() and text.isdigit()) or not lowest <= int(text) <= highest:
        raise invalid_field(name, f"{name} must be a whole number from {lowest} to {highest}")
    return int(text)


def bearer_token(request: IRequest) -> str | None:
    header = request.getHeader(b"authorization")
    if header is None:
        return None
    scheme, _, token = header.decode("latin-1").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


app = Klein()


class ApiBase:
    """State and plumbing shared by the route classes; one instance per node."""

    app = app
    _log = Logger()

    def __init__(
        self,
        *,
        node_id: str,
        db: Database,
        authenticator: Authenticator,
        clock: IReactorTime,
        metrics: Metrics,
        limits: LimitsSection,
        blobs: BlobStore,
        reactor: Any,
        hub: EventHub,
        on_change: Callable[[], None] = lambda: None,
        on_delivered: Callable[[list[Delivered]], None] = lambda _done: None,
        routable: Callable[[str], bool] = lambda _node: False,
        plugins: PluginSupport | None = None,
    ) -> None:
        """`routable(node)`: whether letters for another node have a way there;
        `on_delivered`: letters put into inboxes with their registration;
        `plugins`: the enabled plugins' routes, policies and directory additions."""
        self._node_id = node_id
        self._db = db
        self._auth = authenticator
        self._clock = clock
        self._metrics = metrics
        self._limits = limits
        self._blobs = blobs
        self._reactor = reactor
        self._on_change = on_change  # letters for other nodes: wake the delivery worker
        self._hub = hub
        self._plugins = plugins
        self._registrar = Registrar(
            db,
            node_id=node_id,
            clock=clock,
            routable=routable,
            on_delivered=on_delivered,
            wake=on_change,
        )

    # -- plumbing ------------------------------------------------------------

    def client(self, request: IRequest) -> Client:
        """Who the TLS layer says the caller is; worked out once per connection."""
        assert isinstance(request, Request)
        channel = request.channel
        known: Client | None = getattr(channel, "_govnode_client", None)
        if known is not None:
            return known
        certificate = peer_certificate(request.transport)
        if certificate is None:
            client = Client(agency=None, fingerprint=None)
        else:
            code = agency_code_from_certificate(certificate, self._node_id)
            if code is None:
                raise ApiError(
                    403, "forbidden", "the client certificate names no agency of this node"
                )
            fingerprint = certificate.fingerprint(hashes.SHA256()).hex()
            client = Client(agency=code, fingerprint=fingerprint)
        channel._govnode_client = client  # type: ignore[attr-defined]
        return client

    async def caller(self, request: IRequest) -> tuple[Client, str]:
        """The authenticated agency of a request (401/403 otherwise)."""
        client, agency, _ = await self.caller_user(request)
        return client, agency

    async def caller_user(self, request: IRequest) -> tuple[Client, str, str]:
        """(client, agency, user) of an authenticated request."""
        client = self.client(request)
        token = bearer_token(request)
        if token is None:
            raise unauthenticated()
        record = await self._auth.check(token, client)
        return client, record.agency, record.user

    async def caller_address(self, request: IRequest) -> str:
        """The caller's agency as an address of this node (`edu@kb`)."""
        _, agency = await self.caller(request)
        return f"{agency}@{self._node_id}"

    @app.handle_errors(ApiError)
    def _api_error(self, request: IRequest, failure: Failure) -> bytes:
        error = failure.value
        assert isinstance(error, ApiError)
        return self._error_answer(request, error)

    @app.handle_errors(NotFound)
    def _no_route(self, request: IRequest, failure: Failure) -> bytes:
        return self._error_answer(request, not_found("no such endpoint"))

    @app.handle_errors(MethodNotAllowed)
    def _wrong_method(self, request: IRequest, failure: Failure) -> bytes:
        allowed = ", ".join(sorted(getattr(failure.value, "valid_methods", None) or ()))
        return self._error_answer(
            request,
            ApiError(
                405,
                "not_found",
                "this endpoint does not take that method",
                headers={"Allow": allowed} if allowed else None,
            ),
        )

    @app.handle_errors(DatabaseUnavailable, DirectoryUnavailable)
    def _dependency_down(self, request: IRequest, failure: Failure) -> bytes:
        what = "the database" if failure.check(DatabaseUnavailable) else "the directory (LDAP)"
        self._log.error("{what} unavailable: {error}", what=what, error=str(failure.value))
        return self._error_answer(request, unavailable(what))

    @app.handle_errors
    def _unexpected(self, request: IRequest, failure: Failure) -> bytes:  # type: ignore[misc]
        self._log.failure("unexpected error answering {uri}", failure, uri=request.uri)
        return self._error_answer(
            request, ApiError(500, "internal", "internal error; the node's log has the details")
        )

    def _error_answer(self, request: IRequest, error: ApiError) -> bytes:
        self._metrics.api_errors.labels(code=error.code).inc()
        request.setResponseCode(error.status)
        request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
        for name, value in error.headers.items():
            request.setHeader(name.encode("ascii"), value.encode("ascii"))
        return error.body()

    # -- endpoints -----------------------------------------------------------
