"""A real database (a SQLite file; PostgreSQL in that run), migrated, with the demo agencies."""

from __future__ import annotations

from pathlib import Path

import pytest

from govnode.store import directory
from govnode.store.database import Database
from govnode.store.migrate import upgrade
from govnode.testing.databases import fresh_database_url
from govnode.testing.demo_data import demo_file, load_agencies


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(fresh_database_url(tmp_path, "db"))
    upgrade(database.engine)
    entries = [(a, f"uid={a.code},ou=agencies") for a in load_agencies(demo_file("agencies.csv"))]
    database.run_sync(directory.thd_replace_all, entries, now=0.0)
    return database
