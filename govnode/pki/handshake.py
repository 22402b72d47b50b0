"""Counting refused TLS handshakes by reason, for `govnode_tls_handshake_failures`.

An agency that cannot connect never reaches the API, so nothing else records
it: this wraps Twisted's TLS protocol and, when a handshake ends in an OpenSSL
error, asks the connection why (OpenSSL's verify result of the client
certificate) before the connection is gone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from OpenSSL import SSL
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.python.failure import Failure

try:  # private to pyOpenSSL (as in pki/tls.py): without it every refusal is "other"
    from OpenSSL._util import lib as _openssl_lib
except ImportError:  # pragma: no cover
    _openssl_lib = None

REASONS = ("no_certificate", "unknown_ca", "expired", "revoked", "other")

_BY_VERIFY_RESULT = {
    2: "unknown_ca",  # X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT
    18: "unknown_ca",  # X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT
    19: "unknown_ca",  # X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN
    20: "unknown_ca",  # X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
    21: "unknown_ca",  # X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE
    7: "unknown_ca",  # X509_V_ERR_CERT_SIGNATURE_FAILURE: not signed by the CA it names
    9: "expired",  # X509_V_ERR_CERT_NOT_YET_VALID: outside its validity, like expired
    10: "expired",  # X509_V_ERR_CERT_HAS_EXPIRED
    23: "revoked",  # X509_V_ERR_CERT_REVOKED
}


def refusal_reason(connection: SSL.Connection, error: SSL.Error) -> str:
    """One of `REASONS` for a handshake that failed with `error`."""
    words = str(error).lower()
    if "did not return a certificate" in words or "certificate required" in words:
        return "no_certificate"
    if _openssl_lib is not None:
        result = _openssl_lib.SSL_get_verify_result(connection._ssl)
        if result:
            return _BY_VERIFY_RESULT.get(int(result), "other")
    return "other"


class _CountingTLSProtocol(TLSMemoryBIOProtocol):
    factory: CountingTLSFactory
    _counted = False

    def _tlsShutdownFinished(self, reason: Failure | None) -> None:
        if (
            reason is not None
            and not self._handshakeDone
            and not self._counted
            and isinstance(reason.value, SSL.Error)
        ):
            self._counted = True
            self.factory.count(refusal_reason(self._tlsConnection, reason.value))
        super()._tlsShutdownFinished(reason)


class CountingTLSFactory(TLSMemoryBIOFactory):
    """`TLSMemoryBIOFactory` that calls `count(reason)` for each refused handshake."""

    protocol = _CountingTLSProtocol

    def __init__(
        self,
        context_factory: Any,
        is_client: bool,
        wrapped_factory: Any,
        *,
        count: Callable[[str], None],
    ) -> None:
        super().__init__(context_factory, is_client, wrapped_factory)
        self.count = count
