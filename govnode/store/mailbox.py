"""Reading letters: one letter, its trail, inbox and outbox pages, marking read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, insert, null, select, update

from govnode.domain.status import PROGRESS, RecipientStatus, letter_status
from govnode.store import audit, notices, sql
from govnode.store.schema import attachments, events, letters, recipients


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    at: float
    address: str
    status: str
    node: str
    detail: str | None


@dataclass(frozen=True, slots=True)
class RecipientView:
    address: str
    kind: str
    status: str
    reason: str | None
    delivered_at: float | None
    read_at: float | None
    events: list[Event] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class AttachmentView:
    position: int
    filename: str
    content_type: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class LetterView:
    id: str
    number: str
    sender: str
    user: str
    subject: str
    body: str
    priority: str
    classification: str
    in_reply_to: str | None
    created_at: float
    status: str
    recipients: list[RecipientView]
    reply_by: float | None
    attachments: list[AttachmentView]


@dataclass(frozen=True, slots=True)
class Summary:
    id: str
    number: str
    sender: str
    subject: str
    priority: str
    classification: str
    created_at: float
    delivered_at: float | None
    read_at: float | None
    cursor: int


def _visible(conn: Connection, letter_id: str, viewer: str) -> Any:
    """The letter's row if `viewer` (an address) sent it or has it in its inbox."""
    row = conn.execute(select(letters).where(letters.c.id == letter_id)).first()
    if row is None:
        return None
    if row.sender == viewer:
        return row
    received = conn.scalar(
        select(recipients.c.id).where(
            recipients.c.letter_id == letter_id,
            recipients.c.address == viewer,
            recipients.c.inbox_seq.is_not(None),
        )
    )
    return row if received is not None else None


_EVENT = (
    events.c.id,
    events.c.at,
    events.c.address,
    events.c.status,
    events.c.node,
    events.c.detail,
)


def thd_events(conn: Connection, letter_id: str) -> list[Event]:
    rows = conn.execute(
        select(*_EVENT).where(events.c.letter_id == letter_id).order_by(events.c.id)
    )
    return [Event(*row) for row in rows]


def thd_letter(conn: Connection, letter_id: str, viewer: str) -> LetterView | None:
    row = _visible(conn, letter_id, viewer)
    if row is None:
        return None
    trail = thd_events(conn, letter_id)
    listed = [
        RecipientView(
            r.address,
            r.kind,
            r.status,
            r.reason,
            r.delivered_at,
            r.read_at,
            [e for e in trail if e.address == r.address],
        )
        for r in conn.execute(
            select(recipients).where(recipients.c.letter_id == letter_id).order_by(recipients.c.id)
        )
    ]
    files = [
        AttachmentView(a.position, a.filename, a.content_type, a.size, a.sha256)
        for a in conn.execute(
            select(attachments)
            .where(attachments.c.letter_id == letter_id)
            .order_by(attachments.c.position)
        )
    ]
    return LetterView(
        id=row.id,
        number=row.number,
        sender=row.sender,
        user=row.user,
        subject=row.subject,
        body=row.body,
        priority=row.priority,
        classification=row.classification,
        in_reply_to=row.in_reply_to,
        created_at=row.created_at,
        status=letter_status([RecipientStatus(r.status) for r in listed]),
        recipients=listed,
        attachments=files,
        reply_by=row.reply_by,
    )


def thd_visible_events(conn: Connection, letter_id: str, viewer: str) -> list[Event] | None:
    if _visible(conn, letter_id, viewer) is None:
        return None
    return thd_events(conn, letter_id)


def thd_attachment(
    conn: Connection, letter_id: str, position: int, viewer: str
) -> AttachmentView | None:
    if _visible(conn, letter_id, viewer) is None:
        return None
    row = conn.execute(
        select(attachments).where(
            attachments.c.letter_id == letter_id, attachments.c.position == position
        )
    ).first()
    if row is None:
        return None
    return AttachmentView(row.position, row.filename, row.content_type, row.size, row.sha256)


_SUMMARY = (
    letters.c.id,
    letters.c.number,
    letters.c.sender,
    letters.c.subject,
    letters.c.priority,
    letters.c.classification,
    letters.c.created_at,
)


def _page(conn: Connection, query: Any, limit: int) -> tuple[list[Summary], bool]:
    """A page of summaries, and whether more follow (the query asks for one extra)."""
    rows = conn.execute(query.limit(limit + 1)).all()
    return [Summary(**row._mapping) for row in rows[:limit]], len(rows) > limit


def thd_inbox(
    conn: Connection, address: str, *, before: int | None, limit: int, unread: bool
) -> tuple[list[Summary], bool]:
    """Newest arrivals first; `before` is the cursor of the last letter already seen.

    The order is the arrival order (`inbox_seq`, strictly increasing), so new
    letters only ever appear before the first page: paging onwards never
    skips or repeats one.
    """
    code, _, node = address.partition("@")
    query = (
        select(
            *_SUMMARY,
            recipients.c.delivered_at,
            recipients.c.read_at,
            recipients.c.inbox_seq.label("cursor"),
        )
        .join(letters, letters.c.id == recipients.c.letter_id)
        .where(
            recipients.c.node == node,
            recipients.c.code == code,
            recipients.c.inbox_seq.is_not(None),
        )
        .order_by(recipients.c.inbox_seq.desc())
    )
    if before is not None:
        query = query.where(recipients.c.inbox_seq < before)
    if unread:
        query = query.where(recipients.c.read_at.is_(None))
    return _page(conn, query, limit)


def thd_outbox(
    conn: Connection, address: str, *, before: int | None, limit: int
) -> tuple[list[Summary], bool]:
    """Letters `address` sent, newest first, by registration order."""
    query = (
        select(
            *_SUMMARY,
            null().label("delivered_at"),
            null().label("read_at"),
            letters.c.serial.label("cursor"),
        )
        .where(letters.c.sender == address)
        .order_by(letters.c.serial.desc())
    )
    if before is not None:
        query = query.where(letters.c.serial < before)
    return _page(conn, query, limit)


def thd_mark_read(
    conn: Connection,
    letter_id: str,
    address: str,
    *,
    now: float,
    node_id: str,
    on_behalf_by: str | None = None,
) -> tuple[RecipientView, str] | None:
    """Mark read for `address` (idempotent): its recipient entry and the letter's sender.

    None when `address` never received the letter. `on_behalf_by`: the address
    that read it for `address` (a parent agency, through a plugin), audited as such.
    """
    row = conn.execute(
        select(recipients, letters.c.sender)
        .join(letters, letters.c.id == recipients.c.letter_id)
        .where(
            recipients.c.letter_id == letter_id,
            recipients.c.address == address,
            recipients.c.inbox_seq.is_not(None),
        )
    ).first()
    if row is None:
        return None
    status = RecipientStatus(row.status)
    read_at = row.read_at
    if PROGRESS.get(status, 0) < PROGRESS[RecipientStatus.READ]:
        read_at = now
        status = RecipientStatus.READ
        conn.execute(
            update(recipients).where(recipients.c.id == row.id).values(status=status, read_at=now)
        )
        conn.execute(
            insert(events).values(
                letter_id=letter_id,
                address=address,
                status=status,
                node=node_id,
                detail="read" if on_behalf_by is None else f"read by {on_behalf_by} on its behalf",
                at=now,
            )
        )
        audit.thd_append(
            conn,
            "letter.read",
            actor=address if on_behalf_by is None else f"{on_behalf_by} for {address}",
            subject=letter_id,
            at=now,
        )
        notices.thd_tell_origin(
            conn,
            letter_id=letter_id,
            sender=row.sender,
            address=address,
            status=status,
            node_id=node_id,
            at=now,
        )
    entry = RecipientView(row.address, row.kind, str(status), row.reason, row.delivered_at, read_at)
    return entry, row.sender


@dataclass(frozen=True, slots=True)
class StreamItem:
    """One event of an agency's event stream: `letter` (delivered to it) or `status`."""

    kind: str
    event: Event
    letter_id: str
    number: str
    sender: str
    subject: str
    priority: str
    classification: str
    created_at: float


def thd_stream(conn: Connection, address: str, *, after: int, limit: int = 200) -> list[StreamItem]:
    """Events for `address`'s stream with ids above `after`, oldest first."""
    rows = conn.execute(
        select(
            *_EVENT,
            events.c.letter_id,
            letters.c.number,
            letters.c.sender,
            letters.c.subject,
            letters.c.priority,
            letters.c.classification,
            letters.c.created_at,
        )
        .join(letters, letters.c.id == events.c.letter_id)
        .where(events.c.id > after)
        .where(
            (letters.c.sender == address)
            | ((events.c.address == address) & (events.c.status == "delivered"))
        )
        .order_by(events.c.id)
        .limit(limit)
    ).all()
    return [
        StreamItem(
            "status" if row.sender == address else "letter",
            Event(row.id, row.at, row.address, row.status, row.node, row.detail),
            row.letter_id,
            row.number,
            row.sender,
            row.subject,
            row.priority,
            row.classification,
            row.created_at,
        )
        for row in rows
    ]


def thd_last_event_id(conn: Connection) -> int:
    return int(conn.scalar(select(events.c.id).order_by(events.c.id.desc()).limit(1)) or 0)


def thd_changed_since(conn: Connection, after: int, *, limit: int = 10_000) -> tuple[int, set[str]]:
    """(last event id, addresses concerned) of the events after `after`: for the
    event streams of one process to hear of letters another process changed."""
    rows = sql.run(
        conn,
        "SELECT events.id, events.address, letters.sender FROM events"
        " JOIN letters ON letters.id = events.letter_id"
        " WHERE events.id > :after ORDER BY events.id LIMIT :limit",
        {"after": after, "limit": limit},
    ).all()
    if not rows:
        return after, set()
    return int(rows[-1].id), {row.address for row in rows} | {row.sender for row in rows}
