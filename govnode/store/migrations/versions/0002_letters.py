"""Letters, recipients (the delivery queue), attachments, tracking events, numbers, audit.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "letters",
        sa.Column("serial", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(26), nullable=False, unique=True),
        sa.Column("number", sa.String(40), nullable=False, unique=True),
        sa.Column("year", sa.Integer, nullable=False),
        sa.Column("sequence", sa.Integer, nullable=False),
        sa.Column("sender", sa.String(64), nullable=False),
        sa.Column("user", sa.String(128), nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("classification", sa.String(16), nullable=False),
        sa.Column("in_reply_to", sa.String(26), nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("idempotency_key", sa.String(128), nullable=True),
        sa.Column("request_hash", sa.String(64), nullable=True),
        sa.UniqueConstraint("year", "sequence", name="uq_letters_year_sequence"),
        sa.UniqueConstraint("sender", "idempotency_key", name="uq_letters_sender_idempotency_key"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_letters_sender_serial", "letters", ["sender", "serial"])
    op.create_table(
        "recipients",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("letter_id", sa.String(26), sa.ForeignKey("letters.id"), nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("node", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(2), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("next_attempt_at", sa.Float, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("delivered_at", sa.Float, nullable=True),
        sa.Column("read_at", sa.Float, nullable=True),
        sa.Column("inbox_seq", sa.Integer, nullable=True),
        sa.UniqueConstraint("letter_id", "address", name="uq_recipients_letter_address"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_recipients_due", "recipients", ["status", "next_attempt_at"])
    op.create_index("ix_recipients_inbox", "recipients", ["node", "code", "inbox_seq"])
    op.create_table(
        "attachments",
        sa.Column("letter_id", sa.String(26), sa.ForeignKey("letters.id"), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("filename", sa.Text, nullable=False),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
    )
    op.create_index("ix_attachments_sha256", "attachments", ["sha256"])
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("letter_id", sa.String(26), sa.ForeignKey("letters.id"), nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("node", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text, nullable=True),
        sa.Column("at", sa.Float, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_events_letter", "events", ["letter_id", "id"])
    op.create_table(
        "number_sequences",
        sa.Column("year", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("last", sa.Integer, nullable=False),
    )
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(160), nullable=False),
        sa.Column("subject", sa.String(160), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "audit_head",
        sa.Column("one", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("last_id", sa.Integer, nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("audit_id", sa.Integer, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("signature", sa.Text, nullable=False),
        sqlite_autoincrement=True,
    )
