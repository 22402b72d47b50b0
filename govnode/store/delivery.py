"""Local delivery: queued recipients of this node into their agency's inbox."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, insert, select, update

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
    ).all()
    if not due:
        return []
    present = set(
        conn.scalars(select(agencies.c.code).where(agencies.c.code.in_({row.code for row in due})))
    )
    done = []
    for row in due:
        if row.code in present:
            status, detail, reason = RecipientStatus.DELIVERED, "in the inbox", None
        else:
            status = RecipientStatus.FAILED
            reason = detail = f"agency {row.code} is no longer in the directory"
        event_id = conn.execute(
            insert(events)
            .values(
                letter_id=row.letter_id,
                address=row.address,
                status=status,
                node=node_id,
                detail=detail,
                at=now,
            )
            .returning(events.c.id)
        ).scalar_one()
        conn.execute(
            update(recipients)
            .where(recipients.c.id == row.id)
            .values(
                status=status,
                reason=reason,
                next_attempt_at=None,
                delivered_at=now if reason is None else None,
                inbox_seq=event_id if reason is None else None,
            )
        )
        audit.thd_append(
            conn,
            f"letter.{status}",
            actor=node_id,
            subject=row.letter_id,
            at=now,
            detail={"recipient": row.address, **({"reason": reason} if reason else {})},
        )
        done.append(
            Delivered(row.letter_id, row.address, row.code, row.sender, int(event_id), str(status))
        )
    return done


def thd_next_due(conn: Connection, *, node_id: str) -> float | None:
    """When the earliest queued local recipient falls due (None: nothing queued)."""
    return conn.scalar(
        select(recipients.c.next_attempt_at)
        .where(recipients.c.status == RecipientStatus.QUEUED, recipients.c.node == node_id)
        .order_by(recipients.c.next_attempt_at)
        .limit(1)
    )
