"""Status notices: signed receipts on their way back to the node a letter came from.

A recipient's node says `read` and `answered`; a relay hands on the
`delivered` (or `failed`) receipts the next node signed, and says `failed` or
`expired` itself when it gives up. Each notice waits here until the next hop
has taken it, with the same lease and backoff as letters; at the origin it
moves the recipient's status forward (never back) and joins the trail.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from govnode.domain.envelope import Receipt, SignedReceipt, StatusNotice
from govnode.domain.ids import derived_ulid
from govnode.domain.status import FINAL, PROGRESS, RecipientStatus
from govnode.store import audit
from govnode.store.schema import events, letters, notices, recipients

LEASE = 120.0  # seconds a claimed notice may take before it is sent again
FINAL_RANK = PROGRESS[RecipientStatus.DELIVERED]  # failed/expired replace only what is below
ONLY_FROM_THE_RECIPIENTS_NODE = frozenset(
    {RecipientStatus.DELIVERED, RecipientStatus.READ, RecipientStatus.ANSWERED}
)


def origin_of(sender: str) -> str:
    return sender.rpartition("@")[2]


def thd_tell_origin(
    conn: Connection,
    *,
    letter_id: str,
    sender: str,
    address: str,
    status: RecipientStatus,
    node_id: str,
    at: float,
    detail: str = "",
) -> None:
    """Queue this node's own notice for a letter another node registered (else nothing)."""
    origin = origin_of(sender)
    if origin == node_id:
        return
    receipt = Receipt(
        envelope_id=derived_ulid(letter_id, address.rpartition("@")[2]),
        letter_id=letter_id,
        node=node_id,
        address=address,
        status=status.value,
        at_ms=int(at * 1000),
        detail=detail,
    )
    _queue(conn, origin, receipt, None, (), at)


def thd_hand_on(
    conn: Connection, signed: SignedReceipt, *, destination: str, hops: tuple[str, ...], at: float
) -> None:
    """Queue another node's signed receipt for `destination`, as it came."""
    _queue(conn, destination, signed.receipt, signed.signature, hops, at)


def _queue(
    conn: Connection,
    destination: str,
    receipt: Receipt,
    signature: str | None,
    hops: tuple[str, ...],
    at: float,
) -> None:
    conn.execute(
        insert(notices).values(
            destination=destination,
            letter_id=receipt.letter_id,
            receipt=json.dumps(receipt.document(), ensure_ascii=False),
            signature=signature,
            hops=json.dumps(list(hops)),
            created_at=at,
            next_attempt_at=at,
            attempts=0,
        )
    )


@dataclass(frozen=True, slots=True)
class Notice:
    id: int
    destination: str
    receipt: Receipt
    signature: str | None  # None: ours, to be signed as it goes
    hops: tuple[str, ...]
    created_at: float
    attempts: int


def thd_claim(conn: Connection, *, now: float, limit: int) -> list[Notice]:
    """Due notices, leased for LEASE seconds (another process skips them)."""
    rows = conn.execute(
        select(notices).where(notices.c.next_attempt_at <= now).order_by(notices.c.id).limit(limit)
    ).all()
    if not rows:
        return []
    conn.execute(
        update(notices)
        .where(notices.c.id.in_([row.id for row in rows]))
        .values(next_attempt_at=now + LEASE, reason=None)  # in flight: no reason
    )
    return [
        Notice(
            id=row.id,
            destination=row.destination,
            receipt=Receipt(**_receipt_fields(json.loads(row.receipt))),
            signature=row.signature,
            hops=tuple(json.loads(row.hops)),
            created_at=row.created_at,
            attempts=row.attempts,
        )
        for row in rows
    ]


def _receipt_fields(document: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in document.items() if key != "protocol"}


def thd_done(conn: Connection, ids: list[int]) -> None:
    conn.execute(delete(notices).where(notices.c.id.in_(ids)))


def thd_retry_later(
    conn: Connection,
    claimed: list[Notice],
    reason: str,
    *,
    now: float,
    retry_min: float,
    retry_max: float,
    lifetime: float,
) -> int:
    """Back off; notices older than the lifetime are dropped. How many were dropped."""
    old = [n.id for n in claimed if now >= n.created_at + lifetime]
    if old:
        thd_done(conn, old)
    for notice in claimed:
        if notice.id in old:
            continue
        delay = min(retry_min * 2**notice.attempts, retry_max)
        conn.execute(
            update(notices)
            .where(notices.c.id == notice.id)
            .values(attempts=notice.attempts + 1, next_attempt_at=now + delay, reason=reason)
        )
    return len(old)


def thd_apply(conn: Connection, receipts: list[Receipt], *, node_id: str, now: float) -> list[str]:
    """Notices for letters this node registered: status forward, trail, audit.

    Returns the senders to tell (event streams). A notice about a letter or
    recipient we do not have, or seen before, changes nothing.
    """
    senders = []
    for receipt in receipts:
        row = conn.execute(
            select(recipients.c.id, recipients.c.status, letters.c.sender)
            .join(letters, letters.c.id == recipients.c.letter_id)
            .where(
                recipients.c.letter_id == receipt.letter_id,
                recipients.c.address == receipt.address,
            )
        ).first()
        if row is None or origin_of(row.sender) != node_id:
            continue
        new = RecipientStatus(receipt.status)
        if new in ONLY_FROM_THE_RECIPIENTS_NODE and receipt.node != origin_of(receipt.address):
            continue  # a relay may say it handed on or gave up, not that the letter was read
        seen = conn.execute(
            select(events.c.id).where(
                events.c.letter_id == receipt.letter_id,
                events.c.address == receipt.address,
                events.c.status == receipt.status,
                events.c.node == receipt.node,
            )
        ).first()
        if seen is not None:
            continue
        current = RecipientStatus(row.status)
        if current in FINAL:
            forward = False
        elif new in FINAL:
            forward = PROGRESS[current] < FINAL_RANK
        else:
            forward = PROGRESS[new] > PROGRESS[current]
        if new in FINAL and not forward:
            continue  # failed after delivered: a contradiction, not news for the sender
        if forward:
            at = receipt.at_ms / 1000
            times: dict[str, Any] = {}
            if new not in FINAL and PROGRESS[new] >= PROGRESS[RecipientStatus.DELIVERED]:
                # A read notice may come before (or instead of) the delivered one.
                times["delivered_at"] = func.coalesce(recipients.c.delivered_at, at)
            if new in (RecipientStatus.READ, RecipientStatus.ANSWERED):
                times["read_at"] = func.coalesce(recipients.c.read_at, at)
            conn.execute(
                update(recipients)
                .where(recipients.c.id == row.id)
                .values(
                    status=new.value,
                    reason=receipt.detail if new in FINAL else None,
                    next_attempt_at=None,
                    **times,
                )
            )
        conn.execute(
            insert(events).values(
                letter_id=receipt.letter_id,
                address=receipt.address,
                status=new.value,
                node=receipt.node,
                detail=receipt.detail or new.value,
                at=receipt.at_ms / 1000,
            )
        )
        audit.thd_append(
            conn,
            f"letter.{new.value}",
            actor=receipt.node,
            subject=receipt.letter_id,
            at=now,
            detail={"recipient": receipt.address, "notice": True},
        )
        senders.append(row.sender)
    return senders


def thd_receive(
    conn: Connection, received: list[StatusNotice], *, node_id: str, now: float
) -> tuple[list[str], int]:
    """Notices from a peer: applied when they are for this node, else queued to go
    on. The senders to tell, and how many were queued."""
    mine = [notice.signed.receipt for notice in received if notice.destination == node_id]
    onward = [notice for notice in received if notice.destination != node_id]
    for notice in onward:
        thd_hand_on(conn, notice.signed, destination=notice.destination, hops=notice.hops, at=now)
    return thd_apply(conn, mine, node_id=node_id, now=now), len(onward)
