"""Issued agency certificates: what makes an agency `active`, and the CRL's source."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Row, func, select, update

from govnode.domain.agency import AgencyStatus
from govnode.store.records import CertificateRecord
from govnode.store.schema import certificates, settings


def _record(row: Row[Any]) -> CertificateRecord:
    return CertificateRecord(**row._mapping)


def thd_record_issued(
    conn: Connection,
    *,
    serial: int,
    agency: str,
    fingerprint_sha256: str,
    not_before: float,
    not_after: float,
    now: float,
) -> None:
    conn.execute(
        certificates.insert().values(
            serial=format(serial, "x"),
            agency=agency,
            fingerprint_sha256=fingerprint_sha256,
            not_before=not_before,
            not_after=not_after,
            issued_at=now,
        )
    )


def thd_revoke_agency(conn: Connection, agency: str, *, now: float, reason: str) -> list[str]:
    """Revoke every unrevoked certificate of `agency`; return the serials revoked."""
    serials = list(
        conn.scalars(
            select(certificates.c.serial).where(
                certificates.c.agency == agency, certificates.c.revoked_at.is_(None)
            )
        )
    )
    if serials:
        conn.execute(
            update(certificates)
            .where(certificates.c.serial.in_(serials))
            .values(revoked_at=now, revoke_reason=reason)
        )
    return serials


def thd_revoked(conn: Connection) -> list[tuple[int, float]]:
    """(serial, revoked_at) of every revoked certificate, for the CRL.

    Expired ones stay listed too: there are few, and a CRL that only grows is
    simple to reason about.
    """
    rows = conn.execute(
        select(certificates.c.serial, certificates.c.revoked_at).where(
            certificates.c.revoked_at.is_not(None)
        )
    )
    return [(int(serial, 16), float(at)) for serial, at in rows]


def thd_usable(conn: Connection, fingerprint: str, *, now: float) -> bool:
    """Whether a presented certificate is one this node issued and has not revoked.

    The handshake already refused revoked certificates when it happened; this
    catches connections opened before the revocation.
    """
    row = conn.execute(
        select(certificates.c.revoked_at, certificates.c.not_after).where(
            certificates.c.fingerprint_sha256 == fingerprint
        )
    ).first()
    return row is not None and row.revoked_at is None and now < row.not_after


def thd_for_agency(conn: Connection, agency: str) -> list[CertificateRecord]:
    rows = conn.execute(
        select(certificates)
        .where(certificates.c.agency == agency)
        .order_by(certificates.c.issued_at.desc())
    )
    return [_record(row) for row in rows]


def thd_all(conn: Connection) -> list[CertificateRecord]:
    rows = conn.execute(select(certificates).order_by(certificates.c.issued_at))
    return [_record(row) for row in rows]


def thd_next_crl_number(conn: Connection) -> int:
    """A strictly increasing CRL number (RFC 5280 §5.2.3)."""
    current = conn.scalar(select(settings.c.value).where(settings.c.name == "crl_number"))
    number = int(current) + 1 if current is not None else 1
    if current is None:
        conn.execute(settings.insert().values(name="crl_number", value=str(number)))
    else:
        conn.execute(
            update(settings).where(settings.c.name == "crl_number").values(value=str(number))
        )
    return number


def status_of(
    records: Iterable[CertificateRecord], now: float
) -> tuple[AgencyStatus, CertificateRecord | None]:
    """Enrollment status from an agency's certificates, and the valid one if any."""
    revoked = False
    for record in records:
        if record.revoked_at is None and record.not_before <= now < record.not_after:
            return AgencyStatus.ACTIVE, record
        revoked = revoked or record.revoked_at is not None
    return (AgencyStatus.SUSPENDED if revoked else AgencyStatus.PENDING), None


def thd_agencies_expiring(conn: Connection, *, now: float, until: float) -> list[str]:
    """Agencies whose last valid certificate runs out between `now` and `until`.

    An agency that already holds a newer certificate (`agency renew`) is not
    listed: its old one may expire unnoticed.
    """
    latest = (
        select(certificates.c.agency, func.max(certificates.c.not_after).label("not_after"))
        .where(certificates.c.revoked_at.is_(None), certificates.c.not_before <= now)
        .group_by(certificates.c.agency)
        .subquery()
    )
    rows = conn.execute(
        select(latest.c.agency)
        .where(latest.c.not_after > now, latest.c.not_after <= until)
        .order_by(latest.c.agency)
    )
    return [str(code) for code in rows.scalars()]


def thd_revoke_serial(conn: Connection, serial: str, *, now: float, reason: str) -> bool:
    """Revoke one certificate by its hex serial; False when unknown or already revoked."""
    done = conn.execute(
        update(certificates)
        .where(certificates.c.serial == serial, certificates.c.revoked_at.is_(None))
        .values(revoked_at=now, revoke_reason=reason)
    )
    return bool(done.rowcount)
