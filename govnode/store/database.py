"""The database and its dedicated thread pool.

Storage functions are plain blocking functions that take a `Connection`
(named `thd_*`). `Database.run` calls one inside a transaction on the
database's own threads and returns its plain result to the reactor thread;
`run_sync` does the same for the CLI, which has no reactor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, OperationalError
from twisted.internet.interfaces import IReactorThreads
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

P = ParamSpec("P")
T = TypeVar("T")


class DatabaseUnavailable(Exception):
    """The database cannot be reached or refused the operation for now."""


def make_engine(url: str) -> Engine:
    """An engine with the durability settings govnode relies on."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL lets readers run beside the writer; FULL syncs the WAL on every
        # commit, so an acknowledged write survives power loss.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    return engine


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


class Database:
    """An engine plus the thread pool that every query of the daemon runs in."""

    def __init__(
        self, url: str, *, reactor: IReactorThreads | None = None, pool_size: int = 8
    ) -> None:
        self.engine = make_engine(url)
        self._reactor = reactor
        # SQLite has one writer: more threads would only queue on its lock.
        threads = 1 if is_sqlite(self.engine) else pool_size
        self._pool = ThreadPool(minthreads=1, maxthreads=threads, name="govnode-db")

    def start(self) -> None:
        self._pool.start()

    def stop(self) -> None:
        self._pool.stop()
        self.engine.dispose()

    def run_sync(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run `fn(conn, ...)` in one transaction, here and now (CLI, worker threads)."""
        try:
            with self.engine.begin() as conn:
                return fn(conn, *args, **kwargs)
        except OperationalError as exc:
            raise DatabaseUnavailable(str(exc.orig)) from exc
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise DatabaseUnavailable(str(exc.orig)) from exc
            raise

    async def run(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run `fn(conn, ...)` in one transaction on the database threads."""
        assert self._reactor is not None, "Database.run needs a reactor; the CLI uses run_sync"
        result: T = await deferToThreadPool(
            self._reactor, self._pool, lambda: self.run_sync(fn, *args, **kwargs)
        )
        return result
