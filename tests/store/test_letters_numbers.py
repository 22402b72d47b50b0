"""Registration numbers, registration and local delivery on a real SQLite file."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import jdatetime
import pytest
from sqlalchemy import Connection, func, select

from govnode.domain.ids import new_ulid
from govnode.domain.letters import parse_submission
from govnode.store import delivery, directory, letters, mailbox
from govnode.store.database import Database
from govnode.store.migrate import upgrade
from govnode.store.schema import agencies, audit, events, number_sequences, recipients
from govnode.store.schema import letters as letters_table
from govnode.testing.databases import fresh_database_url
from govnode.testing.demo_data import demo_file, load_agencies

NOWRUZ_1405 = datetime(2026, 3, 20, 20, 30, tzinfo=UTC).timestamp()  # 00:00 in Tehran


def test_nowruz_1405_is_midnight_in_tehran() -> None:
    assert jdatetime.date(1405, 1, 1).togregorian() == date(2026, 3, 21)


def test_the_sequence_restarts_at_one_when_the_jalali_year_turns(db: Database) -> None:
    before = [
        db.run_sync(letters.thd_next_number, "kb", NOWRUZ_1405 - seconds)
        for seconds in (3 * 86400, 60, 1)
    ]
    assert [number for _, _, number in before] == [
        "KB-1404-000001",
        "KB-1404-000002",
        "KB-1404-000003",
    ]
    assert db.run_sync(letters.thd_next_number, "kb", NOWRUZ_1405) == (
        1405,
        1,
        "KB-1405-000001",
    )
    assert db.run_sync(letters.thd_next_number, "kb", NOWRUZ_1405 + 1)[2] == "KB-1405-000002"
    # A letter registered late for the old year carries on that year's sequence.
    assert db.run_sync(letters.thd_next_number, "kb", NOWRUZ_1405 - 0.001)[2] == "KB-1404-000004"


class Abort(Exception):
    pass


def test_a_rolled_back_transaction_gives_its_number_back(db: Database) -> None:
    assert db.run_sync(letters.thd_next_number, "kb", NOWRUZ_1405)[2] == "KB-1405-000001"

    def take_and_fail(conn: Connection) -> None:
        assert letters.thd_next_number(conn, "kb", NOWRUZ_1405)[2] == "KB-1405-000002"
        raise Abort

    for _ in range(3):
        with pytest.raises(Abort):
            db.run_sync(take_and_fail)
    assert db.run_sync(letters.thd_next_number, "kb", NOWRUZ_1405)[2] == "KB-1405-000002"

    # The first letter of a year rolled back: the year's row goes too, and comes back at 1.
    def first_of_1406(conn: Connection) -> None:
        assert letters.thd_next_number(conn, "kb", NOWRUZ_1405 + 366 * 86400)[2].endswith("-000001")
        raise Abort

    with pytest.raises(Abort):
        db.run_sync(first_of_1406)
    assert (
        db.read_sync(lambda conn: conn.scalar(select(func.count()).select_from(number_sequences)))
        == 1
    )


def register(db: Database, at: float, **fields: Any) -> letters.Registered:
    document = {"to": ["welfare"], "subject": "s", **fields}
    new = letters.NewLetter(
        id=new_ulid(int(at * 1000)),
        sender="edu@kb",
        user="edu",
        submission=parse_submission(document, local_node="kb", max_attachment_bytes=1024),
        attachments=(),
        created_at=at,
        idempotency_key=None,
    )
    return db.run_sync(letters.thd_register, new, node_id="kb")


def counts(db: Database) -> tuple[int, ...]:
    def count(conn: Connection) -> tuple[int, ...]:
        return tuple(
            int(conn.scalar(select(func.count()).select_from(table)) or 0)
            for table in (letters_table, recipients, events, audit)
        )

    return db.read_sync(count)


def test_registered_letters_take_the_year_of_their_registration(db: Database) -> None:
    old = register(db, NOWRUZ_1405 - 1)
    new = register(db, NOWRUZ_1405)
    assert (old.number, new.number) == ("KB-1404-000001", "KB-1405-000001")


def test_an_unknown_recipient_stores_nothing(db: Database) -> None:
    register(db, NOWRUZ_1405)
    stored = counts(db)
    for fields in ({"to": ["welfare", "nobody"]}, {"cc": ["x@mars"]}):
        with pytest.raises(letters.UnknownRecipient):
            register(db, NOWRUZ_1405 + 1, **fields)
    assert counts(db) == stored
    assert register(db, NOWRUZ_1405 + 2).number == "KB-1405-000002"


def test_a_recipient_sees_the_letter_only_once_it_is_delivered_exactly_once(
    db: Database,
) -> None:
    sent = register(db, NOWRUZ_1405, cc=["roads"])
    assert db.read_sync(mailbox.thd_letter, sent.id, "welfare@kb") is None
    assert db.read_sync(mailbox.thd_inbox, "welfare@kb", before=None, limit=10, unread=False) == (
        [],
        False,
    )
    assert db.run_sync(mailbox.thd_mark_read, sent.id, "welfare@kb", now=1.0, node_id="kb") is None
    sender_view = db.read_sync(mailbox.thd_letter, sent.id, "edu@kb")
    assert sender_view is not None
    assert sender_view.status == "registered"
    # Not yet due: nothing moves.
    assert db.run_sync(delivery.thd_deliver_local, node_id="kb", now=NOWRUZ_1405 - 1) == []
    done = db.run_sync(delivery.thd_deliver_local, node_id="kb", now=NOWRUZ_1405 + 1)
    assert [(d.address, d.status) for d in done] == [
        ("welfare@kb", "delivered"),
        ("roads@kb", "delivered"),
    ]
    assert db.run_sync(delivery.thd_deliver_local, node_id="kb", now=NOWRUZ_1405 + 2) == []
    view = db.read_sync(mailbox.thd_letter, sent.id, "welfare@kb")
    assert view is not None
    assert view.status == "delivered"
    assert db.read_sync(mailbox.thd_letter, sent.id, "health-univ@kb") is None


def test_a_recipient_that_left_the_directory_fails_with_a_reason(db: Database) -> None:
    sent = register(db, NOWRUZ_1405, cc=["roads"])

    def remove_roads(conn: Connection) -> None:
        conn.execute(agencies.delete().where(agencies.c.code == "roads"))

    db.run_sync(remove_roads)
    db.run_sync(delivery.thd_deliver_local, node_id="kb", now=NOWRUZ_1405 + 1)
    view = db.read_sync(mailbox.thd_letter, sent.id, "edu@kb")
    assert view is not None
    assert view.status == "failed"
    (failed,) = [r for r in view.recipients if r.address == "roads@kb"]
    assert failed.status == "failed"
    assert failed.reason
    assert "roads" in failed.reason


def new_letter(at: float, **fields: Any) -> letters.NewLetter:
    document = {"to": ["welfare"], "subject": "s", **fields}
    return letters.NewLetter(
        id=new_ulid(int(at * 1000)),
        sender="edu@kb",
        user="edu",
        submission=parse_submission(document, local_node="kb", max_attachment_bytes=1024),
        attachments=(),
        created_at=at,
        idempotency_key=None,
    )


def test_a_batch_is_delivered_with_its_registration(db: Database) -> None:
    batch = [new_letter(NOWRUZ_1405, cc=["roads"]), new_letter(NOWRUZ_1405 + 0.5)]
    registered, done = db.run_sync(
        letters.thd_register_and_deliver, batch, node_id="kb", now=NOWRUZ_1405 + 1
    )
    assert [r.number for r in registered if isinstance(r, letters.Registered)] == [
        "KB-1405-000001",
        "KB-1405-000002",
    ]
    # The first answer still lists every recipient as queued (API.md).
    assert all(s == "queued" for r in registered for _, _, s in r.recipients)  # type: ignore[union-attr]
    assert isinstance(done, list)
    assert [(d.letter_id, d.address) for d in done] == [
        (batch[0].id, "welfare@kb"),
        (batch[0].id, "roads@kb"),
        (batch[1].id, "welfare@kb"),
    ]
    view = db.read_sync(mailbox.thd_letter, batch[0].id, "welfare@kb")
    assert view is not None
    assert view.status == "delivered"
    (welfare,) = [r for r in view.recipients if r.address == "welfare@kb"]
    assert [e.status for e in welfare.events] == ["queued", "delivered"]
    assert db.run_sync(delivery.thd_deliver_local, node_id="kb", now=NOWRUZ_1405 + 2) == []


def test_a_failed_delivery_leaves_the_batch_registered_and_queued(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(conn: Connection, **_: Any) -> list[delivery.Delivered]:
        conn.execute(recipients.update().values(status="delivered"))  # undone with its savepoint
        raise RuntimeError("a bug in delivery")

    monkeypatch.setattr(delivery, "thd_deliver_local", broken)
    # A letter with an Idempotency-Key takes the slow path, then the worker's step.
    keyed = dataclasses.replace(new_letter(NOWRUZ_1405), idempotency_key="k1")
    registered, done = db.run_sync(
        letters.thd_register_and_deliver, [keyed], node_id="kb", now=NOWRUZ_1405 + 1
    )
    assert isinstance(done, RuntimeError)
    (sent,) = registered
    assert isinstance(sent, letters.Registered)
    view = db.read_sync(mailbox.thd_letter, sent.id, "edu@kb")
    assert view is not None
    assert view.status == "registered"
    assert [r.status for r in view.recipients] == ["queued"]
    monkeypatch.undo()
    done = db.run_sync(delivery.thd_deliver_local, node_id="kb", now=NOWRUZ_1405 + 2)
    assert [d.address for d in done] == ["welfare@kb"]


@pytest.mark.parametrize("keyed", [False, True])
def test_delivery_with_the_registration_writes_what_the_worker_would(
    tmp_path: Path, keyed: bool
) -> None:
    """Same batch, same times: registered then delivered by the worker's step in a
    second transaction, or delivered with the registration: the same rows, ids
    and audit chain (plain letters are delivered as stored; a batch with a keyed
    letter runs the worker's step)."""
    batch = [
        new_letter(NOWRUZ_1405, cc=["roads", "x@mars"]),
        new_letter(NOWRUZ_1405 + 0.25, to=["welfare", "roads"]),
        dataclasses.replace(new_letter(NOWRUZ_1405 + 0.5), idempotency_key="k1" if keyed else None),
        new_letter(NOWRUZ_1405 + 0.75, to=["nobody"]),
    ]
    now = NOWRUZ_1405 + 1
    routable = {"mars"}.__contains__

    def everything(database: Database) -> dict[str, list[Any]]:
        def read(conn: Connection) -> dict[str, list[Any]]:
            return {
                table.name: [tuple(row) for row in conn.execute(select(table).order_by("id"))]
                for table in (recipients, events, audit)
            }

        return database.read_sync(read)

    databases = []
    for name in ("worker", "together"):
        database = Database(fresh_database_url(tmp_path, name))
        upgrade(database.engine)
        entries = [
            (a, f"uid={a.code},ou=agencies") for a in load_agencies(demo_file("agencies.csv"))
        ]
        database.run_sync(directory.thd_replace_all, entries, now=0.0)
        databases.append(database)
    worker, together = databases
    first = worker.run_sync(letters.thd_register_many, batch, node_id="kb", routable=routable)
    by_worker = worker.run_sync(delivery.thd_deliver_local, node_id="kb", now=now)
    second, with_registration = together.run_sync(
        letters.thd_register_and_deliver, batch, node_id="kb", routable=routable, now=now
    )
    assert [type(r) for r in first] == [type(r) for r in second]
    assert isinstance(second[3], letters.UnknownRecipient)
    assert with_registration == by_worker
    assert len(by_worker) == 5
    assert everything(together) == everything(worker)
