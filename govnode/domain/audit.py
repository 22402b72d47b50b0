"""The audit chain: each record carries the hash of the one before it.

Changing, removing, inserting or reordering any record changes every hash
after it; signed checkpoints of the chain's head (see store/audit.py) also
catch a tail that was cut off.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from json.encoder import encode_basestring as _string

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: int
    at: float
    kind: str  # letter.registered, login.failure, agency.revoked, ...
    actor: str  # who did it: an address, a user, "operator", the node
    subject: str  # what it is about: a letter id, an agency code
    detail: str  # JSON text
    prev_hash: str
    hash: str


# Details as canonical JSON (sorted keys, no spaces, UTF-8 kept); made once
# (json.dumps with options makes a new encoder for every call).
DETAIL_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def record_hash(
    prev_hash: str, id: int, at: float, kind: str, actor: str, subject: str, detail: str
) -> str:
    """SHA-256 of the record's canonical JSON: the array
    `[prev_hash, id, repr(at), kind, actor, subject, detail]` exactly as
    `json.dumps(..., ensure_ascii=False, separators=(",", ":"))` writes it,
    put together from the json module's own string encoder (half the time)."""
    canonical = "[%s,%d,%s,%s,%s,%s,%s]" % (  # noqa: UP031 - one format, no f-string nesting
        _string(prev_hash),
        id,
        _string(repr(at)),
        _string(kind),
        _string(actor),
        _string(subject),
        _string(detail),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def first_broken(records: Iterable[AuditRecord]) -> tuple[int, str] | None:
    """(id, what is wrong) of the first record that breaks the chain, or None."""
    expected_prev, expected_id = GENESIS, 1
    for record in records:
        if record.id != expected_id:
            return record.id, f"expected record {expected_id} here (removed, inserted or moved)"
        if record.prev_hash != expected_prev:
            return record.id, "does not follow the record before it"
        digest = record_hash(
            record.prev_hash,
            record.id,
            record.at,
            record.kind,
            record.actor,
            record.subject,
            record.detail,
        )
        if digest != record.hash:
            return record.id, "its content does not match its hash (modified)"
        expected_prev, expected_id = record.hash, record.id + 1
    return None
