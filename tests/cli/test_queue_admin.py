"""`govnode queue retry|hold|release|expire` on a real SQLite file, judged by what the
relay worker's claim (`outbound.thd_claim_remote`) would pick next.

Node kb has two peers, added with `govnode peer add`: center (the default
route) and fars (the route to isfahan).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, select

from govnode.domain.ids import new_ulid
from govnode.domain.letters import parse_submission
from govnode.domain.routing import RoutingTable
from govnode.store import letters, mailbox, outbound
from govnode.store.database import Database
from govnode.store.queue_admin import HELD
from govnode.store.schema import audit, notices, recipients
from govnode.testing.home import configure
from tests.cli.peer_files import peer_files
from tests.cli.support import Govnode

OPERATOR = f"operator:{pwd.getpwuid(os.getuid()).pw_name}"


class _Undo(Exception):
    """Raised to roll a transaction back after looking at what it did."""


@pytest.fixture
def kb(govnode: Govnode, tmp_path: Path) -> Govnode:
    for peer in ("center", "fars"):
        ca_cert, key = peer_files(tmp_path / f"{peer}-export", peer)
        added = govnode(
            "peer", "add", peer, "--url", f"https://{peer}.example:8444",
            "--ca-cert", ca_cert, "--signing-key", key,
        )  # fmt: skip
        assert added.code == 0, added.err
    config = govnode.home / "govnode.toml"
    text = config.read_text(encoding="utf-8").replace(
        "routes = {}", 'routes = { isfahan = "fars" }'
    )
    config.write_text(text, encoding="utf-8")
    configure(govnode.home, default_route="center")
    return govnode


@pytest.fixture
def db(kb: Govnode) -> Iterator[Database]:
    database = Database(kb.config.database.url)
    yield database
    database.stop()


def send(db: Database, *to: str, sender: str = "edu@kb") -> str:
    """Register a letter (from edu@kb, as the agency API does); its id."""
    at = time.time()
    new = letters.NewLetter(
        id=new_ulid(int(at * 1000)),
        sender=sender,
        user="edu",
        submission=parse_submission(
            {"to": list(to), "subject": "گزارش"}, local_node="kb", max_attachment_bytes=1024
        ),
        attachments=(),
        created_at=at,
        idempotency_key=None,
    )
    return db.run_sync(letters.thd_register, new, node_id="kb", routable=lambda _: True).id


def claim(db: Database, *, keep: bool = False) -> dict[str, set[str]]:
    """What the relay worker would claim now: destinations by letter id. Rolled back
    unless `keep` (then those recipients are in flight)."""
    picked: dict[str, set[str]] = {}

    def run(conn: Connection) -> None:
        for item in outbound.thd_claim_remote(conn, node_id="kb", now=time.time(), limit=1000):
            picked.setdefault(item.envelope.letter_id, set()).add(item.envelope.destination)
        if not keep:
            raise _Undo

    with contextlib.suppress(_Undo):
        db.run_sync(run)
    return picked


def audit_trail(db: Database) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(kind, actor, subject, detail) of every queue.* record."""
    rows = db.read_sync(
        lambda conn: conn.execute(
            select(audit.c.kind, audit.c.actor, audit.c.subject, audit.c.detail)
            .where(audit.c.kind.like("queue.%"))
            .order_by(audit.c.id)
        ).all()
    )
    return [(kind, actor, subject, json.loads(detail)) for kind, actor, subject, detail in rows]


def recipient_rows(db: Database, letter_id: str) -> dict[str, tuple[str, float | None, str | None]]:
    """address -> (status, next_attempt_at, reason)."""
    rows = db.read_sync(
        lambda conn: conn.execute(
            select(
                recipients.c.address,
                recipients.c.status,
                recipients.c.next_attempt_at,
                recipients.c.reason,
            ).where(recipients.c.letter_id == letter_id)
        ).all()
    )
    return {address: (status, due, reason) for address, status, due, reason in rows}


def audit_intact(kb: Govnode) -> None:
    verified = kb("audit", "verify")
    assert verified.code == 0, verified.out
    assert verified.out.startswith("audit log intact")


def test_a_held_letter_is_never_claimed_until_released(kb: Govnode, db: Database) -> None:
    first = send(db, "edu@center", "roads@isfahan", "welfare")
    second = send(db, "edu@center")
    assert claim(db) == {first: {"center", "isfahan"}, second: {"center"}}

    held = kb("queue", "hold", first)

    assert (held.code, held.out.strip()) == (0, "2 recipients of 1 letter held")
    assert claim(db) == {second: {"center"}}
    rows = recipient_rows(db, first)
    assert rows["edu@center"] == ("queued", None, HELD)
    assert rows["welfare@kb"][0] == "queued"  # local: none of the queue's business
    # center answering again releases its backlog, but not what the operator holds.
    routing = RoutingTable("kb", {"isfahan": "fars"}, "center")
    released = db.run_sync(
        outbound.thd_release_backlog,
        node_id="kb",
        via="center",
        routes=routing.next_hop,
        now=time.time(),
    )
    assert released == 0
    assert claim(db) == {second: {"center"}}
    shown = kb("queue", "show", first)
    assert "edu@center  held  attempts=0  next=-" in shown.out
    assert "roads@isfahan  held" in shown.out
    as_json = {row["address"]: row for row in json.loads(kb("queue", "show", first, "--json").out)}
    assert as_json["edu@center"]["held"] is True
    assert as_json["welfare@kb"]["held"] is False

    again = kb("queue", "hold", first)
    assert again.out.strip() == "nothing held of letter " + first + "; 2 recipients already held"

    released_now = kb("queue", "release", first)

    assert (released_now.code, released_now.out.strip()) == (
        0,
        "2 recipients of 1 letter released, due now",
    )
    assert claim(db) == {first: {"center", "isfahan"}, second: {"center"}}
    assert [(k, a, s) for k, a, s, _ in audit_trail(db)] == [
        ("queue.hold", OPERATOR, first),
        ("queue.release", OPERATOR, first),
    ]
    assert sorted(audit_trail(db)[0][3]["recipients"]) == ["edu@center", "roads@isfahan"]
    audit_intact(kb)


def test_hold_and_release_by_peer_and_for_all(kb: Govnode, db: Database) -> None:
    to_center = send(db, "edu@center")
    to_isfahan = send(db, "roads@isfahan")  # through fars
    to_fars = send(db, "edu@fars")  # fars itself: no route names it, center relays it

    held = kb("queue", "hold", "--peer", "fars")

    # Only isfahan goes through fars; letters *for* fars take the default route, but
    # their destination is fars, so they count as fars's too.
    assert held.out.strip() == "2 recipients of 2 letters held"
    assert claim(db) == {to_center: {"center"}}
    overview = {line["destination"]: line for line in json.loads(kb("queue", "--json").out)}
    assert {node: line["held"] for node, line in overview.items()} == {
        "center": 0,
        "fars": 1,
        "isfahan": 1,
    }
    assert overview["fars"]["last_error"] is None  # being held is no error
    table = kb("queue").out.splitlines()
    assert table[0].split()[:4] == ["DESTINATION", "LETTERS", "RECIPIENTS", "HELD"]

    assert kb("queue", "hold", "--all").out.strip() == (
        "1 recipient of 1 letter held; 2 recipients already held"
    )
    assert claim(db) == {}
    assert kb("queue", "release", "--peer", "fars").out.strip() == (
        "2 recipients of 2 letters released, due now"
    )
    assert claim(db) == {to_isfahan: {"isfahan"}, to_fars: {"fars"}}
    assert kb("queue", "release", "--all").out.strip() == (
        "1 recipient of 1 letter released, due now"
    )
    assert claim(db) == {to_center: {"center"}, to_isfahan: {"isfahan"}, to_fars: {"fars"}}
    assert kb("queue", "release", "--all").out.strip() == "nothing released: no recipient is held"
    trail = [(kind, detail.get("peer")) for kind, _, _, detail in audit_trail(db)]
    assert trail == [
        ("queue.hold", "fars"),
        ("queue.hold", "fars"),
        ("queue.hold", None),
        ("queue.release", "fars"),
        ("queue.release", "fars"),
        ("queue.release", None),
    ]
    audit_intact(kb)


def test_retry_makes_backed_off_letters_due_and_leaves_in_flight_and_held_alone(
    kb: Govnode, db: Database
) -> None:
    backed_off = send(db, "edu@center")
    in_flight = send(db, "welfare@center")
    held = send(db, "roads@center")
    assert kb("queue", "hold", held).code == 0
    # The worker claims both, one attempt fails and waits out a backoff of 300 s...
    claimed = db.run_sync(outbound.thd_claim_remote, node_id="kb", now=time.time(), limit=1)
    db.run_sync(
        outbound.thd_retry_later,
        claimed[0],
        "center unreachable: connection refused",
        now=time.time(),
        retry_min=300,
        retry_max=3600,
        lifetime=86400,
    )
    # ...the other is being sent right now.
    assert claim(db, keep=True) == {in_flight: {"center"}}
    assert claim(db) == {}
    assert kb("queue", "show", in_flight).out.endswith("  being sent\n")

    retried = kb("queue", "retry", "center")

    assert retried.code == 0
    assert retried.out.strip() == (
        "1 recipient of 1 letter due now; 1 recipient in flight left alone (being sent now; "
        "try again in 2 minutes if still queued); 1 recipient held left held "
        "(`govnode queue release`)"
    )
    assert claim(db) == {backed_off: {"center"}}
    # The last error stays visible until the next attempt.
    assert (
        recipient_rows(db, backed_off)["edu@center"][2] == "center unreachable: connection refused"
    )

    assert kb("queue", "retry", backed_off).out.startswith("1 recipient of 1 letter due now")
    assert kb("queue", "retry").out.startswith("1 recipient of 1 letter due now;")
    assert claim(db) == {backed_off: {"center"}}  # the held one is still held
    assert [(kind, subject) for kind, _, subject, _ in audit_trail(db)] == [
        ("queue.hold", held),
        ("queue.retry", backed_off),
        ("queue.retry", backed_off),
        ("queue.retry", backed_off),
    ]
    audit_intact(kb)


def test_expire_gives_up_with_the_reason_in_the_senders_tracking(kb: Govnode, db: Database) -> None:
    letter = send(db, "edu@center", "roads@isfahan", "welfare")
    assert kb("queue", "hold", "--peer", "fars").code == 0  # held ones expire too
    other = send(db, "edu@center")

    expired = kb("queue", "expire", letter, "--reason", "center is decommissioned")

    assert (expired.code, expired.out.strip()) == (0, "2 recipients of 1 letter expired")
    assert claim(db) == {other: {"center"}}
    view = db.read_sync(mailbox.thd_letter, letter, "edu@kb")
    assert view is not None
    assert view.status == "expired"
    by_address = {r.address: r for r in view.recipients}
    assert by_address["edu@center"].status == "expired"
    assert by_address["edu@center"].reason == "center is decommissioned"
    assert [(e.status, e.node, e.detail) for e in by_address["roads@isfahan"].events][-1] == (
        "expired",
        "kb",
        "center is decommissioned",
    )
    assert by_address["welfare@kb"].status == "queued"  # local delivery is not the queue's
    assert kb("queue", "--json").out.count('"destination"') == 1  # only `other` waits
    kind, actor, subject, detail = audit_trail(db)[-1]
    assert (kind, actor, subject) == ("queue.expire", OPERATOR, letter)
    assert detail["reason"] == "center is decommissioned"

    again = kb("queue", "expire", letter, "--reason", "again")
    assert (
        again.out.strip()
        == f"nothing expired: no recipient of letter {letter} waits for another node"
    )
    audit_intact(kb)


def test_expiring_a_letter_relayed_for_another_node_tells_its_origin(
    kb: Govnode, db: Database
) -> None:
    own = send(db, "edu@center")
    relayed = send(db, "roads@isfahan", sender="edu@center")  # center's letter, kb hands it on

    assert kb("queue", "expire", own, "--reason", "not needed").code == 0
    assert db.read_sync(lambda conn: conn.execute(select(notices)).all()) == []
    assert kb("queue", "expire", relayed, "--reason", "isfahan is gone").code == 0

    (notice,) = db.read_sync(lambda conn: conn.execute(select(notices)).all())
    receipt = json.loads(notice.receipt)
    assert (notice.destination, notice.letter_id) == ("center", relayed)
    assert (receipt["address"], receipt["status"], receipt["node"]) == (
        "roads@isfahan",
        "expired",
        "kb",
    )
    assert receipt["detail"] == "isfahan is gone"


def test_expire_leaves_a_letter_in_flight_alone(kb: Govnode, db: Database) -> None:
    letter = send(db, "edu@center")
    assert claim(db, keep=True) == {letter: {"center"}}

    expired = kb("queue", "expire", letter, "--reason", "stuck")

    assert expired.out.startswith(f"nothing expired of letter {letter}; 1 recipient in flight")
    assert recipient_rows(db, letter)["edu@center"][0] == "queued"


@pytest.mark.parametrize(
    "argv",
    [
        ("retry",),
        ("hold",),
        ("release",),
        ("expire", "--reason", "x"),
    ],
)
def test_an_unknown_letter_is_one_line_and_exit_1(
    kb: Govnode, db: Database, argv: tuple[str, ...]
) -> None:
    send(db, "edu@center")
    unknown = new_ulid(int(time.time() * 1000))
    action, *options = argv

    result = kb("queue", action, unknown, *options)

    assert (result.code, result.out) == (1, "")
    assert result.err == f"govnode: no letter {unknown} on this node\n"
    assert claim(db) != {}  # nothing held or expired on the way
    assert audit_trail(db) == []


@pytest.mark.parametrize(
    "argv",
    [("retry", "tehran"), ("hold", "--peer", "tehran"), ("release", "--peer", "tehran")],
)
def test_an_unknown_peer_is_one_line_and_exit_1(kb: Govnode, argv: tuple[str, ...]) -> None:
    result = kb("queue", *argv)

    assert result.code == 1
    assert result.err == (
        "govnode: 'tehran' is neither a peer of this node (center, fars) nor a node that "
        "letters wait for (none)\n"
    )


def test_a_destination_that_is_no_peer_may_be_named(kb: Govnode, db: Database) -> None:
    letter = send(db, "roads@isfahan")
    assert kb("queue", "hold", "--peer", "isfahan").out.strip() == "1 recipient of 1 letter held"
    assert claim(db) == {}
    assert kb("queue", "retry", "isfahan").out.strip() == (
        "nothing due now for isfahan; 1 recipient held left held (`govnode queue release`)"
    )
    assert kb("queue", "release", "--peer", "isfahan").code == 0
    assert claim(db) == {letter: {"isfahan"}}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("hold",), "queue hold: give one of ID, --all or --peer PEER"),
        (("release", "--all", "--peer", "center"), "queue release: give one of ID, --all or"),
        (("retry", "NOT-A-LETTER"), "'NOT-A-LETTER' is not a letter id"),
        (("expire", "01JD3X", "--reason", "x"), "'01JD3X' is not a letter id"),
        (("expire", "0" * 26, "--reason", "  "), "--reason: say why"),
    ],
)
def test_malformed_commands_are_usage_errors(
    kb: Govnode, argv: tuple[str, ...], message: str
) -> None:
    result = kb("queue", *argv)
    assert result.code == 2
    assert result.err.startswith(f"govnode: {message}")
    assert result.err.count("\n") == 1
