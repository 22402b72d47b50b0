"""Renewing the node's own certificates: the agency API's server certificate and
the federation node certificate.

The new pair replaces the old one in place, key first, each file atomically,
so a running node that looks between the two writes sees a mismatch, keeps
its old context and reloads once the certificate follows. The previous pair
is kept beside it (`server.pem.old`, `server.key.old`) to go back by hand.
The renewal goes into the audit log (serial, fingerprint, validity): the
certificates table holds agency certificates only (a row there makes an
agency active).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from govnode.config.model import Config
from govnode.pki import ca
from govnode.pki.errors import CertificateFileError
from govnode.pki.files import read_pem, write_atomic, write_private
from govnode.store import audit
from govnode.store.database import Database

Own = Literal["server", "node"]

DEFAULT_DAYS = 397
"""The longest lifetime TLS stacks still accept (as `govnode init` issues)."""


@dataclass(frozen=True, slots=True)
class Renewed:
    which: Own
    issued: ca.Issued
    cert_path: Path
    key_path: Path
    names: tuple[str, ...]
    old_cert: Path | None  # where the previous certificate was kept, if there was one


def split_names(names: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses) of `tls.server_names`."""
    dns: list[str] = []
    ips: list[str] = []
    for name in names:
        try:
            ipaddress.ip_address(name)
        except ValueError:
            dns.append(name)
        else:
            ips.append(name)
    return dns, ips


def old_path(path: Path) -> Path:
    return path.with_name(path.name + ".old")


def renew(
    config: Config, db: Database, which: Own, *, now: datetime, valid_days: int, actor: str
) -> Renewed:
    """Issue a new key and certificate for `tls.server_names`, install them, audit it."""
    tls = config.tls
    ca_cert = read_pem(tls.ca_cert, "the node CA certificate")
    ca_key = read_pem(tls.ca_key, "the node CA private key")
    dns, ips = split_names(tls.server_names)
    issue = ca.issue_server_certificate if which == "server" else ca.issue_node_certificate
    issued = issue(
        ca_cert,
        ca_key,
        node_id=config.node.id,
        dns_names=dns,
        ip_addresses=ips,
        now=now,
        valid_days=valid_days,
    )
    cert_path, key_path = (
        (tls.server_cert, tls.server_key) if which == "server" else (tls.node_cert, tls.node_key)
    )
    old_cert = _keep_old(cert_path, key_path)
    write_private(key_path, issued.key_pem)
    write_atomic(cert_path, issued.cert_pem)
    db.run_sync(
        audit.thd_append,
        "certificate.renewed",
        actor=actor,
        subject=which,
        at=now.timestamp(),
        detail={
            "serial": format(issued.serial, "x"),
            "sha256": issued.fingerprint_sha256,
            "not_before": issued.not_before.isoformat(),
            "not_after": issued.not_after.isoformat(),
            "names": list(tls.server_names),
        },
    )
    return Renewed(which, issued, cert_path, key_path, tls.server_names, old_cert)


def _keep_old(cert_path: Path, key_path: Path) -> Path | None:
    """Copy the current pair to `*.old` (key 0600); nothing when there is none."""
    try:
        cert = cert_path.read_bytes()
        key = key_path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CertificateFileError(f"{exc.filename}: cannot read: {exc.strerror}") from exc
    write_private(old_path(key_path), key)
    write_atomic(old_path(cert_path), cert)
    return old_path(cert_path)
