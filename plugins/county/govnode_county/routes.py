"""The parent agency's API under `/api/v1/x/county/`.

The core has authenticated the caller (certificate and token) before any of
these runs; what is left is whether the office is the caller's: its
directory entry must name the caller as `parent`. Every refusal is a
`Refused` in the API's error shape.
"""

from __future__ import annotations

from typing import Any

from govnode.hooks import (
    Caller,
    DirectoryEntry,
    LetterQuery,
    NodeApi,
    PluginRequest,
    Refused,
    Reply,
    Route,
)
from govnode_county.csr import BadCsr, check_csr, key_sha256
from govnode_county.records import (
    NAME,
    PREFIX,
    AlreadyPending,
    Record,
    key_of,
    new_request,
    place,
    request_json,
)
from govnode_county.views import letter_json, read_json, sent_letter_json, summary_json

MAX_NOTE = 1000
MAX_PAGE = 500


def invalid(field: str, message: str) -> Refused:
    return Refused(400, "invalid_field", message, field=field)


def forbidden(message: str) -> Refused:
    return Refused(403, "forbidden", message)


def not_found(message: str) -> Refused:
    return Refused(404, "not_found", message)


def conflict(message: str) -> Refused:
    return Refused(409, "conflict", message)


def _limit(request: PluginRequest, default: int = 50) -> int:
    text = request.arg("limit")
    if text is None or text == "":
        return default
    if not text.isdigit() or not 1 <= int(text) <= MAX_PAGE:
        raise invalid("limit", f"limit must be a whole number from 1 to {MAX_PAGE}")
    return int(text)


def _cursor(request: PluginRequest) -> str | None:
    """`after` as given back in `next`; refused rather than read as the start."""
    text = request.arg("after")
    if text is None or text == "":
        return None
    if not text.isdigit() or len(text) > 18:
        raise invalid("after", "after must be a cursor from a previous answer")
    return text


class CountyRoutes:
    """The plugin's routes, bound to the node's facade."""

    def __init__(self, api: NodeApi) -> None:
        self._api = api
        self._store = api.store(NAME)
        self._log = api.log(NAME)

    def routes(self) -> list[Route]:
        return [
            Route("POST", "requests", self.request_enrollment),
            Route("GET", "requests", self.list_requests),
            Route("GET", "requests/{office}", self.show_request),
            Route("GET", "offices", self.list_offices),
            Route("GET", "letters", self.sent_letters),
            Route("GET", "offices/{office}/inbox", self.office_inbox),
            Route("GET", "offices/{office}/letters/{letter_id}", self.office_letter),
            Route("POST", "offices/{office}/letters/{letter_id}/read", self.office_read),
        ]

    # -- whose office ------------------------------------------------------------

    async def _office_of(self, caller: Caller, office: str) -> DirectoryEntry:
        """The office's entry when the caller is its parent (404/403 otherwise)."""
        entry = await self._api.agency(office.lower())
        if entry is None:
            raise not_found(f"no agency {office} at node {self._api.node_id}")
        return self._parented(caller, entry)

    def _parented(self, caller: Caller, entry: DirectoryEntry) -> DirectoryEntry:
        if entry.parent is None:
            raise forbidden(f"{entry.code} is not a county office: it has no parent agency")
        if entry.parent != caller.agency:
            raise forbidden(
                f"{entry.code} is a county office of {entry.parent}@{self._api.node_id}, "
                f"not of {caller.address}"
            )
        return entry

    async def _receivable(self, caller: Caller, office: str) -> DirectoryEntry:
        """The office's entry when its parent may read its letters: it is not enrolled."""
        entry = await self._office_of(caller, office)
        if entry.status == "active":
            raise forbidden(
                f"{entry.address} is enrolled and reads its own letters now; "
                "its parent no longer receives them on its behalf"
            )
        return entry

    async def _on_behalf(
        self, caller: Caller, entry: DirectoryEntry, subject: str, action: str
    ) -> None:
        """Audit a parent's access to an office's letters, before anything is answered."""
        await self._api.audit(
            "county.on_behalf",
            actor=caller.address,
            subject=subject,
            detail={"office": entry.address, "action": action, "user": caller.user},
        )

    # -- enrollment requests -------------------------------------------------------

    async def request_enrollment(self, request: PluginRequest) -> Reply:
        """`POST requests`: the parent asks for its office to be enrolled with its CSR."""
        caller = request.caller
        body = request.body if isinstance(request.body, dict) else {}
        office = body.get("office")
        if not isinstance(office, str) or not office.strip():
            raise invalid("office", "office is required: the code of a county office of yours")
        office = office.strip().lower()
        entry = await self._api.agency(office)
        if entry is None:
            raise invalid("office", f"{office} is not in the directory of node {self._api.node_id}")
        entry = self._parented(caller, entry)
        if entry.status == "active":
            raise conflict(f"{entry.address} is already enrolled")
        try:
            csr = check_csr(body.get("csr"))
        except BadCsr as exc:
            raise invalid("csr", str(exc)) from None
        note = body.get("note", "")
        if not isinstance(note, str) or len(note) > MAX_NOTE:
            raise invalid("note", f"note must be text of at most {MAX_NOTE} characters")
        record = new_request(
            office=office,
            parent=caller.agency,
            csr=csr,
            note=note,
            requested_by=caller.user,
            at=self._api.now(),
        )
        try:
            stored: Record = await self._store.update(key_of(office), place(record))
        except AlreadyPending as exc:
            pending = exc.pending
            if pending.get("parent") == caller.agency and pending.get("csr") == csr:
                return Reply(request_json(pending))  # the same request again: a retry
            raise conflict(
                f"a request to enroll {office} is already pending "
                f"(by {pending.get('parent')}); wait for the operator's decision"
            ) from None
        await self._api.audit(
            "county.requested",
            actor=caller.address,
            subject=office,
            detail={
                "user": caller.user,
                "note": note,
                "key_sha256": key_sha256(csr),
            },
        )
        self._log.info(
            "{parent} asks for county office {office} to be enrolled",
            parent=caller.address,
            office=office,
        )
        return Reply(
            request_json(stored),
            status=201,
            headers={"Location": f"/api/v1/x/{NAME}/requests/{office}"},
        )

    async def list_requests(self, request: PluginRequest) -> dict[str, Any]:
        """`GET requests[?status=]`: the caller's requests, by office."""
        wanted = request.arg("status")
        if wanted not in (None, "", "pending", "approved", "rejected"):
            raise invalid("status", "status must be pending, approved or rejected")
        mine = [
            request_json(record)
            for _, record in await self._store.items(PREFIX)
            if record.get("parent") == request.caller.agency
            and (not wanted or record.get("status") == wanted)
        ]
        return {"requests": mine}

    async def show_request(self, request: PluginRequest) -> dict[str, Any]:
        """`GET requests/{office}`: one of the caller's requests, with the certificate
        once approved."""
        office = request.params["office"].lower()
        record = await self._store.get(key_of(office))
        if record is None or record.get("parent") != request.caller.agency:
            raise not_found(f"no enrollment request for {office} by {request.caller.address}")
        return request_json(record)

    # -- the caller's offices and their letters -------------------------------------

    async def list_offices(self, request: PluginRequest) -> dict[str, Any]:
        """`GET offices`: the caller's county offices, whether enrolled, whether it
        receives for them, and where their enrollment request stands."""
        requests = {
            record.get("office"): record.get("status")
            for _, record in await self._store.items(PREFIX)
            if record.get("parent") == request.caller.agency
        }
        offices = [a for a in await self._api.agencies() if a.parent == request.caller.agency]
        return {
            "offices": [
                {
                    "code": a.code,
                    "address": a.address,
                    "name": a.name_fa,
                    "name_en": a.name_en,
                    "county": a.county,
                    "status": a.status,
                    "parent_receives": a.status != "active",
                    "request": requests.get(a.code),
                }
                for a in offices
            ]
        }

    async def sent_letters(self, request: PluginRequest) -> dict[str, Any]:
        """`GET letters[?office=&after=&limit=]`: letters the caller's offices sent to
        other nodes (outside the province), oldest first, with each recipient's status."""
        caller = request.caller
        office = request.arg("office")
        if office:
            senders: tuple[str, ...] = ((await self._office_of(caller, office)).address,)
        else:
            senders = tuple(
                a.address for a in await self._api.agencies() if a.parent == caller.agency
            )
        if not senders:
            return {"letters": [], "next": None}
        page = await self._api.letters(
            LetterQuery(senders=senders, outside_node=True),
            after=_cursor(request),
            limit=_limit(request),
        )
        return {"letters": [sent_letter_json(r) for r in page.letters], "next": page.next}

    # -- receiving for an office that is not enrolled ------------------------------------

    async def office_inbox(self, request: PluginRequest) -> dict[str, Any]:
        """`GET offices/{office}/inbox[?after=&limit=&unread=true]`: the office's
        inbox, newest first, as its own `GET /api/v1/inbox` would page it."""
        entry = await self._receivable(request.caller, request.params["office"])
        after = _cursor(request)
        limit = _limit(request)
        unread = request.arg("unread")
        if unread not in (None, "", "true", "false"):
            raise invalid("unread", "unread must be true or false")
        await self._on_behalf(request.caller, entry, entry.code, "inbox")
        items, more = await self._api.inbox(
            entry.code,
            before=None if after is None else int(after),
            limit=limit,
            unread=unread == "true",
        )
        return {
            "letters": [summary_json(item) for item in items],
            "next": str(items[-1].cursor) if more and items else None,
        }

    async def office_letter(self, request: PluginRequest) -> dict[str, Any]:
        """`GET offices/{office}/letters/{id}`: a letter the office received."""
        entry = await self._receivable(request.caller, request.params["office"])
        letter_id = request.params["letter_id"]
        view = await self._api.letter_for(entry.code, letter_id)
        if view is None or not any(r.address == entry.address for r in view.recipients):
            raise not_found(f"no letter {letter_id} in the inbox of {entry.address}")
        await self._on_behalf(request.caller, entry, letter_id, "letter")
        return letter_json(view)

    async def office_read(self, request: PluginRequest) -> dict[str, Any]:
        """`POST offices/{office}/letters/{id}/read`: mark it read for the office; the
        sender's tracking says who read it."""
        entry = await self._receivable(request.caller, request.params["office"])
        letter_id = request.params["letter_id"]
        # The core audits the read itself too, in the same transaction, naming the parent.
        marked = await self._api.mark_read(
            entry.code, letter_id, on_behalf_by=request.caller.address
        )
        if marked is None:
            raise not_found(f"no letter {letter_id} in the inbox of {entry.address}")
        await self._on_behalf(request.caller, entry, letter_id, "read")
        return read_json(marked)
