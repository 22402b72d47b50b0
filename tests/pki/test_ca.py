"""The node CA: what goes into each certificate and CRL, checked field by field.

Agencies' TLS stacks, ``openssl`` and cryptography's RFC 5280 verifier all read
these certificates; a wrong extension shows up there as a refused connection,
so the tests pin every extension and cross-check with those verifiers.
"""

from __future__ import annotations

import ipaddress
import subprocess
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store
from OpenSSL import crypto

from govnode.pki import ca
from govnode.pki.errors import PkiError
from govnode.pki.identity import agency_code_from_certificate, node_id_from_certificate

NODE = "kb"
NODE_NAME = "استانداری کهگیلویه و بویراحمد"
NOW = datetime(2026, 3, 21, 8, 30, 15, 123456, tzinfo=UTC)
NOW_S = NOW.replace(microsecond=0)


@pytest.fixture(scope="module")
def authority() -> ca.Issued:
    return ca.create_ca(NODE, NODE_NAME, now=NOW)


@pytest.fixture(scope="module")
def server(authority: ca.Issued) -> ca.Issued:
    return ca.issue_server_certificate(
        authority.cert_pem,
        authority.key_pem,
        node_id=NODE,
        dns_names=["gov.kb.example", "localhost"],
        ip_addresses=["127.0.0.1", "::1"],
        now=NOW,
    )


@pytest.fixture(scope="module")
def agency(authority: ca.Issued) -> ca.Issued:
    return ca.issue_agency_certificate(
        authority.cert_pem, authority.key_pem, code="edu-dena", node_id=NODE, now=NOW
    )


def _cert(issued: ca.Issued) -> x509.Certificate:
    return x509.load_pem_x509_certificate(issued.cert_pem)


_E = TypeVar("_E", bound=x509.ExtensionType)


def _ext(cert: x509.Certificate, kind: type[_E]) -> x509.Extension[_E]:
    return cert.extensions.get_extension_for_class(kind)


def _key_usage(**set_bits: bool) -> x509.KeyUsage:
    bits = dict.fromkeys(
        (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    bits.update(set_bits)
    return x509.KeyUsage(**bits)


# --- the CA ------------------------------------------------------------------


def test_ca_subject_names_the_node_and_keeps_the_persian_name(authority: ca.Issued) -> None:
    cert = _cert(authority)
    assert cert.subject == x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "govnode kb CA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, NODE_NAME),
        ]
    )
    assert cert.issuer == cert.subject


def test_ca_extensions_are_exactly_those_of_a_leaf_only_ca(authority: ca.Issued) -> None:
    cert = _cert(authority)
    constraints = _ext(cert, x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value == x509.BasicConstraints(ca=True, path_length=0)
    usage = _ext(cert, x509.KeyUsage)
    assert usage.critical
    assert usage.value == _key_usage(key_cert_sign=True, crl_sign=True)
    ski = _ext(cert, x509.SubjectKeyIdentifier)
    assert not ski.critical
    assert ski.value == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    assert {type(e.value) for e in cert.extensions} == {
        x509.BasicConstraints,
        x509.KeyUsage,
        x509.SubjectKeyIdentifier,
        x509.AuthorityKeyIdentifier,
    }


def test_ca_key_signature_serial_and_validity(authority: ca.Issued) -> None:
    cert = _cert(authority)
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert isinstance(public.curve, ec.SECP256R1)
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    assert cert.version is x509.Version.v3
    assert 0 < cert.serial_number < 2**159
    assert authority.serial == cert.serial_number
    assert authority.not_before == cert.not_valid_before_utc == NOW_S - timedelta(minutes=5)
    assert authority.not_after == cert.not_valid_after_utc == NOW_S + timedelta(days=3650)
    cert.verify_directly_issued_by(cert)


def test_serials_are_random(authority: ca.Issued) -> None:
    serials = {ca.create_ca(NODE, NODE_NAME, now=NOW).serial for _ in range(8)}
    assert len(serials) == 8
    assert max(s.bit_length() for s in serials) > 150


def test_private_key_is_unencrypted_pkcs8_and_matches(authority: ca.Issued) -> None:
    assert authority.key_pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    key = serialization.load_pem_private_key(authority.key_pem, password=None)
    assert key.public_key() == _cert(authority).public_key()


# --- the server certificate --------------------------------------------------


def test_server_certificate_fields(authority: ca.Issued, server: ca.Issued) -> None:
    cert = _cert(server)
    assert cert.subject == x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NODE)])
    assert cert.issuer == _cert(authority).subject
    san = _ext(cert, x509.SubjectAlternativeName)
    assert not san.critical
    assert list(san.value) == [
        x509.DNSName("gov.kb.example"),
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    assert list(_ext(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    _check_end_entity(cert, _cert(authority))
    assert server.not_after == NOW_S + timedelta(days=397)


def test_server_certificate_cn_falls_back_to_the_first_dns_name(authority: ca.Issued) -> None:
    issued = ca.issue_server_certificate(
        authority.cert_pem,
        authority.key_pem,
        node_id="",
        dns_names=["gov.kb.example"],
        ip_addresses=[],
        now=NOW,
    )
    names = _cert(issued).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert [n.value for n in names] == ["gov.kb.example"]


def test_server_certificate_passes_an_rfc5280_server_verifier(
    authority: ca.Issued, server: ca.Issued
) -> None:
    verifier = (
        PolicyBuilder()
        .store(Store([_cert(authority)]))
        .time(NOW + timedelta(hours=1))
        .build_server_verifier(x509.DNSName("gov.kb.example"))
    )
    chain = verifier.verify(_cert(server), [])
    assert chain[-1] == _cert(authority)


@pytest.mark.parametrize(
    ("dns_names", "ip_addresses", "message"),
    [
        ([], [], "at least one DNS name or IP address"),
        (["gov.kb.example"], ["300.1.1.1"], "invalid IP address"),
    ],
)
def test_server_certificate_refuses_bad_names(
    authority: ca.Issued, dns_names: list[str], ip_addresses: list[str], message: str
) -> None:
    with pytest.raises(PkiError, match=message):
        ca.issue_server_certificate(
            authority.cert_pem,
            authority.key_pem,
            node_id=NODE,
            dns_names=dns_names,
            ip_addresses=ip_addresses,
            now=NOW,
        )


# --- agency certificates -----------------------------------------------------


def test_agency_certificate_fields(authority: ca.Issued, agency: ca.Issued) -> None:
    cert = _cert(agency)
    assert cert.subject == x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "edu-dena@kb"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "agency"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "govnode kb"),
        ]
    )
    san = _ext(cert, x509.SubjectAlternativeName)
    assert list(san.value) == [x509.UniformResourceIdentifier("urn:govnode:agency:edu-dena@kb")]
    assert list(_ext(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    _check_end_entity(cert, _cert(authority))
    assert agency.not_before == NOW_S - timedelta(minutes=5)
    assert agency.not_after == NOW_S + timedelta(days=730)


def test_agency_certificate_passes_an_rfc5280_client_verifier(
    authority: ca.Issued, agency: ca.Issued
) -> None:
    verifier = (
        PolicyBuilder()
        .store(Store([_cert(authority)]))
        .time(NOW + timedelta(hours=1))
        .build_client_verifier()
    )
    verified = verifier.verify(_cert(agency), [])
    assert verified.chain[-1] == _cert(authority)


def test_agency_certificate_never_outlives_the_ca() -> None:
    short = ca.create_ca(NODE, NODE_NAME, now=NOW, valid_days=100)
    issued = ca.issue_agency_certificate(
        short.cert_pem, short.key_pem, code="edu", node_id=NODE, now=NOW
    )
    assert issued.not_after == short.not_after


@pytest.mark.parametrize("code", ["", "EDU", "edu_dena", "-edu", "edu@kb", "x" * 33])
def test_agency_certificate_refuses_an_invalid_code(authority: ca.Issued, code: str) -> None:
    with pytest.raises(PkiError, match="invalid agency code"):
        ca.issue_agency_certificate(
            authority.cert_pem, authority.key_pem, code=code, node_id=NODE, now=NOW
        )


def _check_end_entity(cert: x509.Certificate, issuer: x509.Certificate) -> None:
    constraints = _ext(cert, x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value == x509.BasicConstraints(ca=False, path_length=None)
    usage = _ext(cert, x509.KeyUsage)
    assert usage.critical
    assert usage.value == _key_usage(digital_signature=True)
    aki = _ext(cert, x509.AuthorityKeyIdentifier).value
    assert isinstance(aki, x509.AuthorityKeyIdentifier)
    assert aki.key_identifier == _ext(issuer, x509.SubjectKeyIdentifier).value.digest
    ski = _ext(cert, x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    cert.verify_directly_issued_by(issuer)


# --- refusals that protect the CA --------------------------------------------


def test_naive_now_is_refused() -> None:
    with pytest.raises(PkiError, match="naive datetime"):
        ca.create_ca(NODE, NODE_NAME, now=datetime(2026, 3, 21))


def test_non_utc_now_is_converted() -> None:
    tehran = timezone(timedelta(hours=3, minutes=30))
    issued = ca.create_ca(NODE, NODE_NAME, now=NOW.astimezone(tehran))
    assert issued.not_before == NOW_S - timedelta(minutes=5)


def test_a_key_that_is_not_the_cas_is_refused(authority: ca.Issued, agency: ca.Issued) -> None:
    with pytest.raises(PkiError, match="does not belong to the CA certificate"):
        ca.issue_agency_certificate(
            authority.cert_pem, agency.key_pem, code="edu", node_id=NODE, now=NOW
        )


def test_a_leaf_certificate_cannot_act_as_ca(agency: ca.Issued) -> None:
    with pytest.raises(PkiError, match="not a CA"):
        ca.issue_agency_certificate(
            agency.cert_pem, agency.key_pem, code="edu", node_id=NODE, now=NOW
        )


def test_garbage_pem_is_a_pki_error() -> None:
    with pytest.raises(PkiError, match="not a PEM certificate"):
        ca.fingerprint_sha256(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")


# --- helpers -----------------------------------------------------------------


def test_fingerprint_matches_openssl(agency: ca.Issued) -> None:
    done = subprocess.run(
        ["openssl", "x509", "-noout", "-fingerprint", "-sha256"],
        input=agency.cert_pem,
        capture_output=True,
        check=True,
        timeout=10,
    )
    from_openssl = done.stdout.decode().strip().split("=", 1)[1].replace(":", "").lower()
    assert ca.fingerprint_sha256(agency.cert_pem) == from_openssl == agency.fingerprint_sha256
    assert len(from_openssl) == 64


def test_certificate_not_after(agency: ca.Issued) -> None:
    assert ca.certificate_not_after(agency.cert_pem) == agency.not_after


# --- CRL ---------------------------------------------------------------------


def test_crl_lists_the_revoked_serials(authority: ca.Issued, agency: ca.Issued) -> None:
    revoked_at = NOW - timedelta(hours=2)
    pem = ca.build_crl(
        authority.cert_pem,
        authority.key_pem,
        [(agency.serial, revoked_at), (12345, NOW), (agency.serial, NOW)],
        now=NOW,
        crl_number=7,
    )
    crl = x509.load_pem_x509_crl(pem)
    public = _cert(authority).public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert crl.is_signature_valid(public)
    assert crl.issuer == _cert(authority).subject
    assert crl.last_update_utc == NOW_S
    assert crl.next_update_utc == NOW_S + timedelta(days=30)
    assert ca.crl_next_update(pem) == NOW_S + timedelta(days=30)
    entry = crl.get_revoked_certificate_by_serial_number(agency.serial)
    assert entry is not None
    assert entry.revocation_date_utc == revoked_at.replace(microsecond=0)  # earliest kept
    assert sorted(r.serial_number for r in crl) == sorted([agency.serial, 12345])
    number = crl.extensions.get_extension_for_class(x509.CRLNumber)
    assert number.value.crl_number == 7
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = _ext(_cert(authority), x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest


def test_crl_is_accepted_by_openssl_verify(
    tmp_path: Path, authority: ca.Issued, agency: ca.Issued, server: ca.Issued
) -> None:
    """``openssl verify -crl_check`` says revoked for the listed serial only."""
    folder = tmp_path
    pem = ca.build_crl(
        authority.cert_pem,
        authority.key_pem,
        [(agency.serial, NOW)],
        now=NOW,
        crl_number=2,
    )
    (folder / "ca.pem").write_bytes(authority.cert_pem)
    (folder / "crl.pem").write_bytes(pem)
    (folder / "agency.pem").write_bytes(agency.cert_pem)
    (folder / "server.pem").write_bytes(server.cert_pem)

    def verify(name: str, purpose: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                "openssl", "verify", "-CAfile", str(folder / "ca.pem"),
                "-CRLfile", str(folder / "crl.pem"), "-crl_check",
                "-purpose", purpose, "-attime", str(int(NOW.timestamp()) + 3600),
                str(folder / name),
            ],
            capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip

    revoked = verify("agency.pem", "sslclient")
    assert revoked.returncode != 0
    assert "certificate revoked" in revoked.stdout + revoked.stderr
    fine = verify("server.pem", "sslserver")
    assert fine.returncode == 0, fine.stdout + fine.stderr


def test_crl_number_must_not_be_negative(authority: ca.Issued) -> None:
    with pytest.raises(PkiError, match="CRL number"):
        ca.build_crl(authority.cert_pem, authority.key_pem, [], now=NOW, crl_number=-1)


# --- identity ----------------------------------------------------------------


def test_identity_from_the_san_uri(agency: ca.Issued) -> None:
    cert = _cert(agency)
    assert agency_code_from_certificate(cert, NODE) == "edu-dena"
    assert agency_code_from_certificate(crypto.X509.from_cryptography(cert), NODE) == "edu-dena"


def test_identity_of_another_node_is_none(agency: ca.Issued) -> None:
    assert agency_code_from_certificate(_cert(agency), "center") is None


def test_identity_of_a_server_certificate_is_none(server: ca.Issued) -> None:
    assert agency_code_from_certificate(_cert(server), NODE) is None


def _hand_made(subject_cn: str, uris: list[str], authority: ca.Issued) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    ca_key = serialization.load_pem_private_key(authority.key_pem, password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]))
        .issuer_name(_cert(authority).subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=1))
    )
    if uris:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in uris]),
            critical=False,
        )
    return builder.sign(ca_key, hashes.SHA256())


@pytest.mark.parametrize(
    ("cn", "uris", "expected"),
    [
        ("health@kb", [], "health"),  # no URI: the CN is read
        ("health@kb", ["urn:govnode:agency:edu@kb"], "edu"),  # the URI wins over the CN
        ("edu@kb", ["https://example.org/"], "edu"),  # foreign URIs are ignored
        ("edu@kb", ["urn:govnode:agency:edu@kb", "urn:govnode:agency:tax@kb"], None),
        ("EDU@kb", [], None),
        ("edu", [], None),
        ("edu@kb@kb", [], None),
        ("@kb", [], None),
    ],
)
def test_identity_rules(
    authority: ca.Issued, cn: str, uris: list[str], expected: str | None
) -> None:
    assert agency_code_from_certificate(_hand_made(cn, uris, authority), NODE) == expected


def test_node_certificate_names_the_node_for_both_ends_of_federation(
    authority: ca.Issued, server: ca.Issued, agency: ca.Issued
) -> None:
    node = ca.issue_node_certificate(
        authority.cert_pem,
        authority.key_pem,
        node_id=NODE,
        dns_names=["gov.kb.example"],
        ip_addresses=["127.0.0.1"],
        now=NOW,
    )
    cert = _cert(node)
    san = _ext(cert, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["urn:govnode:node:kb"]
    assert san.get_values_for_type(x509.DNSName) == ["gov.kb.example"]
    assert list(_ext(cert, x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.CLIENT_AUTH,
    ]
    _check_end_entity(cert, _cert(authority))
    assert node_id_from_certificate(cert) == NODE
    # Neither the agency API's server certificate nor an agency's passes for a node.
    assert node_id_from_certificate(_cert(server)) is None
    assert node_id_from_certificate(_cert(agency)) is None
    assert agency_code_from_certificate(cert, NODE) is None


def test_a_node_certificate_needs_a_valid_node_id(authority: ca.Issued) -> None:
    with pytest.raises(PkiError):
        ca.issue_node_certificate(
            authority.cert_pem,
            authority.key_pem,
            node_id="KB!",
            dns_names=[],
            ip_addresses=["127.0.0.1"],
            now=NOW,
        )
