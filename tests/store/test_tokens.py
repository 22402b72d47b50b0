"""Token and login-failure storage on a real SQLite file."""

from __future__ import annotations

from pathlib import Path

from govnode.store import tokens
from govnode.store.database import Database
from govnode.store.migrate import upgrade
from govnode.testing.databases import fresh_database_url


def database(tmp_path: Path) -> Database:
    db = Database(fresh_database_url(tmp_path, "db.sqlite"))
    upgrade(db.engine)
    return db


def test_purge_forgets_expired_tokens_and_old_failures_only(tmp_path: Path) -> None:
    db = database(tmp_path)
    for name, expires in (("old", 100.0), ("live", 10_000.0)):
        db.run_sync(
            tokens.thd_create,
            token_hash=name,
            agency="edu",
            user="edu",
            now=0.0,
            expires_at=expires,
            client_fingerprint=None,
        )
    db.run_sync(tokens.thd_record_failure, "edu", now=50.0)
    db.run_sync(tokens.thd_record_failure, "edu", now=900.0)
    db.run_sync(tokens.thd_purge, now=1000.0, failures_before=500.0)
    assert db.run_sync(tokens.thd_find, "live", now=1000.0) is not None
    assert db.run_sync(tokens.thd_find, "old", now=50.0) is None  # gone, not just expired
    assert db.run_sync(tokens.thd_failures_since, "edu", 0.0) == [900.0]


def test_revoked_and_expired_tokens_are_not_found(tmp_path: Path) -> None:
    db = database(tmp_path)
    db.run_sync(
        tokens.thd_create,
        token_hash="t",
        agency="edu",
        user="dabir.edu",
        now=0.0,
        expires_at=100.0,
        client_fingerprint="ab",
    )
    found = db.run_sync(tokens.thd_find, "t", now=99.0)
    assert found is not None
    assert (found.agency, found.user) == ("edu", "dabir.edu")
    assert db.run_sync(tokens.thd_find, "t", now=100.0) is None
    assert db.run_sync(tokens.thd_revoke, "t")
    assert db.run_sync(tokens.thd_find, "t", now=1.0) is None
