"""The database schema (SQLAlchemy Core), the single description of every table.

Migrations (`store/migrations/versions`) create the same tables step by step;
a test compares the migrated database with this metadata. Times are seconds
since the epoch (UTC) as floats: portable across SQLite and PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

agencies = Table(
    "agencies",
    metadata,
    Column("code", String(32), primary_key=True),
    Column("name_fa", Text, nullable=False),
    Column("name_en", Text, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("phase", Integer, nullable=False),
    Column("parent", String(32), nullable=True),
    Column("county", String(64), nullable=True),
    Column("dn", Text, nullable=False),
    # Folded forms (govnode.domain.folding) so search is a plain substring test.
    Column("folded_fa", Text, nullable=False),
    Column("folded_en", Text, nullable=False),
    Column("synced_at", Float, nullable=False),
    Index("ix_agencies_county", "county"),
    Index("ix_agencies_parent", "parent"),
)

certificates = Table(
    "certificates",
    metadata,
    Column("serial", String(40), primary_key=True),  # hex
    Column("agency", String(32), nullable=False),
    Column("fingerprint_sha256", String(64), nullable=False, unique=True),
    Column("not_before", Float, nullable=False),
    Column("not_after", Float, nullable=False),
    Column("issued_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
    Column("revoke_reason", Text, nullable=True),
    Index("ix_certificates_agency", "agency"),
)

tokens = Table(
    "tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),  # sha256 of the token, hex
    Column("agency", String(32), nullable=False),
    Column("user", String(128), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
    Column("client_fingerprint", String(64), nullable=True),
    Index("ix_tokens_expires_at", "expires_at"),
)

login_failures = Table(
    "login_failures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(256), nullable=False),
    Column("at", Float, nullable=False),
    Index("ix_login_failures_username_at", "username", "at"),
)

settings = Table(
    "settings",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
