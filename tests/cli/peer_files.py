"""What another node's `govnode peer export` hands over: its node CA and public signing key."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from govnode.pki import ca, signing
from govnode.pki.files import write_atomic


def peer_files(folder: Path, node_id: str) -> tuple[Path, Path]:
    """`<id>-ca.pem` and `<id>-signing.pem` of a made-up node `node_id`, in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    authority = ca.create_ca(node_id, f"node {node_id}", now=datetime.now(UTC))
    ca_path, key_path = folder / f"{node_id}-ca.pem", folder / f"{node_id}-signing.pem"
    write_atomic(ca_path, authority.cert_pem)
    write_atomic(key_path, signing.public_pem(signing.create_signing_key()))
    return ca_path, key_path
