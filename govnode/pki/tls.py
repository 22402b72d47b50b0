"""TLS context factories: the agency-facing server (mutual TLS) and federation clients.

The server refuses, during the handshake, every client that does not present a
certificate of this node's CA that is valid now, unrevoked, and meant for
client authentication; the API layer then only reads *which* agency it is
(``identity.agency_code_from_certificate`` on ``peer_certificate(transport)``).

Who checks what, so nobody adds a second, weaker check by accident:

- chain to the node CA, validity period: OpenSSL's own verification;
- revocation: the CRL in the context's ``X509Store`` with ``CRL_CHECK``;
- clientAuth: OpenSSL verifies a server's peers with the ``sslclient``
  purpose by default (``ssl_verify_cert_chain`` sets it on the store context),
  which refuses a certificate whose extendedKeyUsage lacks clientAuth, e.g. a
  server certificate, with an "unsupported certificate" alert.

With ``CRL_CHECK`` on, a CRL past its nextUpdate makes OpenSSL refuse *every*
client ("CRL has expired"): the CRL must be republished well before then
(``ca.crl_next_update`` tells when).

TLS settings follow Mozilla's "intermediate" profile (v5.7): TLS 1.2 and 1.3
(1.3 wins whenever the client has it, OpenSSL prefers the highest version), the
AEAD-only TLS 1.2 cipher list below, TLS 1.3 suites left to OpenSSL (they are
the same three Mozilla lists), the client's cipher order honoured, and the key
exchange groups X25519, prime256v1, secp384r1 (see ``_restrict_groups``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from OpenSSL import SSL, crypto
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IOpenSSLServerConnectionCreator,
)
from twisted.internet.ssl import (
    Certificate,
    KeyPair,
    PrivateCertificate,
    optionsForClientTLS,
    trustRootFromCertificates,
)
from zope.interface import implementer

from govnode.pki.errors import CertificateFileError, PkiError
from govnode.pki.files import read_pem

try:  # private to pyOpenSSL: used for the groups only, and optional (see _restrict_groups)
    from OpenSSL._util import lib as _openssl_lib
except ImportError:  # pragma: no cover
    _openssl_lib = None

MOZILLA_INTERMEDIATE_CIPHERS = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "DHE-RSA-AES128-GCM-SHA256",
        "DHE-RSA-AES256-GCM-SHA384",
        "DHE-RSA-CHACHA20-POLY1305",
    ]
)
"""TLS 1.2 ciphers of Mozilla's intermediate profile v5.7 (forward secret, AEAD only).

The DHE-RSA and ECDHE-RSA entries only matter with an RSA server key; the node's
own certificates are ECDSA, and no DH parameters are loaded, so DHE is never chosen.
"""

TLS_GROUPS = "X25519:prime256v1:secp384r1"
"""Key exchange groups of Mozilla's intermediate profile, in preference order."""

_SESSION_ID_CONTEXT = b"govnode-agency-api"
_SHA256 = hashes.SHA256()

_PrivateKey = (
    ec.EllipticCurvePrivateKey
    | rsa.RSAPrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)


def _restrict_groups(context: SSL.Context) -> bool:
    """Limit key exchange to ``TLS_GROUPS``; ``False`` when this OpenSSL binding cannot.

    pyOpenSSL has no ``set_groups``, and ``set_tmp_ecdh`` accepts one curve only
    (it would drop X25519, the group nearly every client offers first). The
    cryptography bindings still expose ``SSL_CTX_set1_curves_list``, which in
    OpenSSL 1.1.1+ is the very same call as ``SSL_CTX_set1_groups_list`` and
    covers TLS 1.2 ECDHE and TLS 1.3 key shares alike; it is looked up by name
    so a future binding without it degrades to OpenSSL's defaults (X25519,
    P-256, X448, P-521, P-384, then finite-field groups: all sound) instead of
    failing to start. ``tests/pki/test_tls.py`` checks with ``openssl s_client
    -groups`` that the restriction is really in force.
    """
    setter = getattr(_openssl_lib, "SSL_CTX_set1_groups_list", None) or getattr(
        _openssl_lib, "SSL_CTX_set1_curves_list", None
    )
    if setter is None:
        return False
    if setter(context._context, TLS_GROUPS.encode("ascii")) != 1:
        _openssl_lib.ERR_clear_error()
        return False
    return True


@dataclass(frozen=True, slots=True)
class _FileStamp:
    """What identifies one version of a file without reading it."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int


@implementer(IOpenSSLServerConnectionCreator)
class ServerTLS:
    """Server side of the agency API's mutual TLS, reloadable while the node runs.

    Each new connection gets the current ``SSL.Context``; ``reload`` builds a
    complete new context before swapping it in, so established connections
    keep the old one and a bad file never leaves the server half-configured.
    The swap also empties the session cache (it lives in the context), so a
    client revoked by the new CRL cannot resume a session made before.
    """

    def __init__(
        self,
        cert_path: Path,
        key_path: Path,
        ca_path: Path | Sequence[Path],
        crl_path: Path | None,
        require_client_cert: bool = True,
        pins: frozenset[str] = frozenset(),
    ) -> None:
        """`ca_path`: the CA (or, for federation, the peers' CAs) clients must chain to;
        `pins`: SHA-256 fingerprints (hex) of client certificates taken without a CA
        (federation peers pinned by fingerprint)."""
        self._pins = pins
        self._cert_path = cert_path
        self._key_path = key_path
        self._ca_paths = [ca_path] if isinstance(ca_path, Path) else list(ca_path)
        self._crl_path = crl_path
        self._require_client_cert = require_client_cert
        self._stamps = self._stat_files()
        self._context, self._groups_restricted = self._build_context()

    @property
    def groups_restricted(self) -> bool:
        """Whether ``TLS_GROUPS`` is in force (see ``_restrict_groups``)."""
        return self._groups_restricted

    def serverConnectionForTLS(self, tlsProtocol: object) -> SSL.Connection:
        """A connection for one accepted socket, on the context current right now."""
        return SSL.Connection(self._context, None)

    def reload(self) -> None:
        """Re-read every file and swap in a new context.

        Raises ``PkiError`` (a ``CertificateFileError`` naming the path for a
        bad file) and keeps serving with the previous context.
        """
        stamps = self._stat_files()
        self._context, self._groups_restricted = self._build_context()
        self._stamps = stamps

    def reload_if_changed(self) -> bool:
        """Reload when a file's inode, size or times changed; ``True`` when it did.

        Cheap enough to call every two seconds: it only ``stat``s the files.
        Writers replace files with ``files.write_atomic`` (new inode, new
        times), so a revocation is picked up on the next call. A bad file is
        reported once (the ``PkiError`` propagates, the old context stays) and
        retried when the files change again, not on every call.
        """
        stamps = self._stat_files()
        if stamps == self._stamps:
            return False
        self._stamps = stamps
        self._context, self._groups_restricted = self._build_context()
        return True

    def _stat_files(self) -> tuple[_FileStamp | None, ...]:
        return tuple(_stamp(path) for path in self._paths())

    def _paths(self) -> list[Path]:
        paths = [self._cert_path, self._key_path, *self._ca_paths]
        if self._crl_path is not None:
            paths.append(self._crl_path)
        return paths

    def _build_context(self) -> tuple[SSL.Context, bool]:
        """A complete context from the files, or ``PkiError``; never a partial one."""
        chain = _read_certificates(self._cert_path, "server certificate")
        key = _read_private_key(self._key_path, "server private key")
        cas = [ca for path in self._ca_paths for ca in _read_certificates(path, "CA certificate")]
        crls: list[x509.CertificateRevocationList] = []
        if self._crl_path is not None:
            crls = _read_crls(self._crl_path, "CRL")
            _check_crls(crls, cas, self._crl_path, self._ca_paths[0])

        context = SSL.Context(SSL.TLS_METHOD)
        context.set_min_proto_version(SSL.TLS1_2_VERSION)
        context.set_options(
            SSL.OP_NO_COMPRESSION | SSL.OP_NO_TICKET | getattr(SSL, "OP_NO_RENEGOTIATION", 0)
        )
        context.set_cipher_list(MOZILLA_INTERMEDIATE_CIPHERS.encode("ascii"))
        groups_restricted = _restrict_groups(context)

        try:
            context.use_certificate(chain[0])
            for extra in chain[1:]:
                context.add_extra_chain_cert(extra)
            context.use_privatekey(key)
            context.check_privatekey()
        except SSL.Error as exc:
            raise CertificateFileError(
                f"{self._key_path}: server private key does not match {self._cert_path}"
            ) from exc

        context.set_session_id(_SESSION_ID_CONTEXT)
        store = context.get_cert_store()
        if store is None:  # pragma: no cover - OpenSSL always creates one
            raise PkiError("OpenSSL context has no certificate store")
        for ca in cas:
            store.add_cert(crypto.X509.from_cryptography(ca))
            context.add_client_ca(ca)
        for crl in crls:
            store.add_crl(crl)
        if crls:
            store.set_flags(crypto.X509StoreFlags.CRL_CHECK)
        mode = SSL.VERIFY_PEER
        if self._require_client_cert:
            mode |= SSL.VERIFY_FAIL_IF_NO_PEER_CERT
        if self._pins:
            context.set_verify(mode, _verify_or_pinned(self._pins))
        else:
            context.set_verify(mode)
        return context, groups_restricted


def _verify_or_pinned(pins: frozenset[str]) -> Callable[..., bool]:
    """OpenSSL's verdict, except that a client certificate whose SHA-256 is pinned is
    taken whatever its issuer (checked again, with its node name, per request)."""

    def verify(
        _connection: SSL.Connection, cert: crypto.X509, _errno: int, depth: int, ok: int
    ) -> bool:
        if ok:
            return True
        return depth == 0 and cert.to_cryptography().fingerprint(_SHA256).hex() in pins

    return verify


def peer_certificate(transport: object) -> x509.Certificate | None:
    """The verified client certificate of a Twisted TLS transport, if any.

    ``None`` before the handshake has completed, for a client that sent none
    (``require_client_cert=False``), and for transports that are not TLS.
    """
    getter = getattr(transport, "getPeerCertificate", None)
    if getter is None:
        return None
    cert = getter()
    if isinstance(cert, crypto.X509):
        return cert.to_cryptography()
    if isinstance(cert, x509.Certificate):
        return cert
    return None


def client_tls_options(
    ca_pem: bytes, cert_pem: bytes, key_pem: bytes, hostname: str
) -> IOpenSSLClientConnectionCreator:
    """Client side of mutual TLS for federation peers and test clients.

    Trusts only the certificates in ``ca_pem`` (not the system store: a peer
    node is never vouched for by a public CA), checks ``hostname`` (a DNS name
    or IP address) against the server's SAN, and presents ``cert_pem`` +
    ``key_pem``. Twisted's defaults apply otherwise (TLS 1.2 minimum).
    """
    try:
        cas = x509.load_pem_x509_certificates(ca_pem)
        client_cert = x509.load_pem_x509_certificate(cert_pem)
        client_key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise PkiError(f"client TLS material is not valid PEM: {exc}") from exc
    if not isinstance(client_key, _PrivateKey):
        raise PkiError("client key type not supported for TLS")
    trust = trustRootFromCertificates(
        [Certificate.loadPEM(ca.public_bytes(serialization.Encoding.PEM)) for ca in cas]
    )
    private = PrivateCertificate.fromCertificateAndKeyPair(
        Certificate.loadPEM(client_cert.public_bytes(serialization.Encoding.PEM)),
        KeyPair(crypto.PKey.from_cryptography_key(client_key)),
    )
    return optionsForClientTLS(hostname, trustRoot=trust, clientCertificate=private)


def _stamp(path: Path) -> _FileStamp | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return _FileStamp(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _read_certificates(path: Path, what: str) -> list[x509.Certificate]:
    data = read_pem(path, what)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise CertificateFileError(f"{path}: not a valid {what}: {exc}") from exc
    return certs


def _read_private_key(path: Path, what: str) -> _PrivateKey:
    data = read_pem(path, what)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise CertificateFileError(f"{path}: not a valid unencrypted PEM {what}: {exc}") from exc
    if not isinstance(key, _PrivateKey):
        raise CertificateFileError(f"{path}: {what} of an unsupported type")
    return key


def _read_crls(path: Path, what: str) -> list[x509.CertificateRevocationList]:
    """All CRLs in a PEM file: one per CA when ``ca_path`` holds several (CA rollover)."""
    data = read_pem(path, what)
    begin = b"-----BEGIN X509 CRL-----"
    end = b"-----END X509 CRL-----"
    crls = []
    for chunk in data.split(begin)[1:]:
        body, found, _rest = chunk.partition(end)
        if not found:
            raise CertificateFileError(f"{path}: not a valid {what}: unterminated PEM block")
        try:
            crls.append(x509.load_pem_x509_crl(begin + body + end))
        except ValueError as exc:
            raise CertificateFileError(f"{path}: not a valid {what}: {exc}") from exc
    if not crls:
        raise CertificateFileError(f"{path}: expected {what} (BEGIN X509 CRL) in PEM format")
    return crls


def _check_crls(
    crls: Sequence[x509.CertificateRevocationList],
    cas: Sequence[x509.Certificate],
    crl_path: Path,
    ca_path: Path,
) -> None:
    """Refuse CRLs OpenSSL would reject at every handshake, before they replace good ones.

    With ``CRL_CHECK`` a CRL with a bad signature, or a CA without any CRL,
    makes OpenSSL refuse every client of that CA; catching it here keeps the
    previous context serving and names the file to fix.
    """
    covered: set[bytes] = set()
    for crl in crls:
        issuers = [ca for ca in cas if ca.subject == crl.issuer and _signed_by(crl, ca)]
        if not issuers:
            raise CertificateFileError(
                f"{crl_path}: CRL of {crl.issuer.rfc4514_string()} is not signed by "
                f"a CA in {ca_path}"
            )
        covered.update(ca.fingerprint(_SHA256) for ca in issuers)
    for ca in cas:
        if ca.fingerprint(_SHA256) not in covered:
            raise CertificateFileError(
                f"{crl_path}: no CRL for CA {ca.subject.rfc4514_string()}; "
                "all its agencies would be refused"
            )


def _signed_by(crl: x509.CertificateRevocationList, ca: x509.Certificate) -> bool:
    public = ca.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        return False
    return crl.is_signature_valid(public)
