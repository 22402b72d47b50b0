"""Plain values that storage functions hand back to the reactor thread."""

from __future__ import annotations

from dataclasses import dataclass

from govnode.domain.agency import Agency, AgencyStatus


@dataclass(frozen=True, slots=True)
class AgencyRecord:
    """An agency from the directory cache, with its enrollment state."""

    agency: Agency
    dn: str
    status: AgencyStatus
    fingerprint_sha256: str | None
    certificate_not_after: float | None


@dataclass(frozen=True, slots=True)
class CertificateRecord:
    serial: str
    agency: str
    fingerprint_sha256: str
    not_before: float
    not_after: float
    issued_at: float
    revoked_at: float | None
    revoke_reason: str | None


@dataclass(frozen=True, slots=True)
class TokenRecord:
    agency: str
    user: str
    expires_at: float
    client_fingerprint: str | None


@dataclass(frozen=True, slots=True)
class DirectoryQuery:
    """A directory search as the API takes it; `text` is already folded."""

    text: str = ""
    county: str | None = None
    phase: int | None = None
    parent: str | None = None
    limit: int = 50
    offset: int = 0
