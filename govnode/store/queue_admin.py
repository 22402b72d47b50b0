"""The operator's hand on the queue of letters for other nodes (`govnode queue ...`).

Retry, hold, release and expire work on the recipients that wait for other
nodes (`queued`, at another node). A recipient in flight (claimed by the relay
worker: no reason and `next_attempt_at` a lease ahead, see
`outbound.thd_claim_remote`) is left alone by every one of them: the worker
writes its outcome when the transfer ends, which would undo what the operator
did meanwhile.

A held recipient needs no column of its own: it is queued with no next
attempt (`next_attempt_at IS NULL`), which the claim (`next_attempt_at <=
now`) and the backlog release (`next_attempt_at > now`) never pick, and its
reason says it is held. Every change is one audit record per letter, written
in the same transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, case, func, select, update

from govnode.domain.status import RecipientStatus
from govnode.store import audit, notices
from govnode.store.database import bulk_insert
from govnode.store.schema import events, letters, recipients

HELD = "held by the operator"
"""The reason of a held recipient (who held it and when is in the audit log)."""

_CHUNK = 500  # ids per `IN (...)`: well below every driver's limit on parameters

NextHop = Callable[[str], str | None]
"""The peer a letter for a node goes to (None: no route); `RoutingTable.next_hop`."""


class UnknownLetter(LookupError):
    """No letter with that id on this node."""


@dataclass(frozen=True, slots=True)
class Target:
    """Which waiting recipients a command is about: one letter's, one peer's, or all."""

    letter_id: str | None = None
    peer: str | None = None  # recipients whose destination or next hop is this node


@dataclass(frozen=True, slots=True)
class Changed:
    """What a command did, for the line the operator reads."""

    recipients: int
    letters: int
    in_flight: int = 0  # left alone: being sent right now
    passed_over: int = 0  # left alone: held (retry), already held (hold)


@dataclass(frozen=True, slots=True)
class _Waiting:
    id: int
    letter_id: str
    address: str
    node: str
    held: bool
    in_flight: bool


def is_held(status: str, next_attempt_at: float | None, reason: str | None) -> bool:
    return status == RecipientStatus.QUEUED.value and next_attempt_at is None and reason == HELD


def is_in_flight(
    status: str, next_attempt_at: float | None, reason: str | None, *, now: float
) -> bool:
    """Claimed by a relay worker and not yet answered (its lease has not run out)."""
    return (
        status == RecipientStatus.QUEUED.value
        and reason is None
        and next_attempt_at is not None
        and next_attempt_at > now
    )


def thd_destinations(conn: Connection, *, node_id: str) -> list[str]:
    """The nodes that recipients wait for (a `--peer` may name one that is no peer)."""
    return list(
        conn.scalars(
            select(recipients.c.node)
            .where(
                recipients.c.status == RecipientStatus.QUEUED.value,
                recipients.c.node != node_id,
            )
            .distinct()
            .order_by(recipients.c.node)
        )
    )


def _waiting(
    conn: Connection, target: Target, *, node_id: str, next_hop: NextHop, now: float
) -> list[_Waiting]:
    if target.letter_id is not None:
        found = conn.scalar(select(letters.c.id).where(letters.c.id == target.letter_id))
        if found is None:
            raise UnknownLetter(target.letter_id)
    query = select(
        recipients.c.id,
        recipients.c.letter_id,
        recipients.c.address,
        recipients.c.node,
        recipients.c.next_attempt_at,
        recipients.c.reason,
    ).where(
        recipients.c.status == RecipientStatus.QUEUED.value,
        recipients.c.node != node_id,
    )
    if target.letter_id is not None:
        query = query.where(recipients.c.letter_id == target.letter_id)
    if target.peer is not None:
        nodes = [
            node
            for node in thd_destinations(conn, node_id=node_id)
            if node == target.peer or next_hop(node) == target.peer
        ]
        query = query.where(recipients.c.node.in_(nodes))
    queued = RecipientStatus.QUEUED.value
    return [
        _Waiting(
            row.id,
            row.letter_id,
            row.address,
            row.node,
            is_held(queued, row.next_attempt_at, row.reason),
            is_in_flight(queued, row.next_attempt_at, row.reason, now=now),
        )
        for row in conn.execute(query.order_by(recipients.c.id))
    ]


def _chunks(ids: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


def _apply(conn: Connection, chosen: Sequence[_Waiting], **values: Any) -> None:
    for ids in _chunks([w.id for w in chosen]):
        conn.execute(
            update(recipients)
            .where(
                recipients.c.id.in_(ids),
                recipients.c.status == RecipientStatus.QUEUED.value,
            )
            .values(**values)
        )


def _audit(
    conn: Connection,
    kind: str,
    chosen: Sequence[_Waiting],
    *,
    actor: str,
    now: float,
    detail: dict[str, Any],
) -> int:
    """One record per letter, naming its recipients; returns the number of letters."""
    by_letter: dict[str, list[str]] = defaultdict(list)
    for waiting in chosen:
        by_letter[waiting.letter_id].append(waiting.address)
    audit.thd_append_many(
        conn,
        [
            audit.Entry(kind, actor, letter_id, now, {**detail, "recipients": addresses})
            for letter_id, addresses in by_letter.items()
        ],
    )
    return len(by_letter)


def _target_detail(target: Target) -> dict[str, Any]:
    return {"peer": target.peer} if target.peer is not None else {}


def thd_retry(
    conn: Connection, target: Target, *, node_id: str, next_hop: NextHop, now: float, actor: str
) -> Changed:
    """Make waiting recipients due now (the last error stays their reason until then)."""
    waiting = _waiting(conn, target, node_id=node_id, next_hop=next_hop, now=now)
    chosen = [w for w in waiting if not w.held and not w.in_flight]
    _apply(conn, chosen, next_attempt_at=now)
    letters_changed = _audit(
        conn, "queue.retry", chosen, actor=actor, now=now, detail=_target_detail(target)
    )
    return Changed(
        len(chosen),
        letters_changed,
        in_flight=sum(w.in_flight for w in waiting),
        passed_over=sum(w.held for w in waiting),
    )


def thd_hold(
    conn: Connection, target: Target, *, node_id: str, next_hop: NextHop, now: float, actor: str
) -> Changed:
    """Keep waiting recipients from being sent until they are released."""
    waiting = _waiting(conn, target, node_id=node_id, next_hop=next_hop, now=now)
    chosen = [w for w in waiting if not w.held and not w.in_flight]
    _apply(conn, chosen, next_attempt_at=None, reason=HELD)
    letters_changed = _audit(
        conn, "queue.hold", chosen, actor=actor, now=now, detail=_target_detail(target)
    )
    return Changed(
        len(chosen),
        letters_changed,
        in_flight=sum(w.in_flight for w in waiting),
        passed_over=sum(w.held for w in waiting),
    )


def thd_release(
    conn: Connection, target: Target, *, node_id: str, next_hop: NextHop, now: float, actor: str
) -> Changed:
    """Make held recipients due now."""
    waiting = _waiting(conn, target, node_id=node_id, next_hop=next_hop, now=now)
    chosen = [w for w in waiting if w.held]
    _apply(conn, chosen, next_attempt_at=now, reason=None)
    letters_changed = _audit(
        conn, "queue.release", chosen, actor=actor, now=now, detail=_target_detail(target)
    )
    return Changed(len(chosen), letters_changed)


def thd_expire(
    conn: Connection, letter_id: str, reason: str, *, node_id: str, now: float, actor: str
) -> Changed:
    """Give up on a letter's waiting recipients (held ones too), with a tracking event
    each, so the sender sees why it was not delivered."""
    waiting = _waiting(
        conn, Target(letter_id=letter_id), node_id=node_id, next_hop=lambda _: None, now=now
    )
    chosen = [w for w in waiting if not w.in_flight]
    _apply(conn, chosen, status=RecipientStatus.EXPIRED.value, reason=reason, next_attempt_at=None)
    bulk_insert(
        conn,
        events,
        [
            {
                "letter_id": w.letter_id,
                "address": w.address,
                "status": RecipientStatus.EXPIRED.value,
                "node": node_id,
                "detail": reason,
                "at": now,
            }
            for w in chosen
        ],
    )
    senders = dict(
        conn.execute(select(letters.c.id, letters.c.sender).where(letters.c.id == letter_id)).all()
    )
    for w in chosen:  # a letter relayed for another node: its origin's sender learns it too
        notices.thd_tell_origin(
            conn,
            letter_id=w.letter_id,
            sender=senders[w.letter_id],
            address=w.address,
            status=RecipientStatus.EXPIRED,
            node_id=node_id,
            at=now,
            detail=reason,
        )
    letters_changed = _audit(
        conn, "queue.expire", chosen, actor=actor, now=now, detail={"reason": reason}
    )
    return Changed(len(chosen), letters_changed, in_flight=sum(w.in_flight for w in waiting))


@dataclass(frozen=True, slots=True)
class QueueLine:
    destination: str
    letters: int
    recipients: int
    held: int
    oldest: float  # registration time of the oldest waiting letter
    most_attempts: int
    last_error: str | None  # the hold's own reason is not an error


def thd_overview(conn: Connection, *, node_id: str) -> list[QueueLine]:
    """What waits for other nodes, per destination node, held ones counted apart."""
    held = and_(recipients.c.next_attempt_at.is_(None), recipients.c.reason == HELD)
    rows = conn.execute(
        select(
            recipients.c.node,
            func.count(func.distinct(recipients.c.letter_id)),
            func.count(),
            func.sum(case((held, 1), else_=0)),
            func.min(letters.c.created_at),
            func.max(recipients.c.attempts),
            func.max(case((held, None), else_=recipients.c.reason)),
        )
        .join(letters, letters.c.id == recipients.c.letter_id)
        .where(recipients.c.status == RecipientStatus.QUEUED.value, recipients.c.node != node_id)
        .group_by(recipients.c.node)
        .order_by(recipients.c.node)
    ).all()
    return [
        QueueLine(node, int(n_letters), int(n_recipients), int(n_held or 0), oldest, tries, error)
        for node, n_letters, n_recipients, n_held, oldest, tries, error in rows
    ]
