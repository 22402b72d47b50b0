"""What plugins may read of letters and events (NodeApi): metadata, never bodies."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, and_, exists, select

from govnode.domain.plugins import LetterEvent, LetterQuery, LetterRecord, RecipientRecord
from govnode.store.schema import events, letters, recipients, settings

EVENT_CURSOR = "plugins.event_cursor"


def _records(conn: Connection, rows: Sequence[Any]) -> list[LetterRecord]:
    ids = [row.id for row in rows]
    if not ids:
        return []
    answered: dict[tuple[str, str], float] = {}
    for event in conn.execute(
        select(events.c.letter_id, events.c.address, events.c.at).where(
            events.c.letter_id.in_(ids), events.c.status == "answered"
        )
    ):
        answered.setdefault((event.letter_id, event.address), event.at)
    listed: dict[str, list[RecipientRecord]] = defaultdict(list)
    for r in conn.execute(
        select(recipients).where(recipients.c.letter_id.in_(ids)).order_by(recipients.c.id)
    ):
        listed[r.letter_id].append(
            RecipientRecord(
                address=r.address,
                kind=r.kind,
                status=r.status,
                reason=r.reason,
                delivered_at=r.delivered_at,
                read_at=r.read_at,
                answered_at=answered.get((r.letter_id, r.address)),
            )
        )
    return [
        LetterRecord(
            id=row.id,
            number=row.number,
            sender=row.sender,
            user=row.user,
            subject=row.subject,
            priority=row.priority,
            classification=row.classification,
            in_reply_to=row.in_reply_to,
            reply_by=row.reply_by,
            created_at=row.created_at,
            recipients=tuple(listed[row.id]),
        )
        for row in rows
    ]


_COLUMNS = (
    letters.c.serial,
    letters.c.id,
    letters.c.number,
    letters.c.sender,
    letters.c.user,
    letters.c.subject,
    letters.c.priority,
    letters.c.classification,
    letters.c.in_reply_to,
    letters.c.reply_by,
    letters.c.created_at,
)


def thd_letter(conn: Connection, letter_id: str) -> LetterRecord | None:
    rows = conn.execute(select(*_COLUMNS).where(letters.c.id == letter_id)).all()
    found = _records(conn, rows)
    return found[0] if found else None


def thd_letters(
    conn: Connection, query: LetterQuery, *, node_id: str, after: int, limit: int
) -> tuple[list[LetterRecord], int | None]:
    """Letters matching `query` in registration order after serial `after`;
    (records, the serial to continue after, or None when there are no more)."""
    conditions: list[Any] = [letters.c.serial > after]
    if query.sender is not None:
        conditions.append(letters.c.sender == query.sender)
    if query.senders:
        conditions.append(letters.c.sender.in_(query.senders))
    if query.since is not None:
        conditions.append(letters.c.created_at >= query.since)
    if query.until is not None:
        conditions.append(letters.c.created_at < query.until)
    if query.recipient is not None:
        conditions.append(
            exists().where(
                and_(
                    recipients.c.letter_id == letters.c.id, recipients.c.address == query.recipient
                )
            )
        )
    if query.outside_node:
        conditions.append(
            exists().where(
                and_(recipients.c.letter_id == letters.c.id, recipients.c.node != node_id)
            )
        )
    rows = conn.execute(
        select(*_COLUMNS).where(*conditions).order_by(letters.c.serial).limit(limit + 1)
    ).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return _records(conn, rows), (rows[-1].serial if more else None)


# -- lifecycle events for govnode_letter_event ----------------------------------


def thd_event_cursor(conn: Connection) -> int | None:
    value = conn.scalar(select(settings.c.value).where(settings.c.name == EVENT_CURSOR))
    return None if value is None else int(value)


def thd_set_event_cursor(conn: Connection, position: int) -> None:
    updated = conn.execute(
        settings.update().where(settings.c.name == EVENT_CURSOR).values(value=str(position))
    )
    if not updated.rowcount:
        conn.execute(settings.insert().values(name=EVENT_CURSOR, value=str(position)))


def thd_events_after(
    conn: Connection, after: int, *, node_id: str, limit: int
) -> tuple[list[LetterEvent], int]:
    """The lifecycle events after event id `after`, and the last id looked at.

    A recipient's `queued` step is not an event of its own: the first one of a
    letter registered here is the letter's `registered`.
    """
    rows = conn.execute(
        select(
            events.c.id,
            events.c.letter_id,
            events.c.address,
            events.c.status,
            events.c.node,
            events.c.detail,
            events.c.at,
            letters.c.number,
            letters.c.sender,
        )
        .join(letters, letters.c.id == events.c.letter_id)
        .where(events.c.id > after)
        .order_by(events.c.id)
        .limit(limit)
    ).all()
    found: list[LetterEvent] = []
    registered: set[str] = set()
    for row in rows:
        kind = row.status
        address: str | None = row.address
        if kind == "queued":
            if row.letter_id in registered or row.node != node_id:
                continue
            if not row.sender.endswith(f"@{node_id}") or _registered_before(conn, row, after):
                continue
            registered.add(row.letter_id)
            kind, address = "registered", None
        found.append(
            LetterEvent(
                id=row.id,
                kind=kind,
                letter_id=row.letter_id,
                number=row.number,
                sender=row.sender,
                address=address,
                node=row.node,
                at=row.at,
                detail=row.detail,
            )
        )
    return found, (rows[-1].id if rows else after)


def _registered_before(conn: Connection, row: Any, after: int) -> bool:
    """Whether a `queued` event of the letter came at or before `after` (a page
    boundary fell between its recipients' events)."""
    earlier = conn.scalar(
        select(events.c.id)
        .where(
            events.c.letter_id == row.letter_id, events.c.status == "queued", events.c.id <= after
        )
        .limit(1)
    )
    return earlier is not None
