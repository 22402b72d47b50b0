"""The database, its writer thread (with group commit) and its reader threads.

Storage functions are plain blocking functions that take a `Connection`
(named `thd_*`). `Database.run` queues one for the writer thread; every write
that arrives while a commit is under way joins the next batch, which runs in
one transaction, each write in its own savepoint, and is acknowledged only
after the commit: durable (one fsync per batch) without costing throughput.
`Database.read` runs on reader threads; `run_sync` serves the CLI.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine, Table, create_engine, event, insert
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorThreads
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from govnode.locks import FileLock

P = ParamSpec("P")
T = TypeVar("T")
MAX_BATCH = 256


class DatabaseUnavailable(Exception):
    """The database cannot be reached or refused the operation for now."""


def make_engine(
    url: str, *, begin: str = "BEGIN IMMEDIATE", connect_args: dict[str, Any] | None = None
) -> Engine:
    """An engine with the durability settings govnode relies on.

    SQLite: WAL, `synchronous=FULL` (an acknowledged write survives power
    loss), and transactions begun by us (`BEGIN IMMEDIATE` for writers, so a
    writer never meets a busy lock halfway; pysqlite's own handling would
    also break savepoints). Statement parameters (letter subjects and bodies)
    are left out of the errors, which may reach the log. `connect_args`: for
    the driver of a server database (timeouts, keepalives).
    """
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if not url.startswith("sqlite"):
        return create_engine(
            url, pool_pre_ping=True, hide_parameters=True, connect_args=connect_args or {}
        )
    engine = create_engine(
        url, connect_args={"timeout": 30, "check_same_thread": False}, hide_parameters=True
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql(begin)

    return engine


def bulk_insert(conn: Connection, table: Table, rows: Sequence[Mapping[str, object]]) -> None:
    """INSERT many rows with the driver's own executemany.

    For the hot paths (letters, recipients, events, audit): SQLAlchemy's
    per-row parameter processing costs more than SQLite's work here. Every
    row must have the same keys, and plain values (str, int, float, None).
    """
    if not rows:
        return
    statement = _insert_statement(conn, table, list(rows[0]))
    if conn.dialect.name != "sqlite":
        conn.exec_driver_sql(statement, rows if isinstance(rows, list) else list(rows))
        return
    # SQLite: straight to the driver's cursor, as `insert_returning_ids` does
    # (exec_driver_sql costs as much Python as SQLite takes for the rows).
    cursor = conn.connection.cursor()
    try:
        cursor.executemany(statement, rows)
    finally:
        cursor.close()


def insert_returning_ids(
    conn: Connection, table: Table, rows: Sequence[Mapping[str, object]]
) -> list[int]:
    """INSERT rows with an autoincrement `id`; returns their ids in row order.

    On SQLite a loop of the driver's own `execute` (its statement cache makes
    that cheap) reading `lastrowid`; elsewhere SQLAlchemy's INSERT..RETURNING.
    """
    if not rows:
        return []
    if conn.dialect.name != "sqlite":
        statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
        return [int(i) for i in conn.execute(statement, list(rows)).scalars()]
    sql = _insert_statement(conn, table, list(rows[0]))
    cursor = conn.connection.cursor()
    try:
        ids = []
        for row in rows:
            cursor.execute(sql, row)
            ids.append(int(cursor.lastrowid))
        return ids
    finally:
        cursor.close()


def _insert_statement(conn: Connection, table: Table, columns: list[str]) -> str:
    key = (conn.dialect.name, table.name, tuple(columns))
    statement = _INSERTS.get(key)
    if statement is None:
        statement = _INSERTS[key] = _make_insert_statement(conn, table, columns)
    return statement


_INSERTS: dict[tuple[str, str, tuple[str, ...]], str] = {}  # made once for each shape


def _make_insert_statement(conn: Connection, table: Table, columns: list[str]) -> str:
    unknown = [column for column in columns if column not in table.c]
    if unknown:  # names come from our code, never from clients: say so loudly
        raise ValueError(f"{table.name} has no columns {unknown}")
    quote = conn.dialect.identifier_preparer.quote
    if conn.dialect.name == "sqlite":
        marks = ", ".join(f":{column}" for column in columns)
    else:
        marks = ", ".join(f"%({column})s" for column in columns)
    names = ", ".join(quote(column) for column in columns)
    return f"INSERT INTO {quote(table.name)} ({names}) VALUES ({marks})"  # noqa: S608


class WriterLock(FileLock):
    """The lock that the SQLite writers of all the node's processes take in turn.

    Several `govnode serve` processes share one SQLite file. SQLite's own busy
    handler polls with sleeps of up to 100 ms; a blocking `flock` hands the
    write lock on the moment it is released.
    """

    def __enter__(self) -> None:
        try:
            super().__enter__()
        except OSError as exc:
            raise DatabaseUnavailable(f"cannot open the writer lock {self.path}: {exc}") from exc


def _writer_lock(engine: Engine) -> contextlib.AbstractContextManager[None]:
    database = engine.url.database if is_sqlite(engine) else None
    if not database or database == ":memory:":
        return contextlib.nullcontext()
    return WriterLock(Path(f"{database}-writer.lock"))


WRITER_LOCK_KEY = 0x676F766E6F6465  # "govnode": the advisory lock of writers on PostgreSQL


def _one_writer_at_a_time(conn: Connection) -> None:
    """On PostgreSQL, write transactions of all processes take turns, as on SQLite.

    Event ids (stream positions, inbox order) come from a sequence: with
    concurrent writers a later id could commit first and a reader that saw
    it would skip the earlier one for good; and a reply and a read receipt
    could deadlock on the recipient row and the audit head.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITER_LOCK_KEY})")


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def _unavailable(exc: Exception) -> Exception:
    if isinstance(exc, OperationalError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    ):
        # One line: libpq adds hints on lines of their own ("\n\tIs the server running...").
        return DatabaseUnavailable(" ".join(str(exc.orig).split()))
    return exc


class Database:
    """The engines and threads that every query of the daemon runs on."""

    def __init__(
        self, url: str, *, reactor: IReactorThreads | None = None, pool_size: int = 8
    ) -> None:
        self.engine = make_engine(url)
        self._write_lock = _writer_lock(self.engine)
        sqlite = is_sqlite(self.engine)
        self.read_engine = make_engine(url, begin="BEGIN") if sqlite else self.engine
        self._reactor = reactor
        self._writer = ThreadPool(minthreads=1, maxthreads=1, name="govnode-db-writer")
        self._readers = ThreadPool(minthreads=1, maxthreads=pool_size, name="govnode-db-reader")
        self._pending: list[tuple[Callable[[Connection], Any], Deferred[Any]]] = []
        self._flushing = False

    def start(self) -> None:
        self._writer.start()
        self._readers.start()

    def stop(self) -> None:
        self._writer.stop()
        self._readers.stop()
        self.engine.dispose()
        self.read_engine.dispose()

    # -- blocking (CLI, other threads) ---------------------------------------

    def run_sync(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run `fn(conn, ...)` in one write transaction, here and now."""
        try:
            with self._write_transaction() as conn:
                return fn(conn, *args, **kwargs)
        except DBAPIError as exc:
            raise _unavailable(exc) from exc

    def read_sync(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        try:
            with self.read_engine.begin() as conn:
                return fn(conn, *args, **kwargs)
        except DBAPIError as exc:
            raise _unavailable(exc) from exc

    @contextlib.contextmanager
    def _write_transaction(self) -> Iterator[Connection]:
        """A write transaction, taken in turn with every other writer of the database
        (in this process and the others)."""
        with self._write_lock, self.engine.begin() as conn:
            _one_writer_at_a_time(conn)
            yield conn

    # -- from the reactor ----------------------------------------------------

    async def read(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run a read-only `fn(conn, ...)` on a reader thread."""
        assert self._reactor is not None, "Database.read needs a reactor; the CLI uses read_sync"
        result: T = await deferToThreadPool(
            self._reactor, self._readers, lambda: self.read_sync(fn, *args, **kwargs)
        )
        return result

    async def run(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run `fn(conn, ...)` in the next committed batch; returns after the commit."""
        assert self._reactor is not None, "Database.run needs a reactor; the CLI uses run_sync"
        done: Deferred[T] = Deferred()
        self._pending.append((lambda conn: fn(conn, *args, **kwargs), done))
        if not self._flushing:
            self._flush()
        return await done

    def _flush(self) -> None:
        batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
        self._flushing = True
        assert self._reactor is not None
        work = [fn for fn, _ in batch]
        deferToThreadPool(self._reactor, self._writer, self._run_batch, work).addBoth(
            self._batch_done, [done for _, done in batch]
        )

    def _run_batch(self, work: list[Callable[[Connection], Any]]) -> list[tuple[bool, Any]]:
        """One transaction for the whole batch; a write refused by our rules or by a
        constraint only undoes its savepoint.

        Any other database error fails the whole batch: SQLite answers a full
        disk or an I/O error by rolling back the entire transaction, savepoints
        and all, so nothing written before it in the batch may be reported done.
        """
        outcomes: list[tuple[bool, Any]] = []
        try:
            with self._write_transaction() as conn:
                if len(work) == 1:
                    outcomes.append((True, work[0](conn)))
                    return outcomes
                for fn in work:
                    try:
                        with conn.begin_nested():
                            outcomes.append((True, fn(conn)))
                    except DBAPIError as exc:
                        if not isinstance(exc, IntegrityError):
                            raise
                        outcomes.append((False, Failure(exc)))
                    except Exception as exc:  # noqa: BLE001 - handed to that write's caller
                        outcomes.append((False, Failure(exc)))
        except DBAPIError as exc:
            raise _unavailable(exc) from exc
        return outcomes

    def _batch_done(self, outcome: Any, waiting: list[Deferred[Any]]) -> None:
        self._flushing = False
        if self._pending:
            self._flush()
        if isinstance(outcome, Failure):
            # Nothing of this batch was committed: every write in it failed.
            for done in waiting:
                done.errback(outcome)
            return
        for (ok, value), done in zip(outcome, waiting, strict=True):
            if ok:
                done.callback(value)
            else:
                done.errback(value)
