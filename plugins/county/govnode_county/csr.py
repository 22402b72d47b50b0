"""The parent's certificate signing request, checked when it is handed in.

`api.enroll` checks the CSR again when the operator approves; checking it
here too means a parent learns of a bad CSR at once, not days later after
the operator tried. The rules are the node CA's: a valid self-signature and
an EC P-256/P-384 or RSA (2048 bits and more) key. The subject is ignored:
the node names the office in the certificate itself.
"""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from govnode.hooks import check_csr as ca_would_sign

MAX_CSR_CHARS = 16384  # an RSA-8192 CSR is about 6 KB of PEM


class BadCsr(ValueError):
    """The text is not a CSR the node CA would sign; the message says why."""


def check_csr(text: object) -> str:
    """The CSR's PEM text when the node CA would sign it; BadCsr otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise BadCsr("csr is required: the PEM certificate signing request of the office's key")
    if len(text) > MAX_CSR_CHARS:
        raise BadCsr(f"csr is longer than {MAX_CSR_CHARS} characters")
    try:
        ca_would_sign(text.encode("ascii"))  # the node CA's own rules
    except UnicodeEncodeError:
        raise BadCsr("csr is not a PEM certificate signing request") from None
    except ValueError as exc:
        raise BadCsr(f"csr: {exc}") from None
    return text.strip() + "\n"


def key_sha256(pem: str) -> str:
    """SHA-256 of the request's public key (DER SubjectPublicKeyInfo), hex: what the
    operator reads to the parent on the phone before approving.

    The parent gets the same with `openssl req -in office.csr -pubkey -noout |
    openssl pkey -pubin -outform DER | sha256sum`.
    """
    request = x509.load_pem_x509_csr(pem.encode("ascii"))
    der = request.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()
