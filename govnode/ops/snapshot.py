"""A consistent copy of the database while the node writes to it, and putting one back.

SQLite: the backup API, a few hundred pages per step, all inside one read
transaction held on the source. In WAL mode a reader never blocks writers,
and holding the read transaction keeps every step on the same snapshot (a
stepped backup would otherwise restart each time the node commits).
PostgreSQL: `pg_dump --format=custom` (itself one repeatable-read snapshot)
and `pg_restore`; the password goes to them in PGPASSWORD, never in argv.
"""

from __future__ import annotations

import glob
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from govnode.ops.errors import BackupError

PAGES_PER_STEP = 256


def kind_of(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgresql"


def sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError(f"database.url {url}: not a SQLite file")
    return Path(database)


def snapshot_sqlite(url: str, out: Path) -> None:
    """Copy the live database at `url` into the new file `out`, one snapshot throughout."""
    source_path = sqlite_path(url)
    if not source_path.is_file():
        raise BackupError(f"the database {source_path} does not exist")
    try:
        source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot open the database {source_path}: {exc}") from None
    target = sqlite3.connect(out)
    try:
        source.isolation_level = None
        source.execute("BEGIN")
        source.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the read snapshot
        source.backup(target, pages=PAGES_PER_STEP)
        source.execute("COMMIT")
        target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
    except sqlite3.Error as exc:
        raise BackupError(f"cannot copy the database {source_path}: {exc}") from None
    finally:
        source.close()
        target.close()


def referenced_attachments(url: str) -> set[str]:
    """The sha256 of every attachment the database at `url` references."""
    engine = create_engine(_driver_url(url))
    try:
        with engine.connect() as conn:
            found = conn.execute(text("SELECT DISTINCT sha256 FROM attachments")).scalars()
            return {str(sha) for sha in found}
    except SQLAlchemyError as exc:
        raise BackupError(f"cannot read the attachments table of {_safe(url)}: {exc}") from None
    finally:
        engine.dispose()


def schema_revision(url: str) -> str | None:
    engine = create_engine(_driver_url(url))
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError:
        return None
    finally:
        engine.dispose()


def _driver_url(url: str) -> str:
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def _libpq_env(url: str) -> dict[str, str]:
    """The connection in libpq's environment variables (PGPASSWORD stays out of argv)."""
    parsed = make_url(url)
    env = dict(os.environ)
    for name, value in (
        ("PGHOST", parsed.host or parsed.query.get("host")),
        ("PGPORT", str(parsed.port) if parsed.port else parsed.query.get("port")),
        ("PGUSER", parsed.username),
        ("PGPASSWORD", parsed.password),
        ("PGDATABASE", parsed.database),
    ):
        if isinstance(value, tuple):
            value = value[0]
        if value:
            env[name] = str(value)
    # The URL's other libpq settings (sslmode=verify-full, sslrootcert, ...)
    # hold for pg_dump and pg_restore too.
    for key, value in parsed.query.items():
        if key in _LIBPQ_ENV and value:
            env[_LIBPQ_ENV[key]] = str(value[0] if isinstance(value, tuple) else value)
    return env


_LIBPQ_ENV = {
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslcrl": "PGSSLCRL",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "application_name": "PGAPPNAME",
    "options": "PGOPTIONS",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
}


def _tool(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if found is None:
        raise BackupError(f"{name} not found (install the PostgreSQL client, postgresql-client)")
    return found


def _run(command: list[str], url: str, what: str) -> None:
    try:
        done = subprocess.run(
            command, env=_libpq_env(url), capture_output=True, text=True, check=False
        )
    except OSError as exc:
        raise BackupError(f"cannot run {command[0]}: {exc.strerror}") from None
    if done.returncode != 0:
        detail = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise BackupError(f"{what} {_safe(url)} failed: {detail}")


def dump_postgres(url: str, out: Path) -> None:
    _run([_tool("pg_dump"), "--format=custom", "--no-owner", f"--file={out}"], url, "pg_dump of")


def check_postgres_empty(url: str) -> None:
    """Refuse a PostgreSQL database that already holds tables."""
    engine = create_engine(_driver_url(url))
    try:
        with engine.connect() as conn:
            tables = list(
                conn.execute(
                    text(
                        "SELECT table_schema || '.' || table_name FROM information_schema.tables "
                        "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') "
                        "ORDER BY 1 LIMIT 5"
                    )
                ).scalars()
            )
    except SQLAlchemyError as exc:
        raise BackupError(
            f"cannot reach the database {_safe(url)}: {getattr(exc, 'orig', None) or exc}"
        ) from None
    finally:
        engine.dispose()
    if tables:
        raise BackupError(
            f"the database {_safe(url)} is not empty (it has {', '.join(tables)}); "
            "restore into an empty database (createdb) or give another --database-url"
        )


def restore_postgres(url: str, dump: Path) -> None:
    _run(
        [
            _tool("pg_restore"),
            "--no-owner",
            "--no-acl",
            "--exit-on-error",
            "--single-transaction",
            f"--dbname={make_url(url).database}",
            str(dump),
        ],
        url,
        "pg_restore into",
    )
