"""Registering letters: number, letter, attachments, recipients, events and audit in one go."""

from __future__ import annotations

import dataclasses
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
from govnode.store import audit, delivery, directory, notices, peer_directory, sql
from govnode.store.database import Database, bulk_insert, insert_returning_ids
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
    sql.rows(
        conn,
        'INSERT INTO number_sequences (year, "last") VALUES (:year, 0)'
        " ON CONFLICT (year) DO NOTHING",
        {"year": year},
    )
    ((taken,),) = sql.rows(
        conn,
        'UPDATE number_sequences SET "last" = "last" + :count WHERE year = :year RETURNING "last"',
        {"year": year, "count": count},
    )
    return int(taken)


def thd_next_number(conn: Connection, node_id: str, at: float) -> tuple[int, int, str]:
    """(year, sequence, number): the next registration number, in the caller's transaction.

    Gapless because it is taken in the same transaction as the letter: a
    rollback gives the number back. The row lock of the UPDATE orders
    concurrent registrations on PostgreSQL; SQLite has one writer.
    """
    year = jalali_year(at)
    sequence = thd_take_numbers(conn, year, 1)
    return year, sequence, registration_number(node_id, year, sequence)


def thd_replay(conn: Connection, sender: str, key: str, request_hash: str) -> Registered | None:
    """The letter `sender` registered with Idempotency-Key `key`, if any
    (IdempotencyConflict when it came with another body)."""
    return _replay(conn, sender, key, request_hash)


def thd_idempotency_key_used(conn: Connection, sender: str, key: str) -> bool:
    """Whether `sender` registered a letter with Idempotency-Key `key` (any body)."""
    row = conn.execute(
        select(letters.c.id).where(letters.c.sender == sender, letters.c.idempotency_key == key)
    ).first()
    return row is not None


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
    remote = []
    for recipient in submission.recipients:
        if recipient.address.node == node_id:
            if recipient.address.code not in known:
                raise UnknownRecipient(
                    recipient.field, f"no agency {recipient.address} in this node's directory"
                )
        elif not routable(recipient.address.node):
            raise UnknownRecipient(recipient.field, f"no route to node {recipient.address.node!r}")
        else:
            remote.append(recipient)
    if remote:
        unknown = set(peer_directory.thd_unknown(conn, [r.address for r in remote]))
        for recipient in remote:
            if recipient.address in unknown:
                raise UnknownRecipient(
                    recipient.field,
                    f"no agency {recipient.address} in the directory of {recipient.address.node}",
                )


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
    replied_to = str(new.submission.in_reply_to)
    origin_sender = conn.execute(
        select(letters.c.sender).where(letters.c.id == replied_to)
    ).scalar_one()
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
        notices.thd_tell_origin(
            conn,
            letter_id=replied_to,
            sender=origin_sender,
            address=entry.address,
            status=RecipientStatus.READ,
            node_id=node_id,
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
    notices.thd_tell_origin(
        conn,
        letter_id=replied_to,
        sender=origin_sender,
        address=entry.address,
        status=RecipientStatus.ANSWERED,
        node_id=node_id,
        at=new.created_at,
        detail=f"reply {new.id}",
    )


@dataclass
class _Rows:
    """The rows of a batch of new letters, inserted with one statement per table.

    With `deliver_at`, recipients of this node (whose agencies the batch just
    found in the directory) are delivered as they are stored, at that time:
    the same rows, trail events and audit records that the delivery worker's
    step (`delivery.thd_deliver_local`) would write right after, without
    reading back and updating the rows just written.
    """

    node_id: str
    deliver_at: float | None = None
    letters: list[dict[str, object]] = field(default_factory=list)
    attachments: list[dict[str, object]] = field(default_factory=list)
    recipients: list[dict[str, object]] = field(default_factory=list)
    events: list[dict[str, object]] = field(default_factory=list)
    audit: list[audit.Entry] = field(default_factory=list)
    # Delivered on insert: (recipient row, Delivered without its event id yet).
    delivered: list[tuple[dict[str, object], delivery.Delivered]] = field(default_factory=list)

    def add(self, new: NewLetter, year: int, sequence: int, number: str) -> None:
        node_id = self.node_id
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
                "reply_by": submission.reply_by,
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
            row: dict[str, object] = {
                "letter_id": new.id,
                "address": str(r.address),
                "code": r.address.code,
                "node": r.address.node,
                "kind": r.kind,
                "status": RecipientStatus.QUEUED.value,
                "reason": None,
                "next_attempt_at": new.created_at,
                "attempts": 0,
                "delivered_at": None,
                "inbox_seq": None,
            }
            if self.deliver_at is not None and r.address.node == node_id:
                row["status"] = RecipientStatus.DELIVERED.value
                row["next_attempt_at"] = None
                row["delivered_at"] = self.deliver_at
                done = delivery.Delivered(
                    new.id,
                    str(r.address),
                    r.address.code,
                    new.sender,
                    0,
                    RecipientStatus.DELIVERED.value,
                    registered_at=new.created_at,
                    at=self.deliver_at,
                )
                self.delivered.append((row, done))
            self.recipients.append(row)
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

    def insert(self, conn: Connection) -> list[delivery.Delivered]:
        """Insert every row; returns the recipients delivered on insert."""
        bulk_insert(conn, letters, self.letters)
        bulk_insert(conn, attachments, self.attachments)
        bulk_insert(conn, events, self.events)
        delivered = []
        if self.delivered:
            # After every `queued` event, as the worker's step would add them;
            # a recipient's place in its inbox is its `delivered` event's id.
            event_ids = insert_returning_ids(
                conn,
                events,
                [
                    {
                        "letter_id": done.letter_id,
                        "address": done.address,
                        "status": done.status,
                        "node": self.node_id,
                        "detail": "in the inbox",
                        "at": self.deliver_at,
                    }
                    for _, done in self.delivered
                ],
            )
            for (row, done), event_id in zip(self.delivered, event_ids, strict=True):
                row["inbox_seq"] = event_id
                delivered.append(dataclasses.replace(done, event_id=event_id))
        bulk_insert(conn, recipients, self.recipients)
        assert self.deliver_at is not None or not delivered
        audit.thd_append_many(
            conn,
            [
                *self.audit,
                *(
                    audit.Entry(
                        f"letter.{done.status}",
                        self.node_id,
                        done.letter_id,
                        self.deliver_at or 0.0,
                        {"recipient": done.address},
                    )
                    for done in delivered
                ),
            ],
        )
        return delivered


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
    rows = _Rows(node_id)
    rows.add(new, year, sequence, number)
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
    return _register_many(conn, batch, node_id=node_id, routable=routable, deliver_at=None)[0]


def _plain(new: NewLetter) -> bool:
    """Whether a letter takes the fast path (no Idempotency-Key, not a reply)."""
    return new.idempotency_key is None and new.submission.in_reply_to is None


def _register_many(
    conn: Connection,
    batch: Sequence[NewLetter],
    *,
    node_id: str,
    routable: Callable[[str], bool],
    deliver_at: float | None,
) -> tuple[list[Registered | Exception], list[delivery.Delivered]]:
    """`thd_register_many`; with `deliver_at`, the fast path's local recipients
    are delivered as they are stored, and also returned."""
    results: dict[int, Registered | Exception] = {}
    plain = [i for i, new in enumerate(batch) if _plain(new)]
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
    rows = _Rows(node_id, deliver_at)
    by_year: dict[int, list[int]] = {}
    for index in accepted:
        by_year.setdefault(jalali_year(batch[index].created_at), []).append(index)
    for year, indexes in by_year.items():
        last = thd_take_numbers(conn, year, len(indexes))
        for offset, index in enumerate(indexes):
            sequence = last - len(indexes) + 1 + offset
            number = registration_number(node_id, year, sequence)
            rows.add(batch[index], year, sequence, number)
            results[index] = _registered(batch[index], number)
    delivered = rows.insert(conn)
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
    return [results[index] for index in range(len(batch))], delivered


DELIVER_LIMIT = 500  # local recipients delivered with one batch; the worker does the rest


def thd_register_and_deliver(
    conn: Connection,
    batch: Sequence[NewLetter],
    *,
    node_id: str,
    routable: Callable[[str], bool] = lambda _node: False,
    now: float,
) -> tuple[list[Registered | Exception], list[delivery.Delivered] | Exception]:
    """Register a batch and deliver its letters to this node's inboxes, in one
    transaction: the delivery worker's step, without a transaction of its own.

    The letters go into their inboxes with the commit that registers them (as a
    letter received from a peer does), each recipient `queued` then `delivered`
    in its trail as before. A batch of plain letters is delivered as it is
    stored (`_Rows`); a batch with others (Idempotency-Key, reply), which are
    registered one by one, runs the worker's step after them. Should that step
    fail for any reason but the database's own errors (which fail the whole
    batch, see `Database`), it only undoes its savepoint and is returned as
    the exception: the letters stay queued for the delivery worker.
    """
    if all(_plain(new) for new in batch):
        return _register_many(conn, batch, node_id=node_id, routable=routable, deliver_at=now)
    registered, _ = _register_many(conn, batch, node_id=node_id, routable=routable, deliver_at=None)
    try:
        with conn.begin_nested():
            more = delivery.thd_deliver_local(conn, node_id=node_id, now=now, limit=DELIVER_LIMIT)
    except DBAPIError as exc:
        if not isinstance(exc, IntegrityError):
            raise
        return registered, exc
    except Exception as exc:  # noqa: BLE001 - left to the delivery worker, and logged
        return registered, exc
    return registered, more


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
