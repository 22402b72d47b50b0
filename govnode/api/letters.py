"""Letters: submit, read, track, download, inbox and outbox (API.md, letters part)."""

from __future__ import annotations

import base64
import dataclasses
import os
import time
from typing import Any
from urllib.parse import quote

from twisted.internet.threads import deferToThreadPool
from twisted.logger import LogLevel
from twisted.protocols.basic import FileSender
from twisted.web.iweb import IRequest

from govnode import logs
from govnode.api.base import (
    MAX_PAGE,
    ApiBase,
    app,
    json_answer,
    query_int,
    query_text,
    read_json_object,
)
from govnode.api.errors import ApiError, invalid_field, not_found
from govnode.domain.calendar import jalali_text, rfc3339
from govnode.domain.ids import is_ulid, new_ulid
from govnode.domain.letters import (
    IDEMPOTENCY_KEY,
    MAX_ATTACHMENTS,
    LetterInvalid,
    Submission,
    parse_submission,
)
from govnode.store import mailbox
from govnode.store.blobs import BadBase64
from govnode.store.letters import (
    IdempotencyConflict,
    NewLetter,
    NotAReply,
    StoredAttachment,
    UnknownRecipient,
    thd_replay,
)

PARSE_IN_THREAD = 256 * 1024  # bodies larger than this are parsed off the reactor thread


def _time(seconds: float | None) -> str | None:
    return None if seconds is None else rfc3339(seconds)


def encode_cursor(kind: str, value: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}{value}".encode()).decode().rstrip("=")


def decode_cursor(kind: str, text: str | None) -> int | None:
    if not text:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
        # A position is a database row id: it fits in 63 bits (SQLite cannot compare more).
        if raw.startswith(kind) and raw[1:].isdigit() and int(raw[1:]) < 2**63:
            return int(raw[1:])
    except (ValueError, UnicodeDecodeError):
        pass
    raise invalid_field("after", "after must be a cursor from a previous answer")


def _body_size(request: IRequest) -> int:
    content = request.content
    if content is None:
        return 0
    position = content.tell()
    content.seek(0, os.SEEK_END)
    size = content.tell()
    content.seek(position)
    return int(size)


def summary_json(item: mailbox.Summary) -> dict[str, Any]:
    return {
        "id": item.id,
        "number": item.number,
        "sender": item.sender,
        "subject": item.subject,
        "priority": item.priority,
        "classification": item.classification,
        "created_at": rfc3339(item.created_at),
        "delivered_at": _time(item.delivered_at),
        "read_at": _time(item.read_at),
    }


def event_json(event: mailbox.Event) -> dict[str, Any]:
    return {
        "at": rfc3339(event.at),
        "address": event.address,
        "status": event.status,
        "node": event.node,
        "detail": event.detail,
    }


def recipient_json(entry: mailbox.RecipientView, *, events: bool) -> dict[str, Any]:
    answer: dict[str, Any] = {"address": entry.address, "kind": entry.kind, "status": entry.status}
    if entry.reason:
        answer["reason"] = entry.reason
    if events:
        answer["events"] = [
            {k: v for k, v in event_json(e).items() if k != "address"} for e in entry.events
        ]
    return answer


def letter_json(view: mailbox.LetterView) -> dict[str, Any]:
    return {
        "id": view.id,
        "number": view.number,
        "sender": view.sender,
        "to": [r.address for r in view.recipients if r.kind == "to"],
        "cc": [r.address for r in view.recipients if r.kind == "cc"],
        "subject": view.subject,
        "body": view.body,
        "priority": view.priority,
        "classification": view.classification,
        "in_reply_to": view.in_reply_to,
        "reply_by": _time(view.reply_by),
        "attachments": [
            {
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.size,
                "sha256": a.sha256,
            }
            for a in view.attachments
        ],
        "status": view.status,
        "created_at": rfc3339(view.created_at),
        "created_at_jalali": jalali_text(view.created_at),
        "recipients": [recipient_json(r, events=True) for r in view.recipients],
    }


def _without_data(submission: Submission) -> Submission:
    """The attachments are on disk now: do not hold their base64 until the commit."""
    return dataclasses.replace(
        submission,
        attachments=tuple(dataclasses.replace(a, data="") for a in submission.attachments),
    )


def content_disposition(filename: str) -> str:
    fallback = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename
    )
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


class LetterRoutes(ApiBase):
    """The letter endpoints; `AgencyApi` adds login and the directory."""

    def _parse(self, request: IRequest) -> Submission:
        document = read_json_object(request, self._limits.max_body_bytes)
        return parse_submission(
            document,
            local_node=self._node_id,
            max_attachment_bytes=self._limits.max_attachment_bytes,
            # Only an Idempotency-Key needs the body's hash: skip it otherwise.
            with_hash=request.getHeader(b"idempotency-key") is not None,
        )

    def _read_parse_store(
        self, request: IRequest
    ) -> tuple[Submission, tuple[StoredAttachment, ...]]:
        """On a thread: the whole submission of a large body."""
        submission = self._parse(request)
        stored = self._store_attachments(submission)
        return _without_data(submission), stored

    async def _submission(
        self, request: IRequest
    ) -> tuple[Submission, tuple[StoredAttachment, ...]]:
        """The checked submission and its stored attachments (LetterInvalid otherwise).

        A large body is parsed, checked and hashed on a thread: JSON of tens of
        MB would hold up every other client for a noticeable time. The size is
        the body received (it is whole by now), so chunked bodies count too.
        """
        pool = self._reactor.getThreadPool()
        if _body_size(request) > PARSE_IN_THREAD:
            large: tuple[Submission, tuple[StoredAttachment, ...]] = await deferToThreadPool(
                self._reactor, pool, self._read_parse_store, request
            )
            return large
        submission = self._parse(request)
        if not submission.attachments:
            return submission, ()
        stored: tuple[StoredAttachment, ...] = await deferToThreadPool(
            self._reactor, pool, self._store_attachments, submission
        )
        return _without_data(submission), stored

    def _store_attachments(self, submission: Submission) -> tuple[StoredAttachment, ...]:
        """On a thread: decode, hash and sync every attachment before the letter commits."""
        stored = []
        for index, item in enumerate(submission.attachments):
            try:
                sha256, size = self._blobs.write_base64(item.data)
            except BadBase64:
                raise LetterInvalid(
                    f"attachments[{index}].data", "data is not valid base64"
                ) from None
            stored.append(StoredAttachment(item.filename, item.content_type, size, sha256))
        return tuple(stored)

    @app.route("/api/v1/letters", methods=["POST"])
    async def submit(self, request: IRequest) -> bytes:
        started = time.perf_counter()
        _, agency, user = await self.caller_user(request)
        key_header = request.getHeader(b"idempotency-key")
        key = None
        if key_header is not None:
            key = key_header.decode("latin-1")
            if not IDEMPOTENCY_KEY.fullmatch(key):
                raise invalid_field(
                    "Idempotency-Key", "Idempotency-Key must be 1-128 printable ASCII characters"
                )
        try:
            submission, stored = await self._submission(request)
        except LetterInvalid as exc:
            if exc.too_large:
                raise ApiError(413, "too_large", exc.message, field=exc.field) from None
            raise invalid_field(exc.field, exc.message) from None
        sender = f"{agency}@{self._node_id}"
        if submission.reply_by is not None and submission.reply_by < self._clock.seconds():
            raise invalid_field("reply_by", "reply_by is in the past")
        if self._plugins is not None and not await self._replayed(sender, key, submission):
            submission = await self._plugins.policy(sender, user, submission)
        now = self._clock.seconds()
        new = NewLetter(
            id=new_ulid(int(now * 1000)),
            sender=sender,
            user=user,
            submission=submission,
            attachments=stored,
            created_at=now,
            idempotency_key=key,
        )
        try:
            registered = await self._registrar.register(new)
        except UnknownRecipient as exc:
            raise ApiError(422, "unknown_recipient", str(exc), field=exc.field) from None
        except IdempotencyConflict:
            raise ApiError(
                409, "conflict", "this Idempotency-Key was used with another body"
            ) from None
        except NotAReply:
            raise invalid_field(
                "in_reply_to", "in_reply_to must name a letter your agency received"
            ) from None
        if not registered.replayed:
            # A debug event per letter, built only when debug is on: at info an event
            # thrown away still costs; the audit log has every letter anyway.
            if logs.enabled(LogLevel.debug):
                self._log.debug(
                    "letter {letter_id} registered as {number} from {agency} ({user})",
                    letter_id=registered.id,
                    number=registered.number,
                    agency=agency,
                    user=user,
                    recipients=[str(r.address) for r in submission.recipients],
                )
            self._metrics.letters_registered.inc()
            # Local recipients were delivered with the registration; the delivery
            # worker takes letters to other nodes.
            if any(r.address.node != self._node_id for r in submission.recipients):
                self._on_change()
            if submission.in_reply_to is not None:
                self._hub.notify_all()  # the replied-to letter's sender sees `answered`
            else:
                self._hub.notify([new.sender])
        self._metrics.submit_seconds.observe(time.perf_counter() - started)
        return json_answer(
            request,
            201,
            {
                "id": registered.id,
                "number": registered.number,
                "status": "registered",
                "created_at": rfc3339(registered.created_at),
                "created_at_jalali": jalali_text(registered.created_at),
                "recipients": [
                    {"address": a, "kind": k, "status": s} for a, k, s in registered.recipients
                ],
            },
        )

    async def _replayed(self, sender: str, key: str | None, submission: Submission) -> bool:
        """Whether this is a retry of a letter already registered: it gets its first
        answer again, whatever a policy would say of it now."""
        if key is None:
            return False
        try:
            earlier = await self._db.read(thd_replay, sender, key, submission.request_hash)
        except IdempotencyConflict:
            return True  # the registrar answers 409
        return earlier is not None

    def _letter_id(self, letter_id: str) -> str:
        if not is_ulid(letter_id):
            raise not_found("no such letter")
        return letter_id

    @app.route("/api/v1/letters/<string:letter_id>", methods=["GET"])
    async def show(self, request: IRequest, letter_id: str) -> bytes:
        address = await self.caller_address(request)
        view = await self._db.read(mailbox.thd_letter, self._letter_id(letter_id), address)
        if view is None:
            raise not_found("no such letter")
        return json_answer(request, 200, letter_json(view))

    @app.route("/api/v1/letters/<string:letter_id>/events", methods=["GET"])
    async def trail(self, request: IRequest, letter_id: str) -> bytes:
        address = await self.caller_address(request)
        found = await self._db.read(mailbox.thd_visible_events, self._letter_id(letter_id), address)
        if found is None:
            raise not_found("no such letter")
        return json_answer(request, 200, {"events": [event_json(e) for e in found]})

    @app.route("/api/v1/letters/<string:letter_id>/attachments/<int:index>", methods=["GET"])
    async def download(self, request: IRequest, letter_id: str, index: int) -> bytes:
        address = await self.caller_address(request)
        if index >= MAX_ATTACHMENTS:
            raise not_found("no such attachment")
        found = await self._db.read(
            mailbox.thd_attachment, self._letter_id(letter_id), index, address
        )
        if found is None:
            raise not_found("no such attachment")
        path = self._blobs.path(found.sha256)
        handle = path.open("rb")
        try:
            request.setHeader(b"Content-Type", found.content_type.encode("ascii"))
            request.setHeader(b"Content-Length", str(found.size).encode("ascii"))
            # Never let a browser guess another type than the stored one (no sniffing).
            request.setHeader(b"X-Content-Type-Options", b"nosniff")
            request.setHeader(
                b"Content-Disposition", content_disposition(found.filename).encode("ascii")
            )
            await FileSender().beginFileTransfer(handle, request)
        finally:
            handle.close()
        return b""

    @app.route("/api/v1/letters/<string:letter_id>/read", methods=["POST"])
    async def mark_read(self, request: IRequest, letter_id: str) -> bytes:
        address = await self.caller_address(request)
        marked = await self._db.run(
            mailbox.thd_mark_read,
            self._letter_id(letter_id),
            address,
            now=self._clock.seconds(),
            node_id=self._node_id,
        )
        if marked is None:
            raise not_found("no such letter")
        entry, sender = marked
        self._hub.notify([sender])  # the sender's stream shows `read`
        answer = recipient_json(entry, events=False)
        answer["read_at"] = _time(entry.read_at)
        return json_answer(request, 200, answer)

    def _page(self, request: IRequest, kind: str) -> tuple[int | None, int]:
        return (
            decode_cursor(kind, query_text(request, "after")),
            query_int(request, "limit", 50, 1, MAX_PAGE),
        )

    @app.route("/api/v1/inbox", methods=["GET"])
    async def inbox(self, request: IRequest) -> bytes:
        address = await self.caller_address(request)
        before, limit = self._page(request, "i")
        unread_text = query_text(request, "unread")
        if unread_text not in (None, "", "true", "false"):
            raise invalid_field("unread", "unread must be true or false")
        items, more = await self._db.read(
            mailbox.thd_inbox, address, before=before, limit=limit, unread=unread_text == "true"
        )
        return json_answer(
            request,
            200,
            {
                "letters": [summary_json(i) for i in items],
                "next": encode_cursor("i", items[-1].cursor) if more else None,
            },
        )

    @app.route("/api/v1/outbox", methods=["GET"])
    async def outbox(self, request: IRequest) -> bytes:
        address = await self.caller_address(request)
        before, limit = self._page(request, "o")
        items, more = await self._db.read(mailbox.thd_outbox, address, before=before, limit=limit)
        return json_answer(
            request,
            200,
            {
                "letters": [summary_json(i) for i in items],
                "next": encode_cursor("o", items[-1].cursor) if more else None,
            },
        )
