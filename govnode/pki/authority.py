"""The node CA at work: enrolling and revoking agencies, publishing the CRL.

Shared by the CLI (`govnode agency ...`) and the daemon (which re-publishes
the CRL before it expires). Certificates are recorded in the database; the
CRL file is derived from that record, written atomically, and picked up by
the running node within seconds.
"""

from __future__ import annotations

import fcntl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection

from govnode.config.model import TlsSection
from govnode.pki import ca, signing
from govnode.pki.files import read_pem, write_atomic, write_private
from govnode.store import audit, certificates, tokens
from govnode.store.database import Database

CRL_VALID_DAYS = 30
CRL_REFRESH_BEFORE = timedelta(days=7)


def _record_enrollment(conn: Connection, issued: ca.Issued, code: str, *, now: float) -> None:
    certificates.thd_record_issued(
        conn,
        serial=issued.serial,
        agency=code,
        fingerprint_sha256=issued.fingerprint_sha256,
        not_before=_timestamp(issued.not_before),
        not_after=_timestamp(issued.not_after),
        now=now,
    )
    audit.thd_append(
        conn,
        "agency.enrolled",
        actor="operator",
        subject=code,
        at=now,
        detail={"serial": format(issued.serial, "x"), "sha256": issued.fingerprint_sha256},
    )


def _revoke_agency(conn: Connection, code: str, *, now: float, reason: str) -> list[str]:
    """Certificates and the tokens issued over them go together."""
    serials = certificates.thd_revoke_agency(conn, code, now=now, reason=reason)
    if serials:
        tokens.thd_revoke_agency(conn, code)
        audit.thd_append(
            conn,
            "agency.revoked",
            actor="operator",
            subject=code,
            at=now,
            detail={"serials": serials, "reason": reason},
        )
    return serials


def _revoke_one(conn: Connection, code: str, serial: str, *, now: float, reason: str) -> bool:
    revoked = certificates.thd_revoke_serial(conn, serial, now=now, reason=reason)
    if revoked:
        audit.thd_append(
            conn,
            "agency.revoked",
            actor="operator",
            subject=code,
            at=now,
            detail={"serials": [serial], "reason": reason},
        )
    return revoked


def _crl_contents(conn: Connection) -> tuple[int, list[tuple[int, float]]]:
    """The next CRL number and the revoked certificates, read in one transaction."""
    return certificates.thd_next_crl_number(conn), certificates.thd_revoked(conn)


def _timestamp(moment: datetime) -> float:
    return moment.timestamp()


@dataclass(frozen=True, slots=True)
class NodeAuthority:
    tls: TlsSection
    node_id: str
    db: Database

    def _ca(self) -> tuple[bytes, bytes]:
        return (
            read_pem(self.tls.ca_cert, "the node CA certificate"),
            read_pem(self.tls.ca_key, "the node CA private key"),
        )

    def enroll(
        self,
        code: str,
        *,
        now: datetime,
        valid_days: int | None = None,
        csr_pem: bytes | None = None,
    ) -> ca.Issued:
        """Issue a client certificate for `code` and record it (the caller checks the code);
        for the key of `csr_pem` when given."""
        ca_cert, ca_key = self._ca()
        issued = ca.issue_agency_certificate(
            ca_cert,
            ca_key,
            code=code,
            node_id=self.node_id,
            now=now,
            valid_days=self.tls.agency_cert_days if valid_days is None else valid_days,
            csr_pem=csr_pem,
        )
        self.db.run_sync(_record_enrollment, issued, code, now=_timestamp(now))
        return issued

    def revoke(self, code: str, *, now: datetime, reason: str) -> list[str]:
        """Revoke every certificate of `code` and publish the new CRL at once."""
        serials = self.db.run_sync(_revoke_agency, code, now=_timestamp(now), reason=reason)
        if serials:
            self.publish_crl(now=now)
        return serials

    def revoke_serial(self, code: str, serial: int, *, now: datetime, reason: str) -> bool:
        """Revoke one certificate of `code` (its others stay valid); publish the CRL."""
        revoked = self.db.run_sync(
            _revoke_one, code, format(serial, "x"), now=_timestamp(now), reason=reason
        )
        if revoked:
            self.publish_crl(now=now)
        return revoked

    def signing_key(self) -> bytes:
        """The node's signing key, made on first use (homes made before it existed)."""
        path = self.tls.signing_key
        if not path.exists():
            lock_path = path.with_name(f".{path.name}.lock")
            with lock_path.open("a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                if not path.exists():
                    write_private(path, signing.create_signing_key())
        return read_pem(path, "the node signing key")

    def publish_crl(self, *, now: datetime) -> None:
        """Write a CRL of every revoked certificate.

        The CLI and the daemon both publish; a lock file beside the CRL keeps
        one from renaming a CRL made from an older list over a newer one.
        """
        ca_cert, ca_key = self._ca()
        lock_path = self.tls.crl.with_name(f".{self.tls.crl.name}.lock")
        with lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            number, revoked_at = self.db.run_sync(_crl_contents)
            revoked = [(serial, datetime.fromtimestamp(at, UTC)) for serial, at in revoked_at]
            crl = ca.build_crl(
                ca_cert, ca_key, revoked, now=now, valid_days=CRL_VALID_DAYS, crl_number=number
            )
            write_atomic(self.tls.crl, crl)

    def crl_due(self, *, now: datetime) -> bool:
        """True when the CRL is missing or will expire within a week."""
        if not self.tls.crl.exists():
            return True
        next_update = ca.crl_next_update(self.tls.crl.read_bytes())
        return next_update - now < CRL_REFRESH_BEFORE
