"""When the node's certificates and CRL run out, and what renews each.

One list, read from the files, for the three places a sysadmin looks:
`govnode check` and `govnode cert list`, the `/metrics` gauges, and the
warnings the running node logs 30 days ahead. The CA is valid ten years and
is not renewed by govnode (a new CA means re-enrolling every agency).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path

from cryptography.hazmat.primitives import hashes

from govnode.config.model import TlsSection
from govnode.pki import ca
from govnode.pki.authority import CRL_REFRESH_BEFORE
from govnode.pki.errors import PkiError
from govnode.pki.files import read_pem

EXPIRY_WARNING = timedelta(days=30)
"""How far ahead an expiring certificate is reported."""

RENEW_COMMANDS = {
    "ca": "none: the CA is valid 10 years; a new CA means re-enrolling every agency",
    "server": "govnode cert renew server",
    "node": "govnode cert renew node",
    "crl": "govnode cert renew crl (a running node re-publishes it by itself)",
}
"""What renews each of the node's own certificates (shown beside a warning)."""

LABELS = {
    "ca": "CA certificate",
    "server": "server certificate",
    "node": "node certificate",
    "crl": "CRL",
}


class Standing(StrEnum):
    OK = "ok"
    WARN = "WARN"  # within the warning window: renew now
    EXPIRED = "EXPIRED"  # or unreadable: the node refuses, or is refused


@dataclass(frozen=True, slots=True)
class Held:
    """One certificate (or the CRL) the node holds, as read from its file."""

    name: str  # ca, server, node, crl
    path: Path
    not_after: datetime | None  # for the CRL: its nextUpdate; None when unreadable
    serial: int | None = None
    fingerprint_sha256: str | None = None
    problem: str | None = None  # why the file could not be read

    @property
    def renew(self) -> str:
        return RENEW_COMMANDS[self.name]

    @property
    def label(self) -> str:
        return LABELS[self.name]

    def left(self, now: datetime) -> timedelta | None:
        return None if self.not_after is None else self.not_after - now

    def standing(self, now: datetime) -> Standing:
        """EXPIRED past the date, WARN within the window (for the CRL: within the week
        before nextUpdate, when the running node should already have re-published it)."""
        left = self.left(now)
        if left is None or left <= timedelta(0):
            return Standing.EXPIRED
        window = CRL_REFRESH_BEFORE if self.name == "crl" else EXPIRY_WARNING
        return Standing.WARN if left <= window else Standing.OK


def held_certificates(tls: TlsSection) -> list[Held]:
    """The CA, server and node certificates and the CRL, in that order."""
    held = [
        _certificate(name, path, what)
        for name, path, what in (
            ("ca", tls.ca_cert, "the node CA certificate"),
            ("server", tls.server_cert, "the server certificate"),
            ("node", tls.node_cert, "the node certificate"),
        )
    ]
    try:
        next_update = ca.crl_next_update(read_pem(tls.crl, "the CRL"))
        held.append(Held("crl", tls.crl, next_update))
    except PkiError as exc:
        held.append(Held("crl", tls.crl, None, problem=str(exc)))
    return held


def _certificate(name: str, path: Path, what: str) -> Held:
    try:
        cert = ca.load_certificate(read_pem(path, what))
    except PkiError as exc:
        return Held(name, path, None, problem=str(exc))
    return Held(
        name,
        path,
        cert.not_valid_after_utc,
        serial=cert.serial_number,
        fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(),
    )


def describe(held: Held, now: datetime) -> str:
    """One line for a human: what, where, until when, how long left, what renews it."""
    if held.not_after is None:
        return f"{held.label} {held.path}: {held.problem}"
    left = held.left(now)
    assert left is not None
    until = "next update" if held.name == "crl" else "valid until"
    text = f"{held.label} {held.path} {until} {held.not_after:%Y-%m-%d %H:%M} UTC"
    if left <= timedelta(0):
        return f"{text} (EXPIRED {(-left).days} days ago); renew: {held.renew}"
    text += f" ({left.days} days left)"
    if held.standing(now) is Standing.WARN:
        text += f"; renew: {held.renew}"
    return text


class ExpiryWarnings:
    """Which expiry warnings the running node logs now: each at start, then once a day
    (a warning every few seconds would bury the rest of the journal)."""

    def __init__(self, every: timedelta = timedelta(days=1)) -> None:
        self._every = every
        self._said: dict[str, tuple[Standing, datetime]] = {}

    def due(self, entries: Sequence[tuple[str, Standing, str]], now: datetime) -> list[Said]:
        """Of (key, standing, message) entries, those to log now; OK ones reset their key."""
        out: list[Said] = []
        for key, standing, message in entries:
            if standing is Standing.OK:
                self._said.pop(key, None)
                continue
            last = self._said.get(key)
            if last is not None and last[0] is standing and now - last[1] < self._every:
                continue
            self._said[key] = (standing, now)
            out.append(Said(standing, message))
        return out


@dataclass(frozen=True, slots=True)
class Said:
    standing: Standing
    message: str


def log_entries(held: Sequence[Held], now: datetime) -> list[tuple[str, Standing, str]]:
    """What the node says of its own certificates: one entry per certificate."""
    return [(h.name, h.standing(now), describe(h, now)) for h in held]


def agencies_entry(codes: Sequence[str]) -> tuple[str, Standing, str]:
    """What the node says of agency certificates expiring within the window."""
    if not codes:
        return ("agencies", Standing.OK, "")
    return (
        "agencies",
        Standing.WARN,
        f"{len(codes)} agency certificate(s) expire within {EXPIRY_WARNING.days} days: "
        f"{', '.join(codes)}; renew: govnode agency renew CODE --out DIR",
    )
