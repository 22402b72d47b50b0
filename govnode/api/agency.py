"""The agency API (`/api/v1`): login, the directory, and the letters of api/letters.py."""

from __future__ import annotations

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
from govnode.domain.address import Address, InvalidAddress
from govnode.domain.calendar import rfc3339
from govnode.domain.folding import fold
from govnode.store import directory, peer_directory
from govnode.store.records import DirectoryQuery


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
            {"agencies": [agency_json(r, self._node_id) for r in records], "total": total},
        )

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
        return json_answer(request, 200, agency_json(record, self._node_id, detail=True))
