"""The queue for other nodes against an injected clock: backoff, expiry, and notices
that move a letter's recipients forward and never back."""

from __future__ import annotations

from govnode.domain.envelope import Receipt, SignedReceipt
from govnode.domain.ids import derived_ulid, new_ulid
from govnode.domain.letters import parse_submission
from govnode.store import letters, mailbox, notices, outbound
from govnode.store.database import Database

T0 = 1_790_000_000.0  # any moment; the queue only compares times
DAY = 86400.0
RETRY = {"retry_min": 300.0, "retry_max": 3600.0, "lifetime": 5 * DAY}


def send_to_center(db: Database) -> str:
    new = letters.NewLetter(
        id=new_ulid(int(T0 * 1000)),
        sender="edu@kb",
        user="edu",
        submission=parse_submission(
            {"to": ["presidency@center"], "subject": "به مرکز"},
            local_node="kb",
            max_attachment_bytes=1024,
        ),
        attachments=(),
        created_at=T0,
        idempotency_key=None,
    )
    return db.run_sync(letters.thd_register, new, node_id="kb", routable=lambda _: True).id


def claim(db: Database, now: float) -> list[outbound.Outgoing]:
    return db.run_sync(outbound.thd_claim_remote, node_id="kb", now=now, limit=10)


def shown(db: Database, letter_id: str) -> mailbox.LetterView:
    view = db.run_sync(mailbox.thd_letter, letter_id, "edu@kb")
    assert view is not None
    return view


def test_failed_attempts_back_off_then_the_letter_expires_with_a_reason(db: Database) -> None:
    letter_id = send_to_center(db)
    now = T0
    waits = []
    while True:
        (item,) = claim(db, now)
        assert claim(db, now) == []  # leased: nobody else takes it meanwhile
        expired = db.run_sync(outbound.thd_retry_later, item, "unreachable", now=now, **RETRY)
        if expired:
            break
        (recipient,) = shown(db, letter_id).recipients
        assert (recipient.status, recipient.reason) == ("queued", "unreachable")
        due: float = db.run_sync(
            lambda conn: conn.exec_driver_sql("SELECT next_attempt_at FROM recipients").scalar_one()
        )
        waits.append(due - now)
        assert claim(db, due - 1) == []  # not before its time
        now = due
    assert waits[:5] == [300, 600, 1200, 2400, 3600]  # doubling, capped at an hour
    assert set(waits[5:]) == {3600}
    assert now >= T0 + 5 * DAY
    view = shown(db, letter_id)
    assert view.status == "expired"
    (recipient,) = view.recipients
    assert recipient.reason is not None
    assert "5 days" in recipient.reason
    assert recipient.reason.endswith("last: unreachable")
    assert [e.status for e in recipient.events][-1] == "expired"
    assert claim(db, now + DAY) == []


def test_notices_move_a_recipient_forward_never_back_and_count_once(db: Database) -> None:
    letter_id = send_to_center(db)
    (item,) = claim(db, T0)

    def receipt(status: str, at: float) -> Receipt:
        return Receipt(
            derived_ulid(letter_id, "center"),
            letter_id,
            "center",
            "presidency@center",
            status,
            int(at * 1000),
        )

    def apply(*receipts: Receipt) -> list[str]:
        return db.run_sync(notices.thd_apply, list(receipts), node_id="kb", now=T0 + 10)

    claimed_by_another = Receipt(
        derived_ulid(letter_id, "center"),
        letter_id,
        "fars",  # a node on the way cannot say the recipient at center read it
        "presidency@center",
        "read",
        int(T0 * 1000),
    )
    assert apply(claimed_by_another) == []
    assert apply(receipt("delivered", T0 + 1)) == ["edu@kb"]
    assert apply(receipt("read", T0 + 2), receipt("read", T0 + 2)) == ["edu@kb"]  # once
    assert apply(receipt("delivered", T0 + 1)) == []  # seen before
    apply(receipt("failed", T0 + 3))  # too late to fail a read letter
    view = shown(db, letter_id)
    assert view.status == "read"
    (recipient,) = view.recipients
    statuses = [e.status for e in recipient.events]
    assert statuses.count("read") == 1
    assert statuses.count("delivered") == 1
    assert "failed" not in statuses  # a contradiction is not shown to the sender
    assert claim(db, T0 + 10 * DAY) == []  # nothing to send any more
    assert item.envelope.destination == "center"


def test_a_transfer_sent_twice_is_answered_once(db: Database) -> None:
    """A lease ran out (or was recovered at a server's start) while the first
    transfer was still under way: both get the peer's receipt."""
    letter_id = send_to_center(db)
    (first,) = claim(db, T0)
    (second,) = claim(db, T0 + outbound.LEASE)
    assert second.envelope.id == first.envelope.id
    delivered = SignedReceipt(
        Receipt(
            first.envelope.id,
            letter_id,
            "center",
            "presidency@center",
            "delivered",
            int((T0 + 1) * 1000),
        ),
        "signature",
    )
    assert db.run_sync(outbound.thd_record_receipts, first, [delivered], now=T0 + 1) == [
        "presidency@center"
    ]
    assert db.run_sync(outbound.thd_record_receipts, second, [delivered], now=T0 + 130) == []
    (recipient,) = shown(db, letter_id).recipients
    assert [e.status for e in recipient.events].count("delivered") == 1
    assert (
        db.run_sync(
            lambda conn: conn.exec_driver_sql(
                "SELECT count(*) FROM audit WHERE kind = 'letter.delivered'"
            ).scalar_one()
        )
        == 1
    )
