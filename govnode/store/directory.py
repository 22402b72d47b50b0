"""The directory cache: agencies synced from LDAP, searched without LDAP."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, delete, func, select

from govnode.domain.agency import Agency
from govnode.domain.folding import fold
from govnode.store import sql
from govnode.store.certificates import status_of
from govnode.store.records import AgencyRecord, CertificateRecord, DirectoryQuery
from govnode.store.schema import agencies, certificates


def thd_replace_all(
    conn: Connection, entries: Sequence[tuple[Agency, str]], *, now: float
) -> tuple[int, int]:
    """Make the cache equal to `entries` (agency, dn); return (kept/added, removed).

    Replaced in one transaction, so readers see the old or the new directory,
    never half of it.
    """
    codes = {agency.code for agency, _ in entries}
    before = set(conn.scalars(select(agencies.c.code)))
    conn.execute(delete(agencies))
    if entries:
        conn.execute(
            agencies.insert(),
            [
                {
                    "code": agency.code,
                    "name_fa": agency.name_fa,
                    "name_en": agency.name_en,
                    "kind": agency.kind,
                    "phase": agency.phase,
                    "parent": agency.parent,
                    "county": agency.county,
                    "dn": dn,
                    "folded_fa": fold(agency.name_fa),
                    "folded_en": fold(agency.name_en),
                    "synced_at": now,
                }
                for agency, dn in entries
            ],
        )
    return len(entries), len(before - codes)


def _certificates_by_agency(
    conn: Connection, codes: Sequence[str]
) -> dict[str, list[CertificateRecord]]:
    by_agency: dict[str, list[CertificateRecord]] = defaultdict(list)
    if not codes:
        return by_agency
    rows = conn.execute(
        select(certificates)
        .where(certificates.c.agency.in_(codes))
        .order_by(certificates.c.issued_at.desc())
    )
    for row in rows:
        by_agency[row.agency].append(CertificateRecord(**row._mapping))
    return by_agency


def _records(conn: Connection, rows: Sequence[Row[Any]], now: float) -> list[AgencyRecord]:
    by_agency = _certificates_by_agency(conn, [row.code for row in rows])
    records = []
    for row in rows:
        status, valid = status_of(by_agency.get(row.code, []), now)
        records.append(
            AgencyRecord(
                agency=Agency(
                    code=row.code,
                    name_fa=row.name_fa,
                    name_en=row.name_en,
                    kind=row.kind,
                    phase=row.phase,
                    parent=row.parent,
                    county=row.county,
                ),
                dn=row.dn,
                status=status,
                fingerprint_sha256=valid.fingerprint_sha256 if valid else None,
                certificate_not_after=valid.not_after if valid else None,
            )
        )
    return records


def thd_search(
    conn: Connection, query: DirectoryQuery, *, now: float
) -> tuple[list[AgencyRecord], int]:
    """Agencies matching `query` ordered by code, and how many match in all."""
    conditions: list[ColumnElement[bool]] = []
    if query.text:
        if "\x00" in query.text:
            # No name or code holds NUL, and some databases refuse it in text.
            return [], 0
        conditions.append(
            agencies.c.folded_fa.contains(query.text, autoescape=True)
            | agencies.c.folded_en.contains(query.text, autoescape=True)
            | (func.lower(agencies.c.code) == query.text)
        )
    if query.county is not None:
        conditions.append(agencies.c.county == query.county)
    if query.phase is not None:
        conditions.append(agencies.c.phase == query.phase)
    if query.parent is not None:
        conditions.append(agencies.c.parent == query.parent)
    total = conn.scalar(select(func.count()).select_from(agencies).where(*conditions)) or 0
    rows = conn.execute(
        select(agencies)
        .where(*conditions)
        .order_by(agencies.c.code)
        .limit(query.limit)
        .offset(query.offset)
    ).all()
    return _records(conn, rows, now), total


def thd_get(conn: Connection, code: str, *, now: float) -> AgencyRecord | None:
    rows = conn.execute(select(agencies).where(agencies.c.code == code)).all()
    records = _records(conn, rows, now)
    return records[0] if records else None


def thd_all(conn: Connection, *, now: float) -> list[AgencyRecord]:
    rows = conn.execute(select(agencies).order_by(agencies.c.code)).all()
    return _records(conn, rows, now)


def thd_count(conn: Connection) -> int:
    return conn.scalar(select(func.count()).select_from(agencies)) or 0


def thd_known_codes(conn: Connection, codes: set[str]) -> set[str]:
    """Which of `codes` are agencies in this node's directory (a hot path: plain SQL)."""
    listed, params = sql.in_list("code", sorted(codes))
    statement = f"SELECT code FROM agencies WHERE code IN {listed}"  # noqa: S608 - placeholders
    return {code for (code,) in sql.rows(conn, statement, params)}
