"""What the rollout plugin's tests share: running `govnode`, days around today,
and a `NodeApi` of a home built in the test process (with a clock of the test's)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jdatetime
from twisted.internet import reactor as default_reactor
from twisted.internet.interfaces import IReactorTime

from govnode.config import Config
from govnode.hooks import NodeApi
from govnode.hooks.manager import load_plugins
from govnode.store.database import Database

reactor: Any = default_reactor
GOVNODE = Path(sys.executable).with_name("govnode")
"""The console script of the environment the tests run in (`.venv/bin/govnode`)."""


def govnode(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`govnode --home HOME ARGS...` as an operator runs it."""
    return subprocess.run(
        [str(GOVNODE), "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def tehran_today() -> date:
    return datetime.now(ZoneInfo("Asia/Tehran")).date()


def days_from_today(days: int) -> date:
    """A day relative to today in Tehran (negative: in the past)."""
    return tehran_today() + timedelta(days=days)


def jalali(day: date) -> str:
    """`1405/07/01`, written independently of the plugin (jdatetime directly)."""
    return str(jdatetime.date.fromgregorian(date=day).strftime("%Y/%m/%d"))


@asynccontextmanager
async def node_api(config: Config, clock: IReactorTime | None = None) -> AsyncIterator[NodeApi]:
    """A `NodeApi` over the home of `config` in this process, its plugins loaded
    (and so configured) afresh from that home's settings."""
    db = Database(config.database.url, reactor=reactor, pool_size=2)
    db.start()
    try:
        yield NodeApi(
            config=config, db=db, plugins=load_plugins(config), reactor=reactor, clock=clock
        )
    finally:
        db.stop()
