"""Letters received from peer nodes: stored once per envelope, delivered or handed on.

A peer retries until it has our receipts, so an envelope may arrive more
than once: the first arrival stores the letter and delivers it (or queues it
for the next hop, keeping the signed envelope as it came), in one
transaction; every later one gets the same outcome back and changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import Connection, select

from govnode.domain.address import Address, InvalidAddress
from govnode.domain.envelope import Envelope, SignedEnvelope
from govnode.domain.status import RecipientStatus
from govnode.store import audit, delivery
from govnode.store.database import bulk_insert
from govnode.store.letters import thd_take_numbers
from govnode.store.schema import attachments, events, inbound_envelopes, letters, recipients

RECEIVED_YEAR = 0  # the `year` of received letters: their sequence is the order of arrival


class LetterExists(Exception):
    """A letter with this id is here already, under another envelope."""


@dataclass(frozen=True, slots=True)
class Accepted:
    outcome: tuple[tuple[str, str, str], ...]  # (address, delivered | failed, detail)
    replayed: bool
    delivered: tuple[delivery.Delivered, ...] = ()


def thd_accept_envelope(
    conn: Connection, signed: SignedEnvelope, *, peer: str, node_id: str, now: float
) -> Accepted:
    """Store a verified envelope and deliver it here or queue it for its next hop; or replay.

    Every envelope of a letter (one per destination node) may pass this node:
    the letter is stored once, each envelope adds its destination's recipients.
    """
    envelope = signed.envelope
    earlier = conn.execute(
        select(inbound_envelopes.c.outcome).where(inbound_envelopes.c.envelope_id == envelope.id)
    ).scalar_one_or_none()
    if earlier is not None:
        return Accepted(tuple(tuple(item) for item in json.loads(earlier)), replayed=True)
    stored = conn.execute(
        select(letters.c.sender, letters.c.number).where(letters.c.id == envelope.letter_id)
    ).first()
    if stored is not None and (stored.sender, stored.number) != (envelope.sender, envelope.number):
        raise LetterExists(envelope.letter_id)
    relaying = envelope.destination != node_id
    local: list[Address] = []  # the recipients at the envelope's destination
    outcome: list[tuple[str, str, str]] = []
    for text, _kind in envelope.recipients:
        try:
            address = Address.parse(text, local_node=envelope.origin)
        except InvalidAddress:
            outcome.append((text, RecipientStatus.FAILED.value, "not an agency address"))
            continue
        if address.node == envelope.destination:
            local.append(address)
    if stored is None:
        _store_letter(conn, envelope)
    kinds = dict(envelope.recipients)
    bulk_insert(
        conn,
        recipients,
        [
            {
                "letter_id": envelope.letter_id,
                "address": str(address),
                "code": address.code,
                "node": address.node,
                "kind": kinds.get(str(address), "to"),
                "status": RecipientStatus.QUEUED.value,
                "next_attempt_at": now,
                "attempts": 0,
            }
            for address in local
        ],
    )
    bulk_insert(
        conn,
        events,
        [
            {
                "letter_id": envelope.letter_id,
                "address": str(address),
                "status": RecipientStatus.QUEUED.value,
                "node": node_id,
                "detail": f"received from {peer} ({envelope.number})"
                + (f", for {envelope.destination}" if relaying else ""),
                "at": now,
            }
            for address in local
        ],
    )
    done: list[delivery.Delivered] = []
    if relaying:
        outcome += [
            (
                str(address),
                RecipientStatus.RELAYED.value,
                f"handed on towards {envelope.destination}",
            )
            for address in local
        ]
    else:
        done = delivery.thd_deliver_local(
            conn, node_id=node_id, now=now, limit=len(local) or 1, letter_id=envelope.letter_id
        )
        reasons = {item.address: item.status for item in done}
        outcome += [
            (
                str(address),
                reasons.get(str(address), RecipientStatus.FAILED.value),
                "in the inbox"
                if reasons.get(str(address)) == RecipientStatus.DELIVERED.value
                else f"no agency {address} here",
            )
            for address in local
        ]
    audit.thd_append(
        conn,
        "letter.received",
        actor=peer,
        subject=envelope.letter_id,
        at=now,
        detail={
            "envelope": envelope.id,
            "origin": envelope.origin,
            "destination": envelope.destination,
            "number": envelope.number,
            "hops": list(signed.hops),
        },
    )
    conn.execute(
        inbound_envelopes.insert().values(
            envelope_id=envelope.id,
            letter_id=envelope.letter_id,
            peer=peer,
            origin=envelope.origin,
            received_at=now,
            outcome=json.dumps(outcome, ensure_ascii=False),
            destination=envelope.destination,
            document=json.dumps(signed.forwarded_by(node_id).to_json(), ensure_ascii=False)
            if relaying
            else None,
        )
    )
    return Accepted(tuple(outcome), replayed=False, delivered=tuple(done))


def thd_envelope_to_hand_on(conn: Connection, envelope_id: str) -> SignedEnvelope | None:
    """The envelope as this relay hands it on (its hops end with this node)."""
    document = conn.execute(
        select(inbound_envelopes.c.document).where(inbound_envelopes.c.envelope_id == envelope_id)
    ).scalar_one_or_none()
    return SignedEnvelope.from_json(json.loads(document)) if document is not None else None


def _store_letter(conn: Connection, envelope: Envelope) -> None:
    bulk_insert(
        conn,
        letters,
        [
            {
                "id": envelope.letter_id,
                "number": envelope.number,
                "year": RECEIVED_YEAR,
                "sequence": thd_take_numbers(conn, RECEIVED_YEAR, 1),
                "sender": envelope.sender,
                "user": "-",  # who inside the sending agency stays with its node
                "subject": envelope.subject,
                "body": envelope.body,
                "priority": envelope.priority,
                "classification": envelope.classification,
                "in_reply_to": envelope.in_reply_to,
                "created_at": envelope.created_at_ms / 1000,
                "idempotency_key": None,
                "request_hash": None,
            }
        ],
    )
    bulk_insert(
        conn,
        attachments,
        [
            {
                "letter_id": envelope.letter_id,
                "position": index,
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.size,
                "sha256": a.sha256,
            }
            for index, a in enumerate(envelope.attachments)
        ],
    )
