"""The database a test gets: a SQLite file, or a fresh PostgreSQL database.

`scripts/test` runs the suite twice; in its PostgreSQL run it starts a
private cluster and names its admin URL in `GOVNODE_TEST_POSTGRES`. Every
database a test makes then is a new database on that cluster (left for the
cluster's teardown), so the same tests prove both backends.
"""

from __future__ import annotations

import os
import re
import socket
import uuid
from pathlib import Path

from sqlalchemy import Engine, create_engine, make_url
from sqlalchemy.pool import NullPool

from govnode.config import CONFIG_NAME, load_config
from govnode.store.database import make_engine

POSTGRES_ENV = "GOVNODE_TEST_POSTGRES"
"""The admin URL of the test cluster (postgresql://postgres:PASSWORD@127.0.0.1:PORT/postgres)."""


def postgres_admin_url() -> str | None:
    """The test cluster's admin URL, or None in the SQLite run."""
    return os.environ.get(POSTGRES_ENV) or None


def testing_postgres() -> bool:
    return postgres_admin_url() is not None


def fresh_database_url(folder: Path, name: str) -> str:
    """A URL for a new, empty database: `folder/name` on SQLite, a new database on
    the test cluster in the PostgreSQL run."""
    admin = postgres_admin_url()
    if admin is None:
        return f"sqlite:///{folder / name}"
    return create_postgres_database(admin, name)


def create_postgres_database(admin_url: str, hint: str = "db") -> str:
    """CREATE DATABASE with a unique name on `admin_url`'s server; returns its URL."""
    stem = re.sub(r"[^a-z0-9]+", "_", hint.lower()).strip("_")[:20] or "db"
    name = f"t_{stem}_{uuid.uuid4().hex[:12]}"
    url = make_url(admin_url.replace("postgresql://", "postgresql+psycopg://", 1))
    engine = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        engine.dispose()
    made = url.set(drivername="postgresql", database=name)
    return made.render_as_string(hide_password=False)


def unreachable_database_url(folder: Path) -> str:
    """A database URL that cannot be opened: a SQLite file in a missing folder, or a
    loopback port where no PostgreSQL listens in the PostgreSQL run."""
    if not testing_postgres():
        return f"sqlite:///{folder / 'no-such-folder' / 'govnode.db'}"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"postgresql://govnode@127.0.0.1:{port}/govnode"


def home_engine(home: Path) -> Engine:
    """An engine on a node home's database (tests read and break it through this)."""
    return make_engine(load_config(home / CONFIG_NAME, read_secrets=False).database.url)
