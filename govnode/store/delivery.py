"""Local delivery: queued recipients of this node into their agency's inbox."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from govnode.domain.status import RecipientStatus
from govnode.store import audit
from govnode.store.schema import agencies, events, letters, recipients


@dataclass(frozen=True, slots=True)
class Delivered:
    letter_id: str
    address: str
    code: str
    sender: str
    event_id: int
    status: str  # delivered, or failed when the agency left the directory


def thd_deliver_local(
    conn: Connection, *, node_id: str, now: float, limit: int = 500
) -> list[Delivered]:
    """Deliver up to `limit` due local recipients, oldest first, in this transaction.

    Claiming and delivering happen in one transaction, so a crash either
    delivers a recipient exactly once or leaves it queued for the next run.
    """
    due = conn.execute(
        select(
            recipients.c.id,
            recipients.c.letter_id,
            recipients.c.address,
            recipients.c.code,
            letters.c.sender,
        )
        .join(letters, letters.c.id == recipients.c.letter_id)
        .where(
            recipients.c.status == RecipientStatus.QUEUED,
            recipients.c.node == node_id,
            recipients.c.next_attempt_at <= now,
        )
        .order_by(recipients.c.id)
        .limit(limit)
        # Several processes on one PostgreSQL: each claims rows no other holds.
        .with_for_update(of=recipients, skip_locked=True)
    ).all()
    if not due:
        return []
    present = set(
        conn.scalars(select(agencies.c.code).where(agencies.c.code.in_({row.code for row in due})))
    )
    outcomes: list[tuple[Any, RecipientStatus, str, str | None]] = []
    for row in due:
        if row.code in present:
            outcomes.append((row, RecipientStatus.DELIVERED, "in the inbox", None))
        else:
            reason = f"agency {row.code} is no longer in the directory"
            outcomes.append((row, RecipientStatus.FAILED, reason, reason))
    # One INSERT for all events (their ids are the inbox order), one UPDATE
    # statement run for all recipients, one audit append for all.
    event_ids = (
        conn.execute(
            insert(events).returning(events.c.id, sort_by_parameter_order=True),
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
        .scalars()
        .all()
    )
    conn.execute(
        update(recipients)
        .where(
            recipients.c.id == bindparam("recipient_id"),
            recipients.c.status == RecipientStatus.QUEUED.value,
        )
        .values(
            status=bindparam("new_status"),
            reason=bindparam("new_reason"),
            next_attempt_at=None,
            delivered_at=bindparam("new_delivered_at"),
            inbox_seq=bindparam("new_inbox_seq"),
        ),
        [
            {
                "recipient_id": row.id,
                "new_status": status.value,
                "new_reason": reason,
                "new_delivered_at": now if reason is None else None,
                "new_inbox_seq": event_id if reason is None else None,
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
        Delivered(row.letter_id, row.address, row.code, row.sender, int(event_id), str(status))
        for (row, status, _, _), event_id in zip(outcomes, event_ids, strict=True)
    ]
    return done
