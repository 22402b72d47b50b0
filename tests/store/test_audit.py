"""The audit chain detects every kind of tampering (real SQLite file, real signatures)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from govnode.pki import signing
from govnode.store import audit
from govnode.store.database import Database
from govnode.store.migrate import upgrade
from govnode.testing.databases import fresh_database_url

KEY = signing.create_signing_key()
SIGN = signing.signer(KEY)
VERIFY = signing.verifier(signing.public_pem(KEY))


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(fresh_database_url(tmp_path, "audit.db"))
    upgrade(database.engine)
    for index in range(1, 11):
        database.run_sync(
            audit.thd_append,
            "letter.registered",
            actor="edu@kb",
            subject=f"letter-{index}",
            at=1000.0 + index,
            detail={"number": f"KB-1405-{index:06d}", "فارسی": "متن"},
        )
        if index % 5 == 0:
            database.run_sync(audit.thd_checkpoint, SIGN, at=2000.0 + index)
    return database


def verdict(db: Database) -> audit.Verdict:
    return db.read_sync(audit.thd_verify, VERIFY)


def test_an_untouched_log_verifies(db: Database) -> None:
    result = verdict(db)
    assert (result.ok, result.records, result.checkpoints) == (True, 10, 2)


def sql(statement: str) -> Callable[[Connection], None]:
    def run(conn: Connection) -> None:
        conn.execute(text(statement))

    return run


TAMPERING = {
    "modified": ('UPDATE audit SET detail = \'{"number": "KB-1405-999999"}\' WHERE id = 4', 4),
    "deleted": ("DELETE FROM audit WHERE id = 6", 7),
    "inserted": (
        "INSERT INTO audit SELECT 11, at, kind, actor, subject, detail, prev_hash, hash "
        "FROM audit WHERE id = 3",
        11,
    ),
    "reordered": (
        "UPDATE audit SET subject = CASE id WHEN 2 THEN 'letter-3' ELSE 'letter-2' END "
        "WHERE id IN (2, 3)",
        2,
    ),
    "truncated": ("DELETE FROM audit WHERE id > 7", 10),
}


@pytest.mark.parametrize("how", sorted(TAMPERING))
def test_tampering_is_detected_at_the_first_broken_record(db: Database, how: str) -> None:
    statement, first_broken = TAMPERING[how]
    db.run_sync(sql(statement))
    result = verdict(db)
    assert not result.ok
    assert result.broken_at == first_broken, result.problem


def test_rehashed_forgery_is_caught_by_the_signed_checkpoints(db: Database) -> None:
    """Someone recomputes every hash after changing a record: the signatures still differ."""
    from govnode.domain.audit import GENESIS, record_hash

    rows = db.read_sync(lambda conn: list(audit.thd_records(conn)))
    previous = GENESIS
    forged = []
    for record in rows:
        detail = '{"number":"forged"}' if record.id == 3 else record.detail
        digest = record_hash(
            previous, record.id, record.at, record.kind, record.actor, record.subject, detail
        )
        forged.append((record.id, detail, previous, digest))
        previous = digest

    def rewrite(conn: Connection) -> None:
        for record_id, detail, prev_hash, digest in forged:
            conn.execute(
                text("UPDATE audit SET detail = :d, prev_hash = :p, hash = :h WHERE id = :i"),
                {"d": detail, "p": prev_hash, "h": digest, "i": record_id},
            )

    db.run_sync(rewrite)
    result = verdict(db)
    assert not result.ok
    assert result.broken_at == 5
    assert "differs from what its checkpoint signed" in (result.problem or "")


def test_a_forged_checkpoint_signature_is_caught(db: Database) -> None:
    other = signing.signer(signing.create_signing_key())
    db.run_sync(audit.thd_append, "login.success", actor="x", subject="y", at=3000.0)
    db.run_sync(audit.thd_checkpoint, other, at=3001.0)
    result = verdict(db)
    assert not result.ok
    assert "bad signature" in (result.problem or "")
