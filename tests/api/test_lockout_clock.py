"""Lockout and its expiry, driven by an injected clock (real slapd, real SQLite file)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from sqlalchemy import select
from twisted.internet import reactor as default_reactor
from twisted.internet import task

from govnode.api.auth import Authenticator, Client
from govnode.api.errors import ApiError
from govnode.api.metrics import Metrics
from govnode.directory.ldap import LdapDirectory
from govnode.store.database import Database, make_engine
from govnode.store.migrate import upgrade
from govnode.store.schema import metadata
from govnode.testing.databases import fresh_database_url
from govnode.testing.pytest_plugin import NodeHome

NOBODY = Client(agency=None, fingerprint=None)
reactor: Any = default_reactor


def ldap_binds(metrics: Metrics) -> float:
    value = metrics.registry.get_sample_value(
        "govnode_ldap_request_seconds_count", {"operation": "bind"}
    )
    return value or 0.0


@pytest.fixture
def lockout_db(tmp_path: Path) -> str:
    return fresh_database_url(tmp_path, "lockout.db")


def everything_stored(url: str, folder: Path) -> bytes:
    """Every value of every table; on SQLite also the raw files (WAL included)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            values = [
                repr(tuple(row)).encode()
                for table in metadata.sorted_tables
                for row in conn.execute(select(table))
            ]
    finally:
        engine.dispose()
    files = [path.read_bytes() for path in folder.glob("lockout.db*")]
    return b"".join(values + files)


@pytest_twisted.async_yield_fixture
async def parts(
    govnode_home: NodeHome, lockout_db: str
) -> AsyncIterator[tuple[Authenticator, task.Clock, Metrics]]:
    db = Database(lockout_db, reactor=reactor)
    upgrade(db.engine)
    db.start()
    directory = LdapDirectory(govnode_home.config.ldap, reactor=reactor)
    directory.start()
    clock = task.Clock()
    clock.advance(1_800_000_000)
    metrics = Metrics()
    limits = replace(govnode_home.config.limits, lockout_failures=3, lockout_window=600)
    yield (
        Authenticator(db=db, directory=directory, clock=clock, limits=limits, metrics=metrics),
        clock,
        metrics,
    )
    directory.stop()
    db.stop()


async def refused(auth: Authenticator, username: str, password: str) -> ApiError:
    with pytest.raises(ApiError) as caught:
        await auth.login(username, password, NOBODY)
    return caught.value


@pytest_twisted.ensureDeferred
async def test_lockout_lifts_when_the_window_passes(
    parts: tuple[Authenticator, task.Clock, Metrics],
) -> None:
    auth, clock, metrics = parts
    for _ in range(3):
        assert (await refused(auth, "agri", "guess")).code == "invalid_credentials"
        clock.advance(10)
    binds_before = ldap_binds(metrics)
    locked = await refused(auth, "agri", "demo-agri")
    assert (locked.status, locked.code) == (429, "locked_out")
    # The oldest failure was 30 s ago: the lock lifts 600 s after it.
    assert locked.headers["Retry-After"] == "570"
    assert ldap_binds(metrics) == binds_before, "a locked username must not reach LDAP"
    clock.advance(569)
    assert (await refused(auth, "agri", "demo-agri")).code == "locked_out"
    clock.advance(1)
    session = await auth.login("agri", "demo-agri", NOBODY)
    assert session.agency == "agri"
    assert session.expires_at == clock.seconds() + 8 * 3600


@pytest_twisted.ensureDeferred
async def test_success_clears_earlier_failures(
    parts: tuple[Authenticator, task.Clock, Metrics],
) -> None:
    auth, _, _ = parts
    for _ in range(2):
        await refused(auth, "natres", "guess")
    await auth.login("natres", "demo-natres", NOBODY)
    for _ in range(2):
        assert (await refused(auth, "natres", "guess")).code == "invalid_credentials"
    assert (await auth.login("natres", "demo-natres", NOBODY)).agency == "natres"


@pytest_twisted.ensureDeferred
async def test_tokens_expire_and_are_stored_only_as_hashes(
    parts: tuple[Authenticator, task.Clock, Metrics], lockout_db: str, tmp_path: Path
) -> None:
    auth, clock, _ = parts
    session = await auth.login("civreg", "demo-civreg", NOBODY)
    assert (await auth.check(session.token, NOBODY)).agency == "civreg"
    database = everything_stored(lockout_db, tmp_path)
    assert b"civreg" in database  # the session is stored...
    assert session.token.encode() not in database  # ...but not its token
    clock.advance(8 * 3600)
    with pytest.raises(ApiError) as caught:
        await auth.check(session.token, NOBODY)
    assert caught.value.code == "unauthenticated"
