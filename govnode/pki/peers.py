"""The configured peers as trust: the CAs that may vouch for each, and their signing keys.

Beside the configured keys, the keys of nodes behind a peer, as that peer's
directory vouches for them (`domain.peer_directory`): configured keys win.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from twisted.logger import Logger

from govnode.config.model import PeerSection
from govnode.domain.envelope import Verifier
from govnode.pki import signing
from govnode.pki.identity import node_id_from_certificate


class Peers:
    """The configured peers, the CAs that may vouch for each, and their signing keys."""

    _log = Logger()

    def __init__(self, peers: Sequence[PeerSection]) -> None:
        self._peers = {peer.id: peer for peer in peers}
        self._cas: dict[str, list[x509.Certificate]] = {}
        self._verifiers: dict[str, Verifier] = {}
        self._learned: dict[str, Verifier] = {}
        self._configured_keys: dict[str, str] = {}  # PEM, served to the other peers
        for peer in peers:
            if peer.ca_cert is not None:
                self._cas[peer.id] = x509.load_pem_x509_certificates(peer.ca_cert.read_bytes())
            try:
                pem = peer.signing_key.read_bytes()
                self._verifiers[peer.id] = signing.verifier(pem)
                self._configured_keys[peer.id] = pem.decode()
            except (OSError, ValueError) as exc:
                # Its envelopes and receipts are refused until the key is fixed.
                self._log.error(
                    "peer {peer}: cannot use signing key {path}: {error}",
                    peer=peer.id,
                    path=str(peer.signing_key),
                    error=str(exc),
                )

    def reload_cas(self) -> None:
        """Re-read the peers' CA files (SIGHUP), all or none: ValueError or OSError
        naming the file keeps the CAs in use."""
        cas: dict[str, list[x509.Certificate]] = {}
        for peer in self._peers.values():
            if peer.ca_cert is None:
                continue
            try:
                cas[peer.id] = x509.load_pem_x509_certificates(peer.ca_cert.read_bytes())
            except (OSError, ValueError) as exc:
                raise ValueError(f"{peer.ca_cert}: peer {peer.id}'s CA: {exc}") from exc
        self._cas = cas

    def verifier(self, node: str) -> Verifier | None:
        """What checks the signatures of `node`, if we have its key: a peer's
        from the configuration, another node's as a peer's directory served it."""
        return self._verifiers.get(node) or self._learned.get(node)

    def learn(self, keys: dict[str, str]) -> None:
        """Use these served keys (PEM by node) for nodes that are not configured peers."""
        learned: dict[str, Verifier] = {}
        for node, pem in keys.items():
            if node in self._peers:
                continue
            try:
                learned[node] = signing.verifier(pem.encode())
            except ValueError as exc:
                self._log.error("node {node}: served key unusable: {error}", node=node, error=exc)
        self._learned = learned

    def configured_keys(self) -> dict[str, str]:
        """The configured peers' usable public keys as PEM (served to the other peers)."""
        return dict(self._configured_keys)

    @property
    def ca_files(self) -> list[PeerSection]:
        return [peer for peer in self._peers.values() if peer.ca_cert is not None]

    @property
    def pins(self) -> frozenset[str]:
        """The certificate fingerprints of the peers pinned instead of trusted by CA."""
        return frozenset(p.fingerprint for p in self._peers.values() if p.fingerprint is not None)

    def identify(self, cert: x509.Certificate | None) -> PeerSection | None:
        """The peer `cert` belongs to, or None (not a node certificate, not a peer,
        or issued by another peer's CA)."""
        if cert is None:
            return None
        node = node_id_from_certificate(cert)
        peer = self._peers.get(node) if node is not None else None
        if peer is None:
            return None
        if peer.fingerprint is not None:  # pinned: this very certificate, whoever issued it
            return peer if cert.fingerprint(hashes.SHA256()).hex() == peer.fingerprint else None
        for ca in self._cas.get(peer.id, ()):
            try:
                cert.verify_directly_issued_by(ca)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return peer
        return None
