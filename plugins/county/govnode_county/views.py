"""JSON of letters in the shapes the agency API uses (API.md), so a parent's
software reads an office's letters with the code that reads its own.

`NodeApi.inbox`, `letter_for` and `mark_read` answer with the core's
mailbox values, which `govnode.hooks` does not export: the protocols below
name the attributes used here, so mypy checks them without importing
anything outside the plugin interface.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from govnode.hooks import LetterRecord, RecipientRecord, jalali_text, rfc3339


class Summary(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def number(self) -> str: ...

    @property
    def sender(self) -> str: ...

    @property
    def subject(self) -> str: ...

    @property
    def priority(self) -> str: ...

    @property
    def classification(self) -> str: ...

    @property
    def created_at(self) -> float: ...

    @property
    def delivered_at(self) -> float | None: ...

    @property
    def read_at(self) -> float | None: ...

    @property
    def cursor(self) -> int: ...


class Event(Protocol):
    @property
    def at(self) -> float: ...

    @property
    def address(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def node(self) -> str: ...

    @property
    def detail(self) -> str | None: ...


class RecipientView(Protocol):
    @property
    def address(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def reason(self) -> str | None: ...

    @property
    def read_at(self) -> float | None: ...

    @property
    def events(self) -> Sequence[Event]: ...


class AttachmentView(Protocol):
    @property
    def filename(self) -> str: ...

    @property
    def content_type(self) -> str: ...

    @property
    def size(self) -> int: ...

    @property
    def sha256(self) -> str: ...


class LetterView(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def number(self) -> str: ...

    @property
    def sender(self) -> str: ...

    @property
    def subject(self) -> str: ...

    @property
    def body(self) -> str: ...

    @property
    def priority(self) -> str: ...

    @property
    def classification(self) -> str: ...

    @property
    def in_reply_to(self) -> str | None: ...

    @property
    def reply_by(self) -> float | None: ...

    @property
    def created_at(self) -> float: ...

    @property
    def status(self) -> str: ...

    @property
    def recipients(self) -> Sequence[RecipientView]: ...

    @property
    def attachments(self) -> Sequence[AttachmentView]: ...


def _time(seconds: float | None) -> str | None:
    return None if seconds is None else rfc3339(seconds)


# -- letters the offices sent (metadata only, as plugins see them) --------------

_PROGRESS = {"queued": 0, "relayed": 1, "delivered": 2, "read": 3, "answered": 4}


def letter_status(recipients: Sequence[RecipientRecord]) -> str:
    """The letter's status as `GET /api/v1/letters/{id}` gives it: the least advanced
    recipient's, a failed or expired one first (the core's rule, not exported)."""
    statuses = [r.status for r in recipients]
    if not statuses:
        return "registered"
    if "failed" in statuses:
        return "failed"
    if "expired" in statuses:
        return "expired"
    least = min(statuses, key=lambda status: _PROGRESS.get(status, 0))
    return "registered" if least == "queued" else least


def sent_letter_json(record: LetterRecord) -> dict[str, Any]:
    """A letter an office sent, as its parent follows it: who, when, where each
    recipient stands; no body (the parent is not a party to it)."""
    return {
        "id": record.id,
        "number": record.number,
        "sender": record.sender,
        "subject": record.subject,
        "priority": record.priority,
        "classification": record.classification,
        "in_reply_to": record.in_reply_to,
        "created_at": rfc3339(record.created_at),
        "created_at_jalali": jalali_text(record.created_at),
        "status": letter_status(record.recipients),
        "recipients": [
            {
                "address": r.address,
                "kind": r.kind,
                "status": r.status,
                **({"reason": r.reason} if r.reason else {}),
                "delivered_at": _time(r.delivered_at),
                "read_at": _time(r.read_at),
                "answered_at": _time(r.answered_at),
            }
            for r in record.recipients
        ],
    }


# -- an office's inbox, read by its parent -------------------------------------------


def summary_json(item: Summary) -> dict[str, Any]:
    """An inbox summary, as `GET /api/v1/inbox` gives it."""
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


def recipient_json(entry: RecipientView, *, events: bool) -> dict[str, Any]:
    answer: dict[str, Any] = {"address": entry.address, "kind": entry.kind, "status": entry.status}
    if entry.reason:
        answer["reason"] = entry.reason
    if events:
        answer["events"] = [
            {
                "at": rfc3339(e.at),
                "status": e.status,
                "node": e.node,
                "detail": e.detail,
            }
            for e in entry.events
        ]
    return answer


def letter_json(view: LetterView) -> dict[str, Any]:
    """A whole letter, as `GET /api/v1/letters/{id}` gives it."""
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


def read_json(entry: RecipientView) -> dict[str, Any]:
    """What `POST /api/v1/letters/{id}/read` answers: the recipient entry."""
    answer = recipient_json(entry, events=False)
    answer["read_at"] = _time(entry.read_at)
    return answer
