"""Plugins: a letter's reply deadline, and each plugin's own records.

- letters.reply_by: when an answer is due (null: none asked for);
- plugin_data: JSON values that plugins keep under keys of their own
  (`NodeApi.store`), so a plugin needs no migrations of its own.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("letters") as table:
        table.add_column(sa.Column("reply_by", sa.Float, nullable=True))
    op.create_table(
        "plugin_data",
        sa.Column("plugin", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("plugin_data")
    with op.batch_alter_table("letters") as table:
        table.drop_column("reply_by")
