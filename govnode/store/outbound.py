"""The queue of letters for other nodes: claim with a lease, then receipts or a retry.

A recipient at another node is claimed by moving its `next_attempt_at` a
lease ahead, in the claiming transaction: another worker (or process) skips
it, and if this one dies mid-transfer the lease runs out and the letter is
sent again under the same envelope id, which the peer stores only once.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select, update

from govnode.domain.envelope import (
    Envelope,
    EnvelopeAttachment,
    SignedEnvelope,
    SignedReceipt,
    Signer,
)
from govnode.domain.ids import derived_ulid
from govnode.domain.status import RecipientStatus
from govnode.store import audit, federation, notices, sql
from govnode.store.database import bulk_insert
from govnode.store.schema import attachments, events, letters, recipients

LEASE = 120.0  # seconds a claimed transfer may take before others may try it


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One letter for one destination node, as it will travel."""

    envelope: Envelope
    recipient_ids: tuple[int, ...]
    attempts: int
    created_at: float
    here: str  # this node
    # A letter another node registered, handed on: its origin's signature and
    # the hops so far (ending with this node). None: this node's own letter.
    handed_on: SignedEnvelope | None = None

    def signed(self, sign: Signer) -> SignedEnvelope:
        return self.handed_on if self.handed_on is not None else self.envelope.signed(sign)

    @property
    def origin_is_here(self) -> bool:
        return self.envelope.origin == self.here


def thd_claim_remote(conn: Connection, *, node_id: str, now: float, limit: int) -> list[Outgoing]:
    """Claim due recipients at other nodes, one Outgoing per (letter, destination)."""
    claim = sql.for_update_skip_locked(conn, "recipients")
    due = sql.run(
        conn,
        "SELECT id, letter_id, node, attempts FROM recipients"  # noqa: S608 - no input
        " WHERE status = :queued AND node != :node AND next_attempt_at <= :now"
        f" ORDER BY id LIMIT :limit{claim}",
        {"queued": RecipientStatus.QUEUED.value, "node": node_id, "now": now, "limit": limit},
    ).all()
    if not due:
        return []
    sql.run(
        conn,
        # In flight: no reason (a backoff sets the last error as its reason).
        "UPDATE recipients SET next_attempt_at = :until, reason = NULL WHERE id = :id",
        [{"until": now + LEASE, "id": row.id} for row in due],
    )
    groups: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    for row in due:
        groups[(row.letter_id, row.node)].append((row.id, row.attempts))
    outgoing = []
    for (letter_id, destination), claimed in groups.items():
        letter = conn.execute(select(letters).where(letters.c.id == letter_id)).one()
        if notices.origin_of(letter.sender) != node_id:
            item = _handed_on(conn, letter, destination, claimed, node_id=node_id, now=now)
            if item is not None:
                outgoing.append(item)
            continue
        listed = conn.execute(
            select(recipients.c.address, recipients.c.kind)
            .where(recipients.c.letter_id == letter_id)
            .order_by(recipients.c.id)
        ).all()
        files = conn.execute(
            select(attachments)
            .where(attachments.c.letter_id == letter_id)
            .order_by(attachments.c.position)
        ).all()
        envelope = Envelope(
            id=derived_ulid(letter_id, destination),
            origin=node_id,
            destination=destination,
            letter_id=letter_id,
            number=letter.number,
            sender=letter.sender,
            recipients=tuple((row.address, row.kind) for row in listed),
            subject=letter.subject,
            body=letter.body,
            priority=letter.priority,
            classification=letter.classification,
            in_reply_to=letter.in_reply_to,
            created_at_ms=int(letter.created_at * 1000),
            attachments=tuple(
                EnvelopeAttachment(f.filename, f.content_type, f.size, f.sha256) for f in files
            ),
        )
        outgoing.append(
            Outgoing(
                envelope,
                tuple(recipient_id for recipient_id, _ in claimed),
                max(attempts for _, attempts in claimed),
                float(letter.created_at),
                node_id,
            )
        )
    return outgoing


def _handed_on(
    conn: Connection,
    letter: Any,
    destination: str,
    claimed: list[tuple[int, int]],
    *,
    node_id: str,
    now: float,
) -> Outgoing | None:
    """The envelope this relay received for `destination`, to go on as it came."""
    signed = federation.thd_envelope_to_hand_on(conn, derived_ulid(letter.id, destination))
    ids = tuple(recipient_id for recipient_id, _ in claimed)
    item = Outgoing(
        signed.envelope if signed is not None else _placeholder(letter, destination, node_id),
        ids,
        max(attempts for _, attempts in claimed),
        float(letter.created_at),
        node_id,
        handed_on=signed,
    )
    if signed is None:  # cannot happen unless the row was removed by hand
        _give_up(conn, item, RecipientStatus.FAILED, "the envelope to hand on is gone", now=now)
        return None
    return item


def _placeholder(letter: Any, destination: str, node_id: str) -> Envelope:
    return Envelope(
        id=derived_ulid(letter.id, destination),
        origin=notices.origin_of(letter.sender),
        destination=destination,
        letter_id=letter.id,
        number=letter.number,
        sender=letter.sender,
        recipients=(),
        subject="",
        body="",
        priority=letter.priority,
        classification=letter.classification,
        in_reply_to=None,
        created_at_ms=int(letter.created_at * 1000),
    )


def thd_record_receipts(
    conn: Connection, item: Outgoing, receipts: list[SignedReceipt], *, now: float
) -> list[str]:
    """What the next node said, into each recipient's status and tracking; the
    addresses whose status changed. A relay hands the receipts on to the origin."""
    if not item.origin_is_here:
        for signed in receipts:
            notices.thd_hand_on(conn, signed, destination=item.envelope.origin, hops=(), at=now)
    by_address = {signed.receipt.address: signed.receipt for signed in receipts}
    rows = conn.execute(
        select(recipients.c.id, recipients.c.address).where(recipients.c.id.in_(item.recipient_ids))
    ).all()
    changed, trail, entries = [], [], []
    for row in rows:
        receipt = by_address.get(row.address)
        if receipt is None:
            continue  # not answered for: stays claimed until the lease ends, then retried
        status = RecipientStatus(receipt.status)
        final = status in (RecipientStatus.DELIVERED, RecipientStatus.FAILED)
        moved = conn.execute(
            update(recipients)
            .where(recipients.c.id == row.id, recipients.c.status == RecipientStatus.QUEUED)
            .values(
                status=status.value,
                reason=receipt.detail if status is RecipientStatus.FAILED else None,
                next_attempt_at=None if final or status is RecipientStatus.RELAYED else now,
                delivered_at=now if status is RecipientStatus.DELIVERED else None,
            )
        )
        if moved.rowcount == 0:
            # Answered already: a transfer sent twice (a lease that ran out, or
            # recovered at a server's start while another still sent it).
            continue
        changed.append(row.address)
        trail.append(
            {
                "letter_id": item.envelope.letter_id,
                "address": row.address,
                "status": status.value,
                "node": receipt.node,
                "detail": receipt.detail,
                "at": receipt.at_ms / 1000,
            }
        )
        entries.append(
            audit.Entry(
                f"letter.{status.value}",
                receipt.node,
                item.envelope.letter_id,
                now,
                {"recipient": row.address, "envelope": item.envelope.id, "receipt": True},
            )
        )
    bulk_insert(conn, events, trail)
    audit.thd_append_many(conn, entries)
    return changed


def thd_retry_later(
    conn: Connection,
    item: Outgoing,
    reason: str,
    *,
    now: float,
    retry_min: float,
    retry_max: float,
    lifetime: float,
) -> bool:
    """Count a failed attempt: back off, or expire once the lifetime is over.
    True when the recipients expired."""
    if now >= item.created_at + lifetime:
        detail = f"not handed on within {lifetime / 86400:g} days; last: {reason}"
        _give_up(conn, item, RecipientStatus.EXPIRED, detail, now=now)
        return True
    delay = min(retry_min * 2**item.attempts, retry_max)
    conn.execute(
        update(recipients)
        .where(recipients.c.id.in_(item.recipient_ids))
        .values(attempts=item.attempts + 1, next_attempt_at=now + delay, reason=reason)
    )
    return False


def thd_fail(conn: Connection, item: Outgoing, reason: str, *, now: float) -> None:
    """Give up on these recipients for good (no route, refused by the peer)."""
    _give_up(conn, item, RecipientStatus.FAILED, reason, now=now)


def _give_up(
    conn: Connection, item: Outgoing, status: RecipientStatus, detail: str, *, now: float
) -> None:
    """Final for these recipients; a relay tells the letter's origin."""
    conn.execute(
        update(recipients)
        .where(recipients.c.id.in_(item.recipient_ids))
        .values(status=status.value, reason=detail, next_attempt_at=None)
    )
    addresses = conn.scalars(
        select(recipients.c.address).where(recipients.c.id.in_(item.recipient_ids))
    ).all()
    bulk_insert(
        conn,
        events,
        [
            {
                "letter_id": item.envelope.letter_id,
                "address": address,
                "status": status.value,
                "node": item.here,
                "detail": detail,
                "at": now,
            }
            for address in addresses
        ],
    )
    if not item.origin_is_here:
        for address in addresses:
            notices.thd_tell_origin(
                conn,
                letter_id=item.envelope.letter_id,
                sender=item.envelope.sender,
                address=address,
                status=status,
                node_id=item.here,
                at=now,
                detail=detail,
            )


def thd_release_backlog(
    conn: Connection, *, node_id: str, via: str, routes: Any, now: float
) -> int:
    """Make every letter waiting out a backoff for a node reached through `via` due now.

    Called when `via` has just answered: its backlog flows at once instead of
    at each letter's next retry. `routes(node)` is the next hop for a node.
    """
    waiting = conn.scalars(
        select(recipients.c.node)
        .where(
            recipients.c.status == RecipientStatus.QUEUED.value,
            recipients.c.node != node_id,
            recipients.c.next_attempt_at > now,
        )
        .distinct()
    ).all()
    destinations = [node for node in waiting if routes(node) == via]
    if not destinations:
        return 0
    result = conn.execute(
        update(recipients)
        .where(
            recipients.c.status == RecipientStatus.QUEUED.value,
            recipients.c.node.in_(destinations),
            recipients.c.next_attempt_at > now,
            recipients.c.reason.is_not(None),  # waiting out a backoff, not in flight
        )
        .values(next_attempt_at=now)
    )
    return int(result.rowcount or 0)


def thd_recover_leases(conn: Connection, *, node_id: str, now: float) -> tuple[int, int]:
    """Make transfers leased and not finished (in flight when the node stopped) due now.

    In flight means leased without a reason: a backoff always records one.
    Only for a node's first process at start, when no other is sending.
    """
    letters_ = sql.run(
        conn,
        "UPDATE recipients SET next_attempt_at = :now WHERE status = :queued"
        " AND node != :node AND next_attempt_at > :now AND reason IS NULL",
        {"now": now, "queued": RecipientStatus.QUEUED.value, "node": node_id},
    ).rowcount
    notices_ = sql.run(
        conn,
        "UPDATE notices SET next_attempt_at = :now WHERE next_attempt_at > :now AND reason IS NULL",
        {"now": now},
    ).rowcount
    return int(letters_ or 0), int(notices_ or 0)


def thd_queued_letter(conn: Connection, letter_id: str) -> list[dict[str, Any]]:
    """Each recipient of a letter with where it stands in the queue (`queue show ID`)."""
    rows = conn.execute(
        select(
            recipients.c.address,
            recipients.c.status,
            recipients.c.attempts,
            recipients.c.next_attempt_at,
            recipients.c.reason,
        )
        .where(recipients.c.letter_id == letter_id)
        .order_by(recipients.c.id)
    ).all()
    return [dict(row._mapping) for row in rows]


@dataclass(frozen=True, slots=True)
class PeerActivity:
    last_success: float | None  # when it last took a letter (relayed or delivered)
    backing_off: int  # recipients waiting out a backoff for destinations behind it
    next_attempt: float | None


def thd_peer_activity(
    conn: Connection, *, peers: list[str], node_id: str, next_hop: Any, now: float
) -> dict[str, PeerActivity]:
    """For `govnode peers`: each peer's last success and the backoff of what waits
    for it; `next_hop(node)` is the routing table's answer (None: no route)."""
    waiting: dict[str, tuple[int, float | None]] = {}
    rows = sql.run(
        conn,
        "SELECT node, COUNT(*), MIN(next_attempt_at) FROM recipients"
        " WHERE status = :queued AND node != :node AND next_attempt_at > :now"
        " AND reason IS NOT NULL GROUP BY node",
        {"queued": RecipientStatus.QUEUED.value, "node": node_id, "now": now},
    ).all()
    for destination, count, due in (tuple(row) for row in rows):
        hop = next_hop(destination)
        if hop is None:
            continue
        before, soonest = waiting.get(hop, (0, None))
        waiting[hop] = (before + count, due if soonest is None else min(soonest, due))
    activity = {}
    for peer in peers:
        last = sql.run(
            conn,
            "SELECT at FROM events WHERE node = :peer AND status IN ('relayed', 'delivered')"
            " ORDER BY id DESC LIMIT 1",
            {"peer": peer},
        ).scalar()
        count, due = waiting.get(peer, (0, None))
        activity[peer] = PeerActivity(last, count, due)
    return activity
