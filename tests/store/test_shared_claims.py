"""Two servers on one PostgreSQL database claim each queued recipient once: rows
another holds are skipped (FOR UPDATE SKIP LOCKED), and a transfer leased by a
server that died goes again, under the same envelope id, once its lease ran out."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from govnode.store import delivery, outbound
from govnode.store.database import Database
from tests.store.test_letters_numbers import register
from tests.store.test_queue_expiry import T0, claim, send_to_center

pytestmark = pytest.mark.postgresql_only


HOLD_TWO = text("SELECT id FROM recipients ORDER BY id LIMIT 2 FOR UPDATE SKIP LOCKED")
"""What a server claiming work does first: lock the rows it takes."""


def second_server(db: Database) -> Database:
    """Another server's connections to the same database."""
    return Database(db.engine.url.render_as_string(hide_password=False))


def test_a_recipient_another_server_holds_is_skipped_not_waited_for(db: Database) -> None:
    letters = [send_to_center(db) for _ in range(4)]
    other = second_server(db)
    try:
        # Server one is mid-claim: it holds two rows and has not committed.
        with db.engine.connect() as holding:
            held = holding.execute(HOLD_TWO).all()
            assert len(held) == 2
            taken = claim(other, T0)
            assert sorted(item.envelope.letter_id for item in taken) == sorted(letters[2:])
            holding.rollback()
        # Server one died before committing: the rows it held are free again.
        again = claim(other, T0)
        assert sorted(item.envelope.letter_id for item in again) == sorted(letters[:2])
    finally:
        other.stop()


def test_a_transfer_leased_by_a_server_that_died_goes_again_after_the_lease(
    db: Database,
) -> None:
    letter_id = send_to_center(db)
    (leased,) = claim(db, T0)  # then this server is killed: no answer, no retry
    other = second_server(db)
    try:
        assert claim(other, T0 + 1) == []  # the lease still runs
        assert claim(other, T0 + outbound.LEASE - 1) == []
        (again,) = claim(other, T0 + outbound.LEASE)
        assert again.envelope.letter_id == letter_id
        assert again.envelope.id == leased.envelope.id  # the peer stores it once
        assert again.recipient_ids == leased.recipient_ids
    finally:
        other.stop()


def test_local_deliveries_held_by_another_server_are_delivered_once(db: Database) -> None:
    for _ in range(3):
        register(db, T0, to=["welfare", "roads"])
    other = second_server(db)
    try:
        with db.engine.connect() as holding:
            holding.execute(HOLD_TWO).all()
            first = other.run_sync(delivery.thd_deliver_local, node_id="kb", now=T0)
            assert len(first) == 4
            holding.rollback()
        second = other.run_sync(delivery.thd_deliver_local, node_id="kb", now=T0)
        assert len(second) == 2
        assert {(d.letter_id, d.address) for d in first}.isdisjoint(
            (d.letter_id, d.address) for d in second
        )
        assert other.run_sync(delivery.thd_deliver_local, node_id="kb", now=T0) == []
    finally:
        other.stop()
