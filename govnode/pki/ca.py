"""The node CA: issue certificates and CRLs as plain values.

Everything here is pure: PEM bytes and an aware UTC ``now`` go in, PEM bytes and
frozen values come out. Reading and writing the files is the caller's job
(``govnode.pki.files``), so the rules below are testable without a disk or a clock.

Keys are ECDSA P-256 (small, fast, and what Mozilla's intermediate profile
recommends for certificates), signatures SHA-256. Private keys are returned as
unencrypted PKCS#8 PEM: the node must read its CA key unattended (no one types a
passphrase into a daemon at boot), so what protects the key is the file mode
0600 (``files.write_private``) and the service account owning the directory.

Every ``not_before`` is set five minutes before ``now``: agency clocks drift,
and a certificate that is "not yet valid" for a minute after enrollment is
refused during the TLS handshake with no useful message for the user.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from govnode.domain.agency import is_agency_code, is_node_id
from govnode.pki.errors import PkiError

CLOCK_SKEW = timedelta(minutes=5)
"""How far back ``not_before`` is set, so slightly slow clocks accept a fresh certificate."""

AGENCY_URI_PREFIX = "urn:govnode:agency:"
"""SAN URI prefix of agency certificates; the rest is the agency address ``code@node``."""

NODE_URI_PREFIX = "urn:govnode:node:"
"""SAN URI prefix of node certificates; the rest is the node id."""

AGENCY_OU = "agency"

_MAX_NAME = 64  # RFC 5280 upper bound for CN, O and OU


@dataclass(frozen=True, slots=True)
class Issued:
    """A freshly issued certificate, its private key, and the facts callers store."""

    cert_pem: bytes
    key_pem: bytes
    serial: int
    fingerprint_sha256: str  # lowercase hex, no colons
    not_before: datetime
    not_after: datetime


_IssuerKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def create_ca(node_id: str, node_name: str, *, now: datetime, valid_days: int = 3650) -> Issued:
    """Create the self-signed CA of node ``node_id``; ``node_name`` (may be Persian) becomes O.

    ``pathlen=0``: the node CA signs end-entity certificates only, never another CA.
    """
    _check_node_id(node_id)
    _check_name("node name", node_name)
    start = _utc(now)
    _check_days(valid_days)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"govnode {node_id} CA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, node_name),
        ]
    )
    public = key.public_key()
    builder = (
        _base_builder(subject, subject, public, start, start + timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
    )
    return _issued(builder.sign(key, hashes.SHA256()), key)


def issue_server_certificate(
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    *,
    node_id: str,
    dns_names: Sequence[str],
    ip_addresses: Sequence[str],
    now: datetime,
    valid_days: int = 397,
) -> Issued:
    """Issue the node's TLS server certificate (serverAuth only).

    CN is ``node_id`` (the first DNS name when ``node_id`` is empty); clients
    check the SAN, which lists every DNS name and IP address given. 397 days is
    the longest lifetime browsers and most TLS stacks still accept.
    """
    ca_cert, ca_key = _load_ca(ca_cert_pem, ca_key_pem)
    start = _utc(now)
    _check_days(valid_days)
    names = _host_names(dns_names, ip_addresses)
    if not names:
        raise PkiError("a server certificate needs at least one DNS name or IP address")
    common_name = node_id or (dns_names[0] if dns_names else "")
    if not common_name:
        raise PkiError("a server certificate needs a node id or a DNS name for its CN")
    _check_name("common name", common_name)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        _leaf_builder(ca_cert, subject, key.public_key(), start, valid_days)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    )
    return _issued(builder.sign(ca_key, hashes.SHA256()), key)


def issue_node_certificate(
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    *,
    node_id: str,
    dns_names: Sequence[str],
    ip_addresses: Sequence[str],
    now: datetime,
    valid_days: int = 397,
) -> Issued:
    """Issue the node certificate that federation uses (serverAuth and clientAuth).

    It names the node in the SAN URI ``urn:govnode:node:<id>``
    (``identity.node_id_from_certificate``), beside the DNS names and IP
    addresses peers reach it at. Separate from the agency API's server
    certificate, which must never pass as a client: the agency port trusts
    agency certificates only.
    """
    _check_node_id(node_id)
    ca_cert, ca_key = _load_ca(ca_cert_pem, ca_key_pem)
    start = _utc(now)
    _check_days(valid_days)
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(NODE_URI_PREFIX + node_id)]
    names += _host_names(dns_names, ip_addresses)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, node_id),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"govnode {node_id}"),
        ]
    )
    usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    builder = (
        _leaf_builder(ca_cert, subject, key.public_key(), start, valid_days)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    )
    return _issued(builder.sign(ca_key, hashes.SHA256()), key)


def _host_names(dns_names: Sequence[str], ip_addresses: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for dns in dns_names:
        try:
            names.append(x509.DNSName(dns))
        except ValueError as exc:  # non-ASCII: must be given as an A-label
            raise PkiError(f"invalid DNS name {dns!r}: {exc}") from exc
    for ip in ip_addresses:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(ip)))
        except ValueError as exc:
            raise PkiError(f"invalid IP address {ip!r}") from exc
    return names


def issue_agency_certificate(
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    *,
    code: str,
    node_id: str,
    now: datetime,
    valid_days: int = 730,
    csr_pem: bytes | None = None,
) -> Issued:
    """Issue the client certificate of agency ``code`` (clientAuth only).

    With ``csr_pem`` the certificate is for the request's key, which stays
    with whoever made it (``Issued.key_pem`` is then empty); the request's
    subject is ignored: the node names the agency itself.

    The identity the node trusts is the SAN URI ``urn:govnode:agency:code@node``
    (``identity.agency_code_from_certificate``); CN repeats it for humans and
    for tools that only show the subject.
    """
    if not is_agency_code(code):
        raise PkiError(f"invalid agency code {code!r}")
    _check_node_id(node_id)
    ca_cert, ca_key = _load_ca(ca_cert_pem, ca_key_pem)
    start = _utc(now)
    _check_days(valid_days)
    address = f"{code}@{node_id}"
    key: ec.EllipticCurvePrivateKey | None = None
    if csr_pem is None:
        key = ec.generate_private_key(ec.SECP256R1())
        public_key: Any = key.public_key()
    else:
        public_key = requested_key(csr_pem)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, address),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, AGENCY_OU),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"govnode {node_id}"),
        ]
    )
    san = x509.SubjectAlternativeName(
        [x509.UniformResourceIdentifier(f"{AGENCY_URI_PREFIX}{address}")]
    )
    builder = (
        _leaf_builder(ca_cert, subject, public_key, start, valid_days)
        .add_extension(san, critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    )
    return _issued(builder.sign(ca_key, hashes.SHA256()), key)


def requested_key(csr_pem: bytes) -> Any:
    """The public key of a certificate signing request, once its signature and key
    are checked (EC P-256/P-384 or RSA of at least 2048 bits)."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError:
        raise PkiError("not a PEM certificate signing request") from None
    if not csr.is_signature_valid:
        raise PkiError("the certificate signing request's signature does not verify")
    key = csr.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in ("secp256r1", "secp384r1"):
            raise PkiError(f"EC key on curve {key.curve.name}; use P-256 or P-384")
    elif isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise PkiError(f"RSA key of {key.key_size} bits; at least 2048 are needed")
    else:
        raise PkiError("the request's key must be EC (P-256, P-384) or RSA")
    return key


def build_crl(
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    revoked: Iterable[tuple[int, datetime]],
    *,
    now: datetime,
    crl_number: int,
    valid_days: int = 30,
) -> bytes:
    """Build the PEM CRL listing ``revoked`` (serial, revocation time) pairs.

    ``crl_number`` must grow with every CRL the CA publishes (RFC 5280 5.2.3);
    the caller keeps the counter. The server verifies clients with CRL checking
    on, so it refuses everyone once ``next_update`` has passed: the node must
    publish a fresh CRL well before that (see ``crl_next_update``).
    """
    ca_cert, ca_key = _load_ca(ca_cert_pem, ca_key_pem)
    start = _utc(now)
    _check_days(valid_days)
    if crl_number < 0 or crl_number.bit_length() > 159:
        raise PkiError(f"CRL number out of range: {crl_number}")
    entries: dict[int, datetime] = {}
    for serial, when in revoked:
        if serial <= 0:
            raise PkiError(f"invalid certificate serial {serial}")
        at = _utc(when)
        entries[serial] = min(at, entries.get(serial, at))
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(start)
        .next_update(start + timedelta(days=valid_days))
        .add_extension(x509.CRLNumber(crl_number), critical=False)
        .add_extension(_authority_key_identifier(ca_cert), critical=False)
    )
    for serial in sorted(entries):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(entries[serial])
            .build()
        )
    crl = builder.sign(ca_key, hashes.SHA256())
    return crl.public_bytes(serialization.Encoding.PEM)


def fingerprint_sha256(cert_pem: bytes) -> str:
    """SHA-256 of the DER certificate, lowercase hex without colons (as the API shows it)."""
    return load_certificate(cert_pem).fingerprint(hashes.SHA256()).hex()


def certificate_not_after(cert_pem: bytes) -> datetime:
    """End of validity of a certificate, aware UTC."""
    return load_certificate(cert_pem).not_valid_after_utc


def crl_next_update(crl_pem: bytes) -> datetime:
    """When a CRL stops being acceptable, aware UTC; the node republishes before then."""
    crl = load_crl(crl_pem)
    next_update = crl.next_update_utc
    if next_update is None:
        raise PkiError("CRL has no nextUpdate")
    return next_update


def load_certificate(cert_pem: bytes) -> x509.Certificate:
    """Parse one PEM certificate (the first one in the data), as ``PkiError`` on garbage."""
    try:
        return x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise PkiError(f"not a PEM certificate: {exc}") from exc


def load_crl(crl_pem: bytes) -> x509.CertificateRevocationList:
    """Parse one PEM CRL, as ``PkiError`` on garbage."""
    try:
        return x509.load_pem_x509_crl(crl_pem)
    except ValueError as exc:
        raise PkiError(f"not a PEM CRL: {exc}") from exc


def _load_ca(ca_cert_pem: bytes, ca_key_pem: bytes) -> tuple[x509.Certificate, _IssuerKey]:
    """Load the CA pair and make sure the key belongs to the certificate.

    A mismatch would produce certificates that no one can verify; better to
    refuse at issuance, with a clear message, than at the agency's first handshake.
    """
    cert = load_certificate(ca_cert_pem)
    try:
        key = serialization.load_pem_private_key(ca_key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise PkiError(f"not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise PkiError("the CA key must be an ECDSA or RSA key")
    if key.public_key() != cert.public_key():
        raise PkiError("the CA key does not belong to the CA certificate")
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise PkiError("the CA certificate is not a CA (basicConstraints CA=true missing)")
    return cert, key


def _leaf_builder(
    ca_cert: x509.Certificate,
    subject: x509.Name,
    public: ec.EllipticCurvePublicKey,
    start: datetime,
    valid_days: int,
) -> x509.CertificateBuilder:
    """Common part of end-entity certificates; never valid past the CA itself."""
    end = min(start + timedelta(days=valid_days), ca_cert.not_valid_after_utc)
    return (
        _base_builder(subject, ca_cert.subject, public, start, end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(_authority_key_identifier(ca_cert), critical=False)
    )


def _base_builder(
    subject: x509.Name,
    issuer: x509.Name,
    public: ec.EllipticCurvePublicKey,
    start: datetime,
    end: datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(_serial())
        .not_valid_before(start - CLOCK_SKEW)
        .not_valid_after(end)
    )


def _authority_key_identifier(ca_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(_issuer_public_key(ca_cert))
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _issuer_public_key(
    ca_cert: x509.Certificate,
) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    public = ca_cert.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise PkiError("the CA key must be an ECDSA or RSA key")
    return public


def _key_usage(
    *, digital_signature: bool = False, key_cert_sign: bool = False, crl_sign: bool = False
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _serial() -> int:
    """A random positive serial of at most 159 bits (fits the 20 octets RFC 5280 allows)."""
    while True:
        serial = x509.random_serial_number()
        if serial > 0:
            return serial


def _issued(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None) -> Issued:
    return Issued(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=b""
        if key is None
        else key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        serial=cert.serial_number,
        fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
    )


def _utc(value: datetime) -> datetime:
    """Aware UTC, whole seconds (X.509 times have no fractions, and values must round-trip)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise PkiError(f"naive datetime {value.isoformat()}: pass an aware UTC time")
    return value.astimezone(UTC).replace(microsecond=0)


def _check_days(valid_days: int) -> None:
    if valid_days <= 0:
        raise PkiError(f"validity must be at least one day, got {valid_days}")


def _check_node_id(node_id: str) -> None:
    if not is_node_id(node_id):
        raise PkiError(f"invalid node id {node_id!r}")


def _check_name(what: str, value: str) -> None:
    if not value.strip():
        raise PkiError(f"{what} is empty")
    if len(value) > _MAX_NAME:
        raise PkiError(f"{what} is longer than {_MAX_NAME} characters")
