"""Certificate → agency identity.

The TLS handshake has already proved that the peer holds a valid, unrevoked
certificate of this node's CA; this module only reads *which* agency it names.
It answers ``None`` rather than guessing whenever the certificate is not
clearly an agency certificate of this node, so callers can refuse with 403.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import crypto

from govnode.domain.agency import CODE_PATTERN, is_node_id
from govnode.pki.ca import AGENCY_URI_PREFIX, NODE_URI_PREFIX


def agency_code_from_certificate(cert: crypto.X509 | x509.Certificate, node_id: str) -> str | None:
    """The agency code of ``cert`` when it names an agency of node ``node_id``, else ``None``.

    The SAN URI ``urn:govnode:agency:code@node`` is authoritative; the CN
    ``code@node`` is read only when the certificate carries no such URI
    (certificates from before the URI was added, or made by hand). Two
    different agency URIs in one certificate are ambiguous and give ``None``.
    """
    if isinstance(cert, crypto.X509):
        cert = cert.to_cryptography()
    try:
        uris = _agency_uris(cert)
    except ValueError:  # malformed or duplicate extensions: not ours to interpret
        return None
    if len(uris) > 1:
        return None
    if uris:
        address = uris[0]
    else:
        common_names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if len(common_names) != 1 or not isinstance(common_names[0].value, str):
            return None
        address = common_names[0].value
    code, at, node = address.rpartition("@")
    if not at or node != node_id or CODE_PATTERN.fullmatch(code) is None:
        return None
    return code


def _agency_uris(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    found = {
        uri.removeprefix(AGENCY_URI_PREFIX)
        for uri in san.get_values_for_type(x509.UniformResourceIdentifier)
        if uri.startswith(AGENCY_URI_PREFIX)
    }
    return sorted(found)


def node_id_from_certificate(cert: crypto.X509 | x509.Certificate) -> str | None:
    """The node a node certificate names (SAN URI ``urn:govnode:node:<id>``), else None.

    Exactly one such URI, a valid node id, and clientAuth and serverAuth both:
    an agency or server certificate never passes for a node.
    """
    if isinstance(cert, crypto.X509):
        cert = cert.to_cryptography()
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        usages = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except (x509.ExtensionNotFound, ValueError):
        return None
    if not {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH} <= usages:
        return None
    nodes = {
        uri.removeprefix(NODE_URI_PREFIX)
        for uri in san.get_values_for_type(x509.UniformResourceIdentifier)
        if uri.startswith(NODE_URI_PREFIX)
    }
    if len(nodes) != 1:
        return None
    (node,) = nodes
    return node if is_node_id(node) else None
