"""One server of several on a PostgreSQL database leads the node's upkeep; when it
goes, another takes over. On SQLite (one server) the primary always leads."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor as default_reactor
from twisted.internet import task

from govnode.store.leadership import Leadership
from govnode.testing.databases import fresh_database_url

reactor: Any = default_reactor


async def until(condition: Any, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        await task.deferLater(reactor, 0.05, lambda: None)
    return bool(condition())


@pytest.mark.postgresql_only
@pytest_twisted.ensureDeferred
async def test_one_server_leads_and_another_takes_over_when_it_stops(tmp_path: Path) -> None:
    url = fresh_database_url(tmp_path, "leadership")
    one = Leadership(url, reactor=reactor, interval=0.1)
    two = Leadership(url, reactor=reactor, interval=0.1)
    took_over: list[str] = []

    async def upkeep() -> None:
        took_over.append("two")

    two.on_lead.append(upkeep)
    one.startService()
    try:
        assert await until(lambda: one.leader)
        two.startService()
        try:
            await task.deferLater(reactor, 0.5, lambda: None)  # several tries of its own
            assert (one.leader, two.leader) == (True, False)
            one.stopService()  # its process ends: its session and lock go with it
            assert await until(lambda: two.leader)
            assert took_over == ["two"]
            assert not one.leader
        finally:
            two.stopService()
    finally:
        if one.running:
            one.stopService()


@pytest.mark.postgresql_only
@pytest_twisted.ensureDeferred
async def test_a_leader_that_goes_silent_loses_the_lock_to_another(tmp_path: Path) -> None:
    """A leader whose host froze or vanished keeps its connection open but checks
    no more: its session ends after the idle timeout (10 s), not TCP's hours."""
    url = fresh_database_url(tmp_path, "silent")
    one = Leadership(url, reactor=reactor, interval=0.1)
    two = Leadership(url, reactor=reactor, interval=0.1)
    one.startService()
    try:
        assert await until(lambda: one.leader)
        two.startService()
        try:
            one._loop.stop()  # frozen: no more checks, the connection left open
            assert await until(lambda: two.leader, seconds=30)
        finally:
            two.stopService()
    finally:
        one.stopService()


@pytest.mark.sqlite_only
def test_the_only_server_on_sqlite_always_leads(tmp_path: Path) -> None:
    alone = Leadership(fresh_database_url(tmp_path, "db"), reactor=reactor)
    alone.startService()
    try:
        assert alone.leader
    finally:
        alone.stopService()
