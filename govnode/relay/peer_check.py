"""Is a peer reachable, and is it who it says? (`govnode peers`; blocking, for the CLI.)

The client side of the trust model of the federation listener: connect with
this node's node certificate, trust only the peer's CA, and accept the
answer only from a node certificate that names that very peer.
"""

from __future__ import annotations

import http.client
import json
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509

from govnode.config.model import PeerSection
from govnode.pki.identity import node_id_from_certificate


@dataclass(frozen=True, slots=True)
class PeerStatus:
    peer: str
    url: str
    ok: bool
    detail: str  # what went wrong, or what the peer said
    certificate_expires: datetime | None = None
    milliseconds: float | None = None


def check_peer(
    peer: PeerSection, *, node_cert: Path, node_key: Path, timeout: float = 10.0
) -> PeerStatus:
    """Say hello to `peer` over mutual TLS; never raises for network or TLS trouble."""
    if peer.ca_cert is None:
        return PeerStatus(peer.id, peer.url, False, "pinned peers are not supported yet")
    parts = urlsplit(peer.url)
    host, port = parts.hostname or "", parts.port or 443
    started = time.monotonic()
    try:
        context = ssl.create_default_context(cafile=str(peer.ca_cert))
        context.load_cert_chain(str(node_cert), str(node_key))
        connection = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
        try:
            connection.request("GET", "/federation/v1/hello")
            sock = connection.sock
            der = sock.getpeercert(binary_form=True) if isinstance(sock, ssl.SSLSocket) else None
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
    except ssl.SSLError as exc:
        return PeerStatus(peer.id, peer.url, False, f"TLS: {exc.reason or exc}")
    except (OSError, http.client.HTTPException) as exc:
        return PeerStatus(peer.id, peer.url, False, f"unreachable: {exc}")
    elapsed = (time.monotonic() - started) * 1000
    cert = x509.load_der_x509_certificate(der) if der else None
    expires = cert.not_valid_after_utc if cert is not None else None
    named = node_id_from_certificate(cert) if cert is not None else None
    if named != peer.id:
        return PeerStatus(
            peer.id,
            peer.url,
            False,
            f"answered with a certificate of {named or 'no node'}",
            expires,
        )
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if response.status != 200 or not isinstance(answer, dict):
        code = answer.get("error", {}).get("code") if isinstance(answer, dict) else None
        return PeerStatus(
            peer.id, peer.url, False, f"HTTP {response.status} {code or ''}".strip(), expires
        )
    return PeerStatus(
        peer.id, peer.url, True, f"knows us as {answer.get('peer')}", expires, round(elapsed, 1)
    )


def table(statuses: list[PeerStatus], *, now: datetime | None = None) -> str:
    """The statuses as the aligned table `govnode peers` prints."""
    moment = now or datetime.now(UTC)
    rows = [("PEER", "STATUS", "MS", "CERT EXPIRES", "URL / DETAIL")]
    for s in statuses:
        expires = "-"
        if s.certificate_expires is not None:
            days = (s.certificate_expires - moment).days
            expires = f"{s.certificate_expires:%Y-%m-%d} ({days} d)"
        rows.append(
            (
                s.peer,
                "ok" if s.ok else "FAILING",
                f"{s.milliseconds:.0f}" if s.milliseconds is not None else "-",
                expires,
                f"{s.url}  {s.detail}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True))
        + "  "
        + row[4]
        for row in rows
    )
