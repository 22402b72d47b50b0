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


# The canonical JSON of the chain, as json.dumps(..., ensure_ascii=False,
# separators=(",", ":")) writes it; one encoder instead of one per call.
_CANONICAL = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
# Details: the same with sorted keys.
DETAIL_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def record_hash(
    prev_hash: str, id: int, at: float, kind: str, actor: str, subject: str, detail: str
) -> str:
    canonical = _CANONICAL.encode([prev_hash, id, repr(at), kind, actor, subject, detail])
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
