"""Relaying, status notices and peer directories (federation across several nodes).

- inbound_envelopes: the destination and, for envelopes handed on, the signed
  envelope as received (what the next hop gets, with this node added to its hops);
- notices: signed status receipts (delivered, read, answered, failed...) on
  their way back to a letter's origin node;
- peer_nodes, peer_agencies: the directories peers serve, with the signing
  keys of the nodes behind them.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_envelopes") as table:
        table.add_column(sa.Column("destination", sa.String(16), nullable=True))
        table.add_column(sa.Column("document", sa.Text, nullable=True))
    op.create_table(
        "notices",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("destination", sa.String(16), nullable=False),
        sa.Column("letter_id", sa.String(26), nullable=False),
        sa.Column("receipt", sa.Text, nullable=False),
        sa.Column("signature", sa.Text, nullable=True),
        sa.Column("hops", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("next_attempt_at", sa.Float, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_notices_due", "notices", ["next_attempt_at"])
    op.create_table(
        "peer_nodes",
        sa.Column("node", sa.String(16), primary_key=True),
        sa.Column("via", sa.String(16), nullable=False),
        sa.Column("signing_key", sa.Text, nullable=True),
        sa.Column("agencies", sa.Integer, nullable=True),
        sa.Column("fetched_at", sa.Float, nullable=False),
    )
    op.create_table(
        "peer_agencies",
        sa.Column("node", sa.String(16), primary_key=True),
        sa.Column("code", sa.String(32), primary_key=True),
        sa.Column("name_fa", sa.Text, nullable=False),
        sa.Column("name_en", sa.Text, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("phase", sa.Integer, nullable=False),
        sa.Column("parent", sa.String(32), nullable=True),
        sa.Column("county", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("peer_agencies")
    op.drop_table("peer_nodes")
    op.drop_index("ix_notices_due", table_name="notices")
    op.drop_table("notices")
    with op.batch_alter_table("inbound_envelopes") as table:
        table.drop_column("document")
        table.drop_column("destination")
