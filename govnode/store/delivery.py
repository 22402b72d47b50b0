"""Local delivery: queued recipients of this node into their agency's inbox."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from govnode.domain.status import RecipientStatus
from govnode.store import audit, directory, sql
from govnode.store.database import insert_returning_ids
from govnode.store.schema import events


@dataclass(frozen=True, slots=True)
class Delivered:
    letter_id: str
    address: str
    code: str
    sender: str
    event_id: int
    status: str  # delivered, or failed when the agency left the directory
    registered_at: float = 0.0  # the letter's registration (delivery latency)
    at: float = 0.0  # when it was delivered


def thd_deliver_local(
    conn: Connection, *, node_id: str, now: float, limit: int = 500, letter_id: str | None = None
) -> list[Delivered]:
    """Deliver up to `limit` due local recipients, oldest first, in this transaction.

    Claiming and delivering happen in one transaction, so a crash either
    delivers a recipient exactly once or leaves it queued for the next run.
    """
    # Several processes on one PostgreSQL: each claims rows no other holds.
    claim = sql.for_update_skip_locked(conn, "recipients")
    # One letter's recipients only: a letter received from a peer, delivered at once.
    one_letter = " AND recipients.letter_id = :letter_id" if letter_id is not None else ""
    due = sql.run(
        conn,
        "SELECT recipients.id, recipients.letter_id, recipients.address, recipients.code,"  # noqa: S608 - no input
        " letters.sender, letters.created_at"
        " FROM recipients JOIN letters ON letters.id = recipients.letter_id"
        f" WHERE recipients.status = :queued AND recipients.node = :node{one_letter}"
        f" AND recipients.next_attempt_at <= :now ORDER BY recipients.id LIMIT :limit{claim}",
        {
            "queued": RecipientStatus.QUEUED.value,
            "node": node_id,
            "now": now,
            "limit": limit,
            "letter_id": letter_id,
        },
    ).all()
    if not due:
        return []
    present = directory.thd_known_codes(conn, {row.code for row in due})
    outcomes: list[tuple[Any, RecipientStatus, str, str | None]] = []
    for row in due:
        if row.code in present:
            outcomes.append((row, RecipientStatus.DELIVERED, "in the inbox", None))
        else:
            reason = f"agency {row.code} is no longer in the directory"
            outcomes.append((row, RecipientStatus.FAILED, reason, reason))
    # One INSERT for all events (their ids are the inbox order), one UPDATE
    # statement run for all recipients, one audit append for all.
    event_ids = insert_returning_ids(
        conn,
        events,
        [
            {
                "letter_id": row.letter_id,
                "address": row.address,
                "status": status.value,
                "node": node_id,
                "detail": detail,
                "at": now,
            }
            for row, status, detail, _ in outcomes
        ],
    )
    sql.run(
        conn,
        "UPDATE recipients SET status = :new_status, reason = :new_reason,"
        " next_attempt_at = NULL, delivered_at = :new_delivered_at, inbox_seq = :new_inbox_seq"
        " WHERE id = :recipient_id AND status = :queued",
        [
            {
                "recipient_id": row.id,
                "new_status": status.value,
                "new_reason": reason,
                "new_delivered_at": now if reason is None else None,
                "new_inbox_seq": event_id if reason is None else None,
                "queued": RecipientStatus.QUEUED.value,
            }
            for (row, status, _, reason), event_id in zip(outcomes, event_ids, strict=True)
        ],
    )
    audit.thd_append_many(
        conn,
        [
            audit.Entry(
                f"letter.{status}",
                node_id,
                row.letter_id,
                now,
                {"recipient": row.address, **({"reason": reason} if reason else {})},
            )
            for row, status, _, reason in outcomes
        ],
    )
    done = [
        Delivered(
            row.letter_id,
            row.address,
            row.code,
            row.sender,
            int(event_id),
            str(status),
            registered_at=row.created_at,
            at=now,
        )
        for (row, status, _, _), event_id in zip(outcomes, event_ids, strict=True)
    ]
    return done
