"""The node's signing key (ECDSA P-256): audit checkpoints now, envelopes with federation.

Separate from the TLS keys, so certificates can be renewed without touching
what old signatures were made with.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec


def create_signing_key() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _private(key_pem: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the signing key is not an EC key")
    return key


def signer(key_pem: bytes) -> Callable[[bytes], str]:
    """A function that signs a message and returns the base64 DER signature."""
    key = _private(key_pem)

    def sign(message: bytes) -> str:
        return base64.b64encode(key.sign(message, ec.ECDSA(hashes.SHA256()))).decode("ascii")

    return sign


def public_pem(key_pem: bytes) -> bytes:
    return (
        _private(key_pem)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def verifier(public_key_pem: bytes) -> Callable[[bytes, str], bool]:
    key = serialization.load_pem_public_key(public_key_pem)
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("the verification key is not an EC key")

    def verify(message: bytes, signature: str) -> bool:
        try:
            key.verify(base64.b64decode(signature), message, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            return False
        return True

    return verify
