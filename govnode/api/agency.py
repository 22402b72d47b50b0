"""The agency API (`/api/v1`): login, the directory, and the letters of api/letters.py."""

from __future__ import annotations

from typing import Any

from twisted.web.iweb import IRequest

from govnode.api.base import (
    MAX_PAGE,
    agency_json,
    app,
    bearer_token,
    json_answer,
    query_int,
    query_text,
    read_json_object,
)
from govnode.api.errors import invalid_field, not_found
from govnode.api.events import EventRoutes
from govnode.api.openapi import openapi_document
from govnode.api.plugin_routes import METHODS
from govnode.domain.address import Address, InvalidAddress
from govnode.domain.calendar import rfc3339
from govnode.domain.folding import fold
from govnode.domain.plugins import Caller
from govnode.store import directory, peer_directory
from govnode.store.records import AgencyRecord, DirectoryQuery


class AgencyApi(EventRoutes):
    """All routes of `/api/v1`. One instance per node."""

    @app.route("/api/v1/openapi.json", methods=["GET"])
    def openapi(self, request: IRequest) -> bytes:
        return json_answer(request, 200, openapi_document())

    @app.route("/api/v1/auth/token", methods=["POST"])
    async def login(self, request: IRequest) -> bytes:
        client = self.client(request)
        body = read_json_object(request)
        credentials = {}
        for field in ("username", "password"):
            value = body.get(field)
            if not isinstance(value, str) or not value:
                raise invalid_field(field, f"{field} must be a non-empty string")
            credentials[field] = value
        session = await self._auth.login(credentials["username"], credentials["password"], client)
        return json_answer(
            request,
            200,
            {
                "token": session.token,
                "token_type": "Bearer",
                "agency": session.agency,
                "user": session.user,
                "expires_at": rfc3339(session.expires_at),
            },
        )

    @app.route("/api/v1/auth/token", methods=["DELETE"])
    async def logout(self, request: IRequest) -> bytes:
        await self.caller(request)
        token = bearer_token(request)
        assert token is not None
        await self._auth.logout(token)
        request.setResponseCode(204)
        return b""

    @app.route("/api/v1/directory", methods=["GET"])
    async def search(self, request: IRequest) -> bytes:
        await self.caller(request)
        phase_text = query_text(request, "phase")
        phase = None
        if phase_text:
            if phase_text not in ("1", "2", "3"):
                raise invalid_field("phase", "phase must be 1, 2 or 3")
            phase = int(phase_text)
        query = DirectoryQuery(
            text=fold(query_text(request, "q") or ""),
            county=query_text(request, "county") or None,
            phase=phase,
            parent=query_text(request, "parent") or None,
            limit=query_int(request, "limit", 50, 1, MAX_PAGE),
            offset=query_int(request, "offset", 0, 0, 10**9),
        )
        records, total = await self._db.read(directory.thd_search, query, now=self._clock.seconds())
        return json_answer(
            request,
            200,
            {"agencies": [self._entry(r) for r in records], "total": total},
        )

    def _entry(self, record: AgencyRecord, *, detail: bool = False) -> dict[str, Any]:
        answer = agency_json(record, self._node_id, detail=detail)
        return answer if self._plugins is None else self._plugins.enrich(record, answer)

    @app.route("/api/v1/directory/<string:code>", methods=["GET"])
    async def lookup(self, request: IRequest, code: str) -> bytes:
        await self.caller(request)
        try:
            address = Address.parse(code, local_node=self._node_id)
        except InvalidAddress:
            raise not_found(f"no agency {code!r}") from None
        if address.node != self._node_id:
            remote = await self._db.read(peer_directory.thd_agency, address)
            if remote is None:
                raise not_found(f"no agency {address} in the peer directories this node holds")
            return json_answer(request, 200, remote.document())
        record = await self._db.read(directory.thd_get, address.code, now=self._clock.seconds())
        if record is None:
            raise not_found(f"no agency {address}")
        return json_answer(request, 200, self._entry(record, detail=True))

    @app.route("/api/v1/x/<string:plugin>/<path:rest>", methods=list(METHODS))
    async def plugin_route(self, request: IRequest, plugin: str, rest: str) -> bytes:
        """A route a plugin added, for an authenticated caller only."""
        _, agency, user = await self.caller_user(request)
        if self._plugins is None:
            raise not_found("no such endpoint")
        method = (request.method or b"GET").decode("ascii", "replace").upper()
        route, params = self._plugins.find(plugin, method, rest)
        body = None
        content = request.content
        if method in ("POST", "PUT", "PATCH") and content is not None and content.read(1):
            content.seek(0)
            body = read_json_object(request)
        caller = Caller(agency=agency, user=user, address=f"{agency}@{self._node_id}")
        status, headers, content = await self._plugins.answer(
            request, plugin, route, params, caller=caller, path=rest, body=body
        )
        request.setResponseCode(status)
        for name, value in headers.items():
            request.setHeader(name.encode("ascii"), value.encode("latin-1"))
        return content
