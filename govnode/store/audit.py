"""The append-only, hash-chained audit log and its signed checkpoints."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select

from govnode.domain.audit import (
    DETAIL_ENCODER,
    GENESIS,
    AuditRecord,
    first_broken,
    record_hash,
)
from govnode.store import sql
from govnode.store.database import bulk_insert
from govnode.store.schema import audit, audit_checkpoints, audit_head

Signer = Callable[[bytes], str]
Verifier = Callable[[bytes, str], bool]


@dataclass(frozen=True, slots=True)
class Entry:
    """One record to append; `thd_append_many` chains and numbers it."""

    kind: str
    actor: str
    subject: str
    at: float
    detail: dict[str, Any] | None = None


def thd_append_many(conn: Connection, entries: Sequence[Entry]) -> list[int]:
    """Append records in the caller's transaction, in order; returns their ids.

    The head row is updated first: on PostgreSQL that row lock orders
    concurrent appends, on SQLite the single writer does.
    """
    if not entries:
        return []
    head = sql.rows(
        conn,
        "UPDATE audit_head SET last_id = last_id + :count WHERE one = 1"
        " RETURNING last_id, last_hash",
        {"count": len(entries)},
    )
    if not head:
        sql.rows(
            conn,
            "INSERT INTO audit_head (one, last_id, last_hash) VALUES (1, :last_id, :last_hash)",
            {"last_id": len(entries), "last_hash": GENESIS},
        )
        last_id, prev_hash = len(entries), GENESIS
    else:
        last_id, prev_hash = int(head[0][0]), str(head[0][1])
    rows: list[dict[str, object]] = []
    for offset, entry in enumerate(entries):
        record_id = last_id - len(entries) + 1 + offset
        text = DETAIL_ENCODER.encode(entry.detail or {})
        digest = record_hash(
            prev_hash, record_id, entry.at, entry.kind, entry.actor, entry.subject, text
        )
        rows.append(
            {
                "id": record_id,
                "at": entry.at,
                "kind": entry.kind,
                "actor": entry.actor,
                "subject": entry.subject,
                "detail": text,
                "prev_hash": prev_hash,
                "hash": digest,
            }
        )
        prev_hash = digest
    bulk_insert(conn, audit, rows)
    sql.rows(
        conn, "UPDATE audit_head SET last_hash = :last_hash WHERE one = 1", {"last_hash": prev_hash}
    )
    return list(range(last_id - len(entries) + 1, last_id + 1))


def thd_append(
    conn: Connection,
    kind: str,
    *,
    actor: str,
    subject: str,
    at: float,
    detail: dict[str, Any] | None = None,
) -> int:
    """Append one record in the caller's transaction; returns its id."""
    return thd_append_many(conn, [Entry(kind, actor, subject, at, detail)])[0]


def thd_records(conn: Connection, *, batch: int = 5000) -> Iterator[AuditRecord]:
    """Every record in id order, read in batches (the log grows for years)."""
    after = 0
    while True:
        rows = conn.execute(
            select(audit).where(audit.c.id > after).order_by(audit.c.id).limit(batch)
        ).all()
        for row in rows:
            yield AuditRecord(**row._mapping)
        if len(rows) < batch:
            return
        after = rows[-1].id


def checkpoint_message(audit_id: int, digest: str) -> bytes:
    return f"govnode-audit-checkpoint:{audit_id}:{digest}".encode("ascii")


def thd_checkpoint(conn: Connection, sign: Signer, *, at: float) -> int | None:
    """Sign the chain's head unless the last checkpoint already covers it."""
    head = conn.execute(select(audit_head.c.last_id, audit_head.c.last_hash)).first()
    if head is None:
        return None
    last = conn.scalar(
        select(audit_checkpoints.c.audit_id).order_by(audit_checkpoints.c.id.desc()).limit(1)
    )
    if last == head.last_id:
        return None
    conn.execute(
        insert(audit_checkpoints).values(
            audit_id=head.last_id,
            hash=head.last_hash,
            at=at,
            signature=sign(checkpoint_message(head.last_id, head.last_hash)),
        )
    )
    return int(head.last_id)


def thd_checkpoints(conn: Connection) -> list[tuple[int, str, str]]:
    rows = conn.execute(
        select(
            audit_checkpoints.c.audit_id, audit_checkpoints.c.hash, audit_checkpoints.c.signature
        ).order_by(audit_checkpoints.c.id)
    )
    return [(int(a), str(h), str(s)) for a, h, s in rows]


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    records: int
    checkpoints: int
    problem: str | None = None
    broken_at: int | None = None


def thd_verify(conn: Connection, verify: Verifier) -> Verdict:
    """Walk the chain and the checkpoints; the first problem found is reported.

    A checkpoint must carry a valid signature and match the record it names;
    a checkpoint naming a record beyond the end shows a cut-off tail.
    """
    checkpoints = thd_checkpoints(conn)
    wanted = {audit_id for audit_id, _, _ in checkpoints}
    digests: dict[int, str] = {}
    count = 0

    def walk() -> Iterator[AuditRecord]:
        nonlocal count
        for record in thd_records(conn):
            count += 1
            if record.id in wanted:
                digests[record.id] = record.hash
            yield record

    broken = first_broken(walk())
    if broken is not None:
        return Verdict(False, count, len(checkpoints), broken[1], broken[0])
    for audit_id, digest, signature in checkpoints:
        if not verify(checkpoint_message(audit_id, digest), signature):
            problem = f"the checkpoint of record {audit_id} has a bad signature"
        elif audit_id not in digests:
            problem = (
                f"record {audit_id} was signed in a checkpoint but is gone "
                "(the end of the log was cut off)"
            )
        elif digests[audit_id] != digest:
            problem = f"record {audit_id} differs from what its checkpoint signed"
        else:
            continue
        return Verdict(False, count, len(checkpoints), problem, audit_id)
    return Verdict(True, count, len(checkpoints))
