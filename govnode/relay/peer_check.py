"""Is a peer reachable, and is it who it says? (`govnode peers`; blocking, for the CLI.)

The client side of the trust model of the federation listener: connect with
this node's node certificate, trust only the peer's CA, and accept the
answer only from a node certificate that names that very peer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from govnode.config.model import PeerSection
from govnode.relay.peer_client import PeerUnreachable, call_peer


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
    try:
        answer = call_peer(
            peer,
            "GET",
            "/federation/v1/hello",
            node_cert=node_cert,
            node_key=node_key,
            timeout=timeout,
        )
    except PeerUnreachable as exc:
        return PeerStatus(peer.id, peer.url, False, str(exc))
    expires = answer.certificate.not_valid_after_utc
    document = answer.document
    if answer.status != 200 or not isinstance(document, dict):
        error = document.get("error") if isinstance(document, dict) else None
        code = error.get("code", "") if isinstance(error, dict) else ""
        return PeerStatus(peer.id, peer.url, False, f"HTTP {answer.status} {code}".strip(), expires)
    return PeerStatus(
        peer.id,
        peer.url,
        True,
        f"knows us as {document.get('peer')}",
        expires,
        round(answer.milliseconds, 1),
    )
