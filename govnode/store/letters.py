"""Registering letters: number, letter, attachments, recipients, events and audit in one go."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from govnode.domain.calendar import jalali_year, registration_number
from govnode.domain.letters import Submission
from govnode.domain.status import RecipientStatus
from govnode.store import audit, delivery, directory, sql
from govnode.store.database import Database, bulk_insert
from govnode.store.schema import (
    attachments,
    events,
    letters,
    recipients,
)


class UnknownRecipient(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before with a different body."""


class NotAReply(Exception):
    """`in_reply_to` names no letter that the sender received."""


@dataclass(frozen=True, slots=True)
class StoredAttachment:
    filename: str
    content_type: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class NewLetter:
    id: str
    sender: str  # address
    user: str
    submission: Submission
    attachments: tuple[StoredAttachment, ...]
    created_at: float
    idempotency_key: str | None


@dataclass(frozen=True, slots=True)
class Registered:
    id: str
    number: str
    created_at: float
    recipients: tuple[tuple[str, str, str], ...]  # address, kind, status
    replayed: bool  # an Idempotency-Key repeat: nothing new was stored


def thd_take_numbers(conn: Connection, year: int, count: int) -> int:
    """Reserve `count` sequence numbers of `year`; returns the last one."""
    sql.run(
        conn,
        'INSERT INTO number_sequences (year, "last") VALUES (:year, 0)'
        " ON CONFLICT (year) DO NOTHING",
        {"year": year},
    )
    taken = sql.run(
        conn,
        'UPDATE number_sequences SET "last" = "last" + :count WHERE year = :year RETURNING "last"',
        {"year": year, "count": count},
    )
    return int(taken.scalar_one())


def thd_next_number(conn: Connection, node_id: str, at: float) -> tuple[int, int, str]:
    """(year, sequence, number): the next registration number, in the caller's transaction.

    Gapless because it is taken in the same transaction as the letter: a
    rollback gives the number back. The row lock of the UPDATE orders
    concurrent registrations on PostgreSQL; SQLite has one writer.
    """
    year = jalali_year(at)
    sequence = thd_take_numbers(conn, year, 1)
    return year, sequence, registration_number(node_id, year, sequence)


def _replay(conn: Connection, sender: str, key: str, request_hash: str) -> Registered | None:
    row = conn.execute(
        select(letters.c.id, letters.c.number, letters.c.created_at, letters.c.request_hash).where(
            letters.c.sender == sender, letters.c.idempotency_key == key
        )
    ).first()
    if row is None:
        return None
    if row.request_hash != request_hash:
        raise IdempotencyConflict(key)
    listed = conn.execute(
        select(recipients.c.address, recipients.c.kind)
        .where(recipients.c.letter_id == row.id)
        .order_by(recipients.c.id)
    ).all()
    # The first answer again (API.md): every recipient was queued then, whatever
    # happened since; tracking is what GET /letters/{id} is for.
    queued = RecipientStatus.QUEUED.value
    return Registered(
        row.id, row.number, row.created_at, tuple((a, k, queued) for a, k in listed), replayed=True
    )


def _check_recipients(
    conn: Connection,
    submission: Submission,
    node_id: str,
    routable: Callable[[str], bool],
    *,
    known: set[str] | None = None,
) -> None:
    """Raise `UnknownRecipient` for the first address nobody can deliver to.

    `known`: the local codes already looked up (a batch looks them up at once).
    """
    if known is None:
        known = directory.thd_known_codes(
            conn, {r.address.code for r in submission.recipients if r.address.node == node_id}
        )
    for recipient in submission.recipients:
        if recipient.address.node == node_id:
            if recipient.address.code not in known:
                raise UnknownRecipient(
                    recipient.field, f"no agency {recipient.address} in this node's directory"
                )
        elif not routable(recipient.address.node):
            raise UnknownRecipient(recipient.field, f"no route to node {recipient.address.node!r}")


def _answer(conn: Connection, new: NewLetter, node_id: str) -> None:
    """Mark the letter replied to as `answered` for the replying agency."""
    code, _, node = new.sender.partition("@")
    entry = conn.execute(
        select(
            recipients.c.id, recipients.c.status, recipients.c.address, recipients.c.read_at
        ).where(
            recipients.c.letter_id == new.submission.in_reply_to,
            recipients.c.code == code,
            recipients.c.node == node,
            recipients.c.inbox_seq.is_not(None),
        )
    ).first()
    if entry is None:
        raise NotAReply(str(new.submission.in_reply_to))
    if entry.status == RecipientStatus.ANSWERED:
        return
    if entry.read_at is None:
        # A reply is proof of reading: record it, so the letter leaves the unread
        # list and the trail goes delivered → read → answered like any other.
        conn.execute(
            insert(events).values(
                letter_id=new.submission.in_reply_to,
                address=entry.address,
                status=RecipientStatus.READ,
                node=node_id,
                detail="read (answered)",
                at=new.created_at,
            )
        )
        audit.thd_append(
            conn,
            "letter.read",
            actor=entry.address,
            subject=str(new.submission.in_reply_to),
            at=new.created_at,
        )
    conn.execute(
        update(recipients)
        .where(recipients.c.id == entry.id)
        .values(
            status=RecipientStatus.ANSWERED,
            read_at=new.created_at if entry.read_at is None else entry.read_at,
        )
    )
    conn.execute(
        insert(events).values(
            letter_id=new.submission.in_reply_to,
            address=entry.address,
            status=RecipientStatus.ANSWERED,
            node=node_id,
            detail=f"reply {new.id}",
            at=new.created_at,
        )
    )
    audit.thd_append(
        conn,
        "letter.answered",
        actor=new.sender,
        subject=str(new.submission.in_reply_to),
        at=new.created_at,
        detail={"reply": new.id},
    )


@dataclass
class _Rows:
    """The rows of a batch of new letters, inserted with one statement per table."""

    letters: list[dict[str, object]] = field(default_factory=list)
    attachments: list[dict[str, object]] = field(default_factory=list)
    recipients: list[dict[str, object]] = field(default_factory=list)
    events: list[dict[str, object]] = field(default_factory=list)
    audit: list[audit.Entry] = field(default_factory=list)

    def add(self, new: NewLetter, node_id: str, year: int, sequence: int, number: str) -> None:
        submission = new.submission
        self.letters.append(
            {
                "id": new.id,
                "number": number,
                "year": year,
                "sequence": sequence,
                "sender": new.sender,
                "user": new.user,
                "subject": submission.subject,
                "body": submission.body,
                "priority": str(submission.priority),
                "classification": str(submission.classification),
                "in_reply_to": submission.in_reply_to,
                "created_at": new.created_at,
                "idempotency_key": new.idempotency_key,
                "request_hash": submission.request_hash if new.idempotency_key else None,
            }
        )
        self.attachments.extend(
            {
                "letter_id": new.id,
                "position": index,
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.size,
                "sha256": a.sha256,
            }
            for index, a in enumerate(new.attachments)
        )
        for r in submission.recipients:
            self.recipients.append(
                {
                    "letter_id": new.id,
                    "address": str(r.address),
                    "code": r.address.code,
                    "node": r.address.node,
                    "kind": r.kind,
                    "status": RecipientStatus.QUEUED.value,
                    "next_attempt_at": new.created_at,
                    "attempts": 0,
                }
            )
            self.events.append(
                {
                    "letter_id": new.id,
                    "address": str(r.address),
                    "status": RecipientStatus.QUEUED.value,
                    "node": node_id,
                    "detail": f"registered as {number}",
                    "at": new.created_at,
                }
            )
        self.audit.append(
            audit.Entry(
                "letter.registered",
                new.sender,
                new.id,
                new.created_at,
                {
                    "number": number,
                    "user": new.user,
                    "recipients": [str(r.address) for r in submission.recipients],
                    "attachments": [a.sha256 for a in new.attachments],
                },
            )
        )

    def insert(self, conn: Connection) -> None:
        for table, rows in (
            (letters, self.letters),
            (attachments, self.attachments),
            (recipients, self.recipients),
            (events, self.events),
        ):
            bulk_insert(conn, table, rows)
        audit.thd_append_many(conn, self.audit)


def _registered(new: NewLetter, number: str) -> Registered:
    listed = tuple(
        (str(r.address), r.kind, RecipientStatus.QUEUED.value) for r in new.submission.recipients
    )
    return Registered(new.id, number, new.created_at, listed, replayed=False)


def thd_register(
    conn: Connection,
    new: NewLetter,
    *,
    node_id: str,
    routable: Callable[[str], bool] = lambda _node: False,
) -> Registered:
    """Store a new letter and queue one delivery per recipient (all or nothing)."""
    submission = new.submission
    if new.idempotency_key is not None:
        earlier = _replay(conn, new.sender, new.idempotency_key, submission.request_hash)
        if earlier is not None:
            return earlier
    _check_recipients(conn, submission, node_id, routable)
    year, sequence, number = thd_next_number(conn, node_id, new.created_at)
    rows = _Rows()
    rows.add(new, node_id, year, sequence, number)
    rows.insert(conn)
    if submission.in_reply_to is not None:
        _answer(conn, new, node_id)
    return _registered(new, number)


def thd_register_many(
    conn: Connection,
    batch: Sequence[NewLetter],
    *,
    node_id: str,
    routable: Callable[[str], bool] = lambda _node: False,
) -> list[Registered | Exception]:
    """Register many letters in the caller's transaction; one result per letter.

    Plain letters (no Idempotency-Key, no reply) take the fast path: one
    directory query, one number range per Jalali year, one INSERT per table.
    The others go one by one, each in its own savepoint. A letter that is
    refused (unknown recipient, conflict) gets its exception as its result
    and changes nothing; the others are stored all the same.
    """
    results: dict[int, Registered | Exception] = {}
    plain = [
        i
        for i, new in enumerate(batch)
        if new.idempotency_key is None and new.submission.in_reply_to is None
    ]
    codes = {
        r.address.code
        for i in plain
        for r in batch[i].submission.recipients
        if r.address.node == node_id
    }
    known = directory.thd_known_codes(conn, codes)
    accepted = []
    for index in plain:
        try:
            _check_recipients(conn, batch[index].submission, node_id, routable, known=known)
        except UnknownRecipient as exc:
            results[index] = exc
        else:
            accepted.append(index)
    rows = _Rows()
    by_year: dict[int, list[int]] = {}
    for index in accepted:
        by_year.setdefault(jalali_year(batch[index].created_at), []).append(index)
    for year, indexes in by_year.items():
        last = thd_take_numbers(conn, year, len(indexes))
        for offset, index in enumerate(indexes):
            sequence = last - len(indexes) + 1 + offset
            number = registration_number(node_id, year, sequence)
            rows.add(batch[index], node_id, year, sequence, number)
            results[index] = _registered(batch[index], number)
    rows.insert(conn)
    for index, new in enumerate(batch):
        if index in results:
            continue
        try:
            with conn.begin_nested():
                results[index] = thd_register(conn, new, node_id=node_id, routable=routable)
        except (UnknownRecipient, IdempotencyConflict, NotAReply) as exc:
            results[index] = exc
        except IntegrityError:
            # The same Idempotency-Key committed by another process meanwhile.
            earlier = None
            if new.idempotency_key is not None:
                try:
                    earlier = _replay(
                        conn, new.sender, new.idempotency_key, new.submission.request_hash
                    )
                except IdempotencyConflict as exc:
                    results[index] = exc
                    continue
            if earlier is None:
                raise
            results[index] = earlier
    return [results[index] for index in range(len(batch))]


DELIVER_LIMIT = 500  # local recipients delivered with one batch; the worker does the rest


def thd_register_and_deliver(
    conn: Connection,
    batch: Sequence[NewLetter],
    *,
    node_id: str,
    routable: Callable[[str], bool] = lambda _node: False,
    now: float,
) -> tuple[list[Registered | Exception], list[delivery.Delivered] | Exception]:
    """Register a batch, then deliver what is due for this node's inboxes, in one
    transaction: the delivery worker's step, without a transaction of its own.

    The letters go into their inboxes with the commit that registers them (as a
    letter received from a peer does), each recipient `queued` then `delivered`
    in its trail as before. A delivery that fails for any reason but the
    database's own errors (which fail the whole batch, see `Database`) only
    undoes its savepoint and is returned as the exception: the letters stay
    queued for the delivery worker.
    """
    registered = thd_register_many(conn, batch, node_id=node_id, routable=routable)
    try:
        with conn.begin_nested():
            done: list[delivery.Delivered] | Exception = delivery.thd_deliver_local(
                conn, node_id=node_id, now=now, limit=DELIVER_LIMIT
            )
    except DBAPIError as exc:
        if not isinstance(exc, IntegrityError):
            raise
        done = exc
    except Exception as exc:  # noqa: BLE001 - left to the delivery worker, and logged
        done = exc
    return registered, done


class Registrar:
    """Registers letters in batches: while one batch commits, the next one gathers.

    Each batch also delivers the local recipients that are due, its own
    included (`thd_register_and_deliver`); `on_delivered` hears of them after
    the commit, and `wake` (the delivery worker) is called when some may be left.
    """

    MAX_BATCH = 512
    _log = Logger()

    def __init__(
        self,
        db: Database,
        *,
        node_id: str,
        clock: IReactorTime,
        routable: Callable[[str], bool] = lambda _node: False,
        on_delivered: Callable[[list[delivery.Delivered]], None] = lambda _done: None,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self._db = db
        self._node_id = node_id
        self._clock = clock
        self._routable = routable
        self._on_delivered = on_delivered
        self._wake = wake
        self._waiting: list[tuple[NewLetter, Deferred[Registered]]] = []
        self._busy = False

    async def register(self, new: NewLetter) -> Registered:
        done: Deferred[Registered] = Deferred()
        self._waiting.append((new, done))
        if not self._busy:
            self._next()
        return await done

    def _next(self) -> None:
        batch, self._waiting = self._waiting[: self.MAX_BATCH], self._waiting[self.MAX_BATCH :]
        self._busy = True
        work = Deferred.fromCoroutine(
            self._db.run(
                thd_register_and_deliver,
                [new for new, _ in batch],
                node_id=self._node_id,
                routable=self._routable,
                # Every letter of the batch was created by now: all are due.
                now=self._clock.seconds(),
            )
        )
        work.addBoth(self._done, [done for _, done in batch])

    def _done(self, outcome: object, waiting: list[Deferred[Registered]]) -> None:
        self._busy = False
        if self._waiting:
            self._next()
        if isinstance(outcome, Failure):
            for done in waiting:
                done.errback(outcome)
            return
        assert isinstance(outcome, tuple)
        registered, delivered = outcome
        if isinstance(delivered, Exception):
            self._log.failure(
                "delivery with the registration failed; the delivery worker will retry",
                Failure(delivered),
            )
            self._wake()
        else:
            if delivered:
                self._on_delivered(delivered)
            if len(delivered) >= DELIVER_LIMIT:
                self._wake()  # more may be due
        for result, done in zip(registered, waiting, strict=True):
            if isinstance(result, Exception):
                done.errback(Failure(result))
            else:
                done.callback(result)


def thd_referenced_blobs(conn: Connection) -> Sequence[str]:
    return list(conn.scalars(select(attachments.c.sha256).distinct()))
