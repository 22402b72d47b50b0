"""Hand-written SQL for the writer's hot paths, run through the driver.

Building and compiling a SQLAlchemy Core statement costs about 100 µs of
Python, more than SQLite takes to run it; the writer runs a dozen per batch
while holding the GIL that the API needs. These statements are plain SQL
that SQLite and PostgreSQL both accept, written once with `:name`
placeholders and translated to the driver's style once per dialect.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, CursorResult

_NAMED = re.compile(r"(?<![:\w]):(\w+)")


@lru_cache(maxsize=256)
def _translate(dialect: str, statement: str) -> str:
    if dialect == "sqlite":
        return statement  # sqlite3 takes :name as it is
    return _NAMED.sub(r"%(\1)s", statement.replace("%", "%%"))


def run(
    conn: Connection,
    statement: str,
    params: Mapping[str, object] | Sequence[Mapping[str, object]] = {},
) -> CursorResult[Any]:
    """Run `statement` once, or once per mapping (the driver's executemany)."""
    if isinstance(params, Mapping):
        return conn.exec_driver_sql(_translate(conn.dialect.name, statement), dict(params))
    return conn.exec_driver_sql(
        _translate(conn.dialect.name, statement), [dict(row) for row in params]
    )


def rows(
    conn: Connection, statement: str, params: Mapping[str, object] = {}
) -> list[tuple[Any, ...]]:
    """Run `statement` once and return its rows as tuples (none for most writes).

    For the writer's statements that run in every batch: on SQLite straight
    through the driver's cursor, where SQLAlchemy's execution and result
    objects cost several times what SQLite takes for the statement.
    """
    if conn.dialect.name != "sqlite":
        result = run(conn, statement, params)
        return [tuple(row) for row in result] if result.returns_rows else []
    cursor = conn.connection.cursor()
    try:
        cursor.execute(statement, dict(params))
        return list(cursor.fetchall())
    finally:
        cursor.close()


def in_list(name: str, values: Collection[object]) -> tuple[str, dict[str, object]]:
    """`(:name_0, :name_1, ...)` and its parameters, for `column IN` with a list."""
    params = {f"{name}_{index}": value for index, value in enumerate(values)}
    if not params:
        return "(NULL)", {}  # matches nothing; PostgreSQL refuses an empty list
    return "(" + ", ".join(f":{key}" for key in params) + ")", params


def for_update_skip_locked(conn: Connection, table: str) -> str:
    """Row locks that let several processes claim work on PostgreSQL (SQLite has
    one writer and no row locks)."""
    return "" if conn.dialect.name == "sqlite" else f" FOR UPDATE OF {table} SKIP LOCKED"
