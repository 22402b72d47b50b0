"""Blocking HTTPS to a peer's federation port, with this node's node certificate.

Trusts only the peer's CA, and accepts an answer only from a node
certificate that names that very peer. Runs on threads (the relay's, the
CLI's): a federation link carries few, large requests.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509

from govnode.config.model import PeerSection
from govnode.pki.identity import node_id_from_certificate


class PeerUnreachable(Exception):
    """No answer from the peer, or not from the peer (network, TLS, identity)."""


@dataclass(frozen=True, slots=True)
class PeerAnswer:
    status: int
    document: Any  # the JSON answer, or None
    certificate: x509.Certificate
    milliseconds: float


def call_peer(
    peer: PeerSection,
    method: str,
    path: str,
    *,
    node_cert: Path,
    node_key: Path,
    body: object = None,
    timeout: float = 30.0,
) -> PeerAnswer:
    """One request to `peer`; PeerUnreachable for anything but an answer from it.

    A peer is trusted by its CA, or by the pinned SHA-256 of its node
    certificate: then any issuer will do, and the pin is checked before a byte
    of the request is sent.
    """
    parts = urlsplit(peer.url)
    started = time.monotonic()
    try:
        if peer.ca_cert is not None:
            context = ssl.create_default_context(cafile=str(peer.ca_cert))
        else:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE  # the pin below is the check
        context.load_cert_chain(str(node_cert), str(node_key))
        connection = http.client.HTTPSConnection(
            parts.hostname or "", parts.port or 443, timeout=timeout, context=context
        )
        try:
            connection.connect()
            sock = connection.sock
            der = sock.getpeercert(binary_form=True) if isinstance(sock, ssl.SSLSocket) else None
            if peer.fingerprint is not None and (
                der is None or hashlib.sha256(der).hexdigest() != peer.fingerprint
            ):
                raise PeerUnreachable("its certificate does not match the pinned fingerprint")
            payload = None if body is None else json.dumps(body, ensure_ascii=False).encode()
            headers = {"Content-Type": "application/json"} if payload is not None else {}
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            raw = response.read()
        finally:
            connection.close()
    except ssl.SSLError as exc:
        raise PeerUnreachable(f"TLS: {exc.reason or exc}") from None
    except (OSError, http.client.HTTPException) as exc:
        raise PeerUnreachable(f"unreachable: {exc}") from None
    if der is None:
        raise PeerUnreachable("no certificate from the peer")
    certificate = x509.load_der_x509_certificate(der)
    named = node_id_from_certificate(certificate)
    if named != peer.id:
        raise PeerUnreachable(f"answered with a certificate of {named or 'no node'}")
    try:
        document = json.loads(raw) if raw else None
    except ValueError:
        document = None
    return PeerAnswer(response.status, document, certificate, (time.monotonic() - started) * 1000)
