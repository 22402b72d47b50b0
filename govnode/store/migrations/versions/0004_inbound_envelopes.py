"""Envelopes received from peer nodes: what was answered, so a retry stores nothing twice.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbound_envelopes",
        sa.Column("envelope_id", sa.String(26), primary_key=True),
        sa.Column("letter_id", sa.String(26), nullable=False),
        sa.Column("peer", sa.String(16), nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),  # JSON: [[address, status, detail], ...]
    )


def downgrade() -> None:
    op.drop_table("inbound_envelopes")
