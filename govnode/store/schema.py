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
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
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
    # An attempt is recorded before LDAP answers (pending), and becomes a
    # failure or is deleted once it has.
    Column("pending", Boolean, nullable=False, server_default=false()),
    Index("ix_login_failures_username_at", "username", "at"),
)

settings = Table(
    "settings",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

# -- letters (revision 0002) ---------------------------------------------------

letters = Table(
    "letters",
    metadata,
    # Integer order of registration: cursors and "newest first" use it.
    Column("serial", Integer, primary_key=True, autoincrement=True),
    Column("id", String(26), nullable=False, unique=True),  # ULID, what clients see
    Column("number", String(40), nullable=False, unique=True),
    # Local letters: the Jalali year and its sequence. Letters received from
    # other nodes (numbered there): year 0 and the order of their arrival.
    Column("year", Integer, nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("sender", String(64), nullable=False),  # address code@node
    Column("user", String(128), nullable=False),  # who inside the agency submitted it
    Column("subject", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("priority", String(16), nullable=False),
    Column("classification", String(16), nullable=False),
    Column("in_reply_to", String(26), nullable=True),
    Column("reply_by", Float, nullable=True),  # when an answer is due (a plugin's reports)
    Column("created_at", Float, nullable=False),
    Column("idempotency_key", String(128), nullable=True),
    Column("request_hash", String(64), nullable=True),
    UniqueConstraint("year", "sequence", name="uq_letters_year_sequence"),
    UniqueConstraint("sender", "idempotency_key", name="uq_letters_sender_idempotency_key"),
    Index("ix_letters_sender_serial", "sender", "serial"),
    sqlite_autoincrement=True,
)

recipients = Table(
    "recipients",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("letter_id", String(26), ForeignKey("letters.id"), nullable=False),
    Column("address", String(64), nullable=False),
    Column("code", String(32), nullable=False),
    Column("node", String(16), nullable=False),
    Column("kind", String(2), nullable=False),  # to | cc
    Column("status", String(16), nullable=False),
    Column("reason", Text, nullable=True),
    # The queue: due when queued and next_attempt_at has come.
    Column("next_attempt_at", Float, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("delivered_at", Float, nullable=True),
    Column("read_at", Float, nullable=True),
    # Order of arrival in the inbox (the id of the `delivered` event).
    Column("inbox_seq", Integer, nullable=True),
    UniqueConstraint("letter_id", "address", name="uq_recipients_letter_address"),
    Index("ix_recipients_due", "status", "next_attempt_at"),
    Index("ix_recipients_inbox", "node", "code", "inbox_seq"),
    sqlite_autoincrement=True,
)

attachments = Table(
    "attachments",
    metadata,
    Column("letter_id", String(26), ForeignKey("letters.id"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("filename", Text, nullable=False),
    Column("content_type", String(255), nullable=False),
    Column("size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Index("ix_attachments_sha256", "sha256"),
)

events = Table(
    "events",
    metadata,
    # Global, strictly increasing: tracking order, event-stream ids, inbox order.
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("letter_id", String(26), ForeignKey("letters.id"), nullable=False),
    Column("address", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("node", String(16), nullable=False),
    Column("detail", Text, nullable=True),
    Column("at", Float, nullable=False),
    Index("ix_events_letter", "letter_id", "id"),
    sqlite_autoincrement=True,
)

number_sequences = Table(
    "number_sequences",
    metadata,
    Column("year", Integer, primary_key=True, autoincrement=False),
    Column("last", Integer, nullable=False),
)

audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # gapless, set by us
    Column("at", Float, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("actor", String(160), nullable=False),
    Column("subject", String(160), nullable=False),
    Column("detail", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

audit_head = Table(
    "audit_head",
    metadata,
    # One row: the chain's last id and hash. Updating it serialises appends.
    Column("one", Integer, primary_key=True, autoincrement=False),
    Column("last_id", Integer, nullable=False),
    Column("last_hash", String(64), nullable=False),
)

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("audit_id", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("at", Float, nullable=False),
    Column("signature", Text, nullable=False),  # base64 ECDSA over "audit_id:hash"
    sqlite_autoincrement=True,
)


# -- federation (revision 0004) ------------------------------------------------

inbound_envelopes = Table(
    "inbound_envelopes",
    metadata,
    Column("envelope_id", String(26), primary_key=True),
    Column("letter_id", String(26), nullable=False),
    Column("peer", String(16), nullable=False),  # the node that handed it to us
    Column("origin", String(16), nullable=False),  # the node that registered the letter
    Column("received_at", Float, nullable=False),
    Column("outcome", Text, nullable=False),  # JSON: [[address, status, detail], ...]
    # (revision 0005) The node it is for; for an envelope handed on, the signed
    # envelope as received, which the next hop gets with this node added.
    Column("destination", String(16), nullable=True),
    Column("document", Text, nullable=True),
)

# -- relaying and peer directories (revision 0005) -----------------------------

notices = Table(
    "notices",
    metadata,
    # Signed status receipts on their way back to a letter's origin node.
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("destination", String(16), nullable=False),
    Column("letter_id", String(26), nullable=False),
    Column("receipt", Text, nullable=False),  # JSON: Receipt.document()
    Column("signature", Text, nullable=True),  # None: this node's own, signed when sent
    Column("hops", Text, nullable=False),  # JSON: the nodes it has passed
    Column("created_at", Float, nullable=False),
    Column("next_attempt_at", Float, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("reason", Text, nullable=True),  # the last failure, while it waits to retry
    Index("ix_notices_due", "next_attempt_at"),
    sqlite_autoincrement=True,
)

peer_nodes = Table(
    "peer_nodes",
    metadata,
    # Nodes known from peers' directories: a peer itself, and the nodes behind it.
    Column("node", String(16), primary_key=True),
    Column("via", String(16), nullable=False),  # the peer that served it
    Column("signing_key", Text, nullable=True),  # PEM, as vouched for by `via`
    Column("agencies", Integer, nullable=True),  # None: only the key is known, not its directory
    Column("fetched_at", Float, nullable=False),
)

peer_agencies = Table(
    "peer_agencies",
    metadata,
    Column("node", String(16), primary_key=True),
    Column("code", String(32), primary_key=True),
    Column("name_fa", Text, nullable=False),
    Column("name_en", Text, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("phase", Integer, nullable=False),
    Column("parent", String(32), nullable=True),
    Column("county", String(64), nullable=True),
    Column("status", String(16), nullable=False),
)

# -- plugins (revision 0006) -----------------------------------------------------

plugin_data = Table(
    "plugin_data",
    metadata,
    # Each plugin's own records (NodeApi.store): JSON values under keys it chooses.
    Column("plugin", String(64), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("value", Text, nullable=False),  # JSON
    Column("updated_at", Float, nullable=False),
)
