"""Migrations build exactly the schema the code describes; old schemas are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from govnode.store.database import make_engine
from govnode.store.migrate import SchemaOutOfDate, check_schema, head_revision, upgrade
from govnode.store.schema import metadata
from govnode.testing.databases import fresh_database_url


def test_migrated_database_matches_the_schema(tmp_path: Path) -> None:
    engine = make_engine(fresh_database_url(tmp_path, "db.sqlite"))
    upgrade(engine)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    check_schema(engine)


def test_an_empty_database_is_refused_with_the_command_to_run(tmp_path: Path) -> None:
    engine = make_engine(fresh_database_url(tmp_path, "db.sqlite"))
    with pytest.raises(SchemaOutOfDate, match="govnode db upgrade"):
        check_schema(engine)


def test_a_schema_from_a_newer_govnode_is_refused(tmp_path: Path) -> None:
    engine = make_engine(fresh_database_url(tmp_path, "db.sqlite"))
    upgrade(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(SchemaOutOfDate, match="9999"):
        check_schema(engine)


def test_upgrade_is_idempotent(tmp_path: Path) -> None:
    engine = make_engine(fresh_database_url(tmp_path, "db.sqlite"))
    upgrade(engine)
    upgrade(engine)
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == head_revision()


@pytest.mark.sqlite_only
def test_sqlite_runs_in_wal_with_full_sync(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
