"""Alembic migrations, driven from code (no alembic.ini to ship or lose)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).with_name("migrations")


class SchemaOutOfDate(Exception):
    """The database is not at the schema this version of govnode needs."""


def _alembic_config(engine: Engine) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None, "no migrations shipped"
    return head


def known_revisions() -> set[str]:
    return {script.revision for script in ScriptDirectory(str(MIGRATIONS)).walk_revisions()}


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to `revision` (each in its own transaction)."""
    command.upgrade(_alembic_config(engine), revision)


def check_schema(engine: Engine) -> None:
    """Refuse to run on any schema but the newest; say which command fixes it."""
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return
    if current is None:
        raise SchemaOutOfDate(
            "the database has no govnode schema; run `govnode db upgrade` to create it"
        )
    if current not in known_revisions():
        raise SchemaOutOfDate(
            f"the database is at revision {current}, which this govnode does not know "
            "(made by a newer version?); refusing to touch it"
        )
    raise SchemaOutOfDate(
        f"the database schema is at revision {current}, this govnode needs {head}; "
        "run `govnode db upgrade` (back up first)"
    )
