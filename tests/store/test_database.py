"""Group commit: what is reported done is committed, even when the disk fills up mid-batch."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from sqlalchemy import Connection, text
from twisted.internet import defer
from twisted.internet import reactor as default_reactor

from govnode.store.database import Database, DatabaseUnavailable
from govnode.testing.databases import fresh_database_url

reactor: Any = default_reactor


def make(tmp_path: Path) -> Database:
    db = Database(fresh_database_url(tmp_path, "batch.db"), reactor=reactor)
    db.run_sync(lambda conn: conn.execute(text("CREATE TABLE t (v TEXT)")))
    db.start()
    return db


def writer(value: str) -> Any:
    def write(conn: Connection) -> str:
        conn.execute(text("INSERT INTO t VALUES (:v)"), {"v": value})
        return value

    return write


def fill_the_disk(conn: Connection) -> None:
    """SQLITE_FULL: SQLite rolls back the whole transaction, not just a savepoint."""
    pages = conn.execute(text("PRAGMA page_count")).scalar_one()
    conn.execute(text(f"PRAGMA max_page_count = {pages + 1}"))
    conn.execute(text("INSERT INTO t VALUES (:v)"), {"v": "x" * 200_000})


def rows(db: Database) -> list[str]:
    return [row[0] for row in db.read_sync(lambda c: c.execute(text("SELECT v FROM t")).all())]


@pytest.mark.sqlite_only
@pytest_twisted.ensureDeferred
async def test_a_failure_that_ends_the_transaction_fails_the_whole_batch(tmp_path: Path) -> None:
    db = make(tmp_path)
    try:
        # The first write goes alone; the next three queue behind it and share a batch.
        first = defer.Deferred.fromCoroutine(db.run(writer("first")))
        results = await defer.DeferredList(
            [
                defer.Deferred.fromCoroutine(db.run(fn))
                for fn in (writer("a"), fill_the_disk, writer("c"))
            ],
            consumeErrors=True,
        )
        assert await first == "first"
        reported = ["first"] + [value for ok, value in results if ok]
        assert sorted(reported) == sorted(rows(db)), "reported done but not stored"
        assert results[1][0] is False
    finally:
        db.stop()


@pytest_twisted.ensureDeferred
async def test_a_write_refused_by_our_rules_does_not_hurt_the_others(tmp_path: Path) -> None:
    db = make(tmp_path)

    def refuse(conn: Connection) -> None:
        conn.execute(text("INSERT INTO t VALUES ('b')"))
        raise ValueError("refused")

    try:
        results = await defer.DeferredList(
            [defer.Deferred.fromCoroutine(db.run(fn)) for fn in (writer("a"), refuse, writer("c"))],
            consumeErrors=True,
        )
        assert [ok for ok, _ in results] == [True, False, True]
        assert sorted(rows(db)) == ["a", "c"]
    finally:
        db.stop()


@pytest.mark.sqlite_only
def test_unavailable_is_what_callers_see_for_a_dead_database(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'missing' / 'db.sqlite'}")
    with pytest.raises(DatabaseUnavailable):
        db.run_sync(lambda conn: conn.execute(text("SELECT 1")))


@pytest.mark.postgresql_only
def test_unavailable_is_what_callers_see_for_a_postgresql_server_that_is_gone() -> None:
    with socket.socket() as probe:  # a loopback port where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    db = Database(f"postgresql://govnode@127.0.0.1:{port}/govnode")
    with pytest.raises(DatabaseUnavailable):
        db.run_sync(lambda conn: conn.execute(text("SELECT 1")))
