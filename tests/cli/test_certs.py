"""`govnode cert list|renew` and `govnode agency renew`, as a sysadmin runs them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy import text

from govnode.testing.databases import home_engine
from govnode.testing.home import configure
from tests.cli.support import Govnode, certificate, crl_serials, mode


def audit_records(govnode: Govnode, kind: str) -> list[dict[str, Any]]:
    engine = home_engine(govnode.home)  # SQLite or PostgreSQL, as the run has it
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT actor, subject, detail FROM audit WHERE kind = :kind ORDER BY id"),
                {"kind": kind},
            ).all()
    finally:
        engine.dispose()
    return [{"actor": a, "subject": s, "detail": json.loads(d)} for a, s, d in rows]


def enroll(govnode: Govnode, code: str, out: Path, *options: str) -> x509.Certificate:
    result = govnode("agency", "enroll", code, "--out", out, *options)
    assert result.code == 0, result.err
    return certificate(out / "cert.pem")


def san_names(cert: x509.Certificate) -> tuple[list[str], list[str], list[str]]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return (
        san.get_values_for_type(x509.DNSName),
        [str(ip) for ip in san.get_values_for_type(x509.IPAddress)],
        san.get_values_for_type(x509.UniformResourceIdentifier),
    )


# -- cert renew ------------------------------------------------------------------


def test_renew_server_issues_a_new_pair_for_the_configured_names(govnode: Govnode) -> None:
    pki = govnode.home / "pki"
    configure(govnode.home, server_names=["govnode.kb.gov.ir", "localhost", "10.1.2.3"])
    old_cert, old_key = (pki / "server.pem").read_bytes(), (pki / "server.key").read_bytes()
    before = certificate(pki / "server.pem")
    started = datetime.now(UTC)

    result = govnode("cert", "renew", "server", "--days", "90")

    assert result.code == 0, result.err
    cert = certificate(pki / "server.pem")
    assert cert.serial_number != before.serial_number
    assert f"serial {cert.serial_number:x}" in result.out
    assert "renewed the server certificate for govnode.kb.gov.ir, localhost, 10.1.2.3" in (
        result.out
    )
    assert san_names(cert) == (["govnode.kb.gov.ir", "localhost"], ["10.1.2.3"], [])
    cert.verify_directly_issued_by(certificate(pki / "ca.pem"))
    assert cert.not_valid_before_utc <= started < cert.not_valid_after_utc
    assert abs(cert.not_valid_after_utc - started - timedelta(days=90)) < timedelta(minutes=1)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    key = load_pem_private_key((pki / "server.key").read_bytes(), password=None)
    assert key.public_key() == cert.public_key()
    assert mode(pki / "server.key") == 0o600
    # The previous pair, to go back by hand.
    assert (pki / "server.pem.old").read_bytes() == old_cert
    assert (pki / "server.key.old").read_bytes() == old_key
    assert mode(pki / "server.key.old") == 0o600
    assert "systemctl reload govnode" in result.out
    [record] = audit_records(govnode, "certificate.renewed")
    assert record["subject"] == "server"
    assert record["actor"].startswith("operator:")
    assert record["detail"]["serial"] == f"{cert.serial_number:x}"
    assert record["detail"]["sha256"] == cert.fingerprint(hashes.SHA256()).hex()
    assert govnode("audit", "verify").code == 0


def test_renew_node_names_the_node_and_prints_the_fingerprint_for_pinning_peers(
    govnode: Govnode,
) -> None:
    pki = govnode.home / "pki"
    before = certificate(pki / "node.pem")

    result = govnode("cert", "renew", "node")

    assert result.code == 0, result.err
    cert = certificate(pki / "node.pem")
    assert cert.serial_number != before.serial_number
    cert.verify_directly_issued_by(certificate(pki / "ca.pem"))
    assert san_names(cert) == (["localhost"], ["127.0.0.1"], ["urn:govnode:node:kb"])
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "kb"
    fingerprint = cert.fingerprint(hashes.SHA256()).hex()
    assert f"fingerprint = '{fingerprint}'" in result.out
    assert "pin this node by fingerprint" in result.out
    assert mode(pki / "node.key") == 0o600
    assert certificate(pki / "node.pem.old").serial_number == before.serial_number
    # The agency API's certificate is left alone.
    assert not (pki / "server.pem.old").exists()


def test_renew_crl_publishes_a_fresh_crl(govnode: Govnode) -> None:
    crl_path = govnode.home / "pki" / "crl.pem"
    before = x509.load_pem_x509_crl(crl_path.read_bytes())
    result = govnode("cert", "renew", "crl")
    assert result.code == 0, result.err
    after = x509.load_pem_x509_crl(crl_path.read_bytes())
    number = after.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    old = before.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert number > old


def test_renew_refuses_the_ca_and_says_why_in_the_help(govnode: Govnode) -> None:
    with pytest.raises(SystemExit):
        govnode("cert", "renew", "ca")
    assert "invalid choice: 'ca'" in govnode.capsys.readouterr().err
    with pytest.raises(SystemExit):
        govnode("cert", "renew", "--help")
    shown = " ".join(govnode.capsys.readouterr().out.split())  # argparse wraps lines
    assert "The CA is not renewed here: it is valid 10 years" in shown


def test_renew_with_an_unreadable_ca_key_names_the_file(govnode: Govnode) -> None:
    pki = govnode.home / "pki"
    (pki / "ca.key").write_text("garbage\n")
    before = (pki / "server.pem").read_bytes()
    result = govnode("cert", "renew", "server")
    assert result.code == 1
    assert f"{pki / 'ca.key'}: expected the node CA private key in PEM format" in result.err
    assert (pki / "server.pem").read_bytes() == before
    assert not (pki / "server.pem.old").exists()


# -- cert list -------------------------------------------------------------------


def test_list_shows_every_certificate_with_days_left(govnode: Govnode) -> None:
    assert govnode("cert", "renew", "server", "--days", "10").code == 0
    listed = govnode("cert", "list", "--json")
    assert listed.code == 0, listed.err
    rows = {row["certificate"]: row for row in json.loads(listed.out)}
    assert set(rows) == {"ca", "server", "node", "crl"}
    assert rows["server"]["days_left"] == 9
    assert rows["server"]["status"] == "WARN"
    assert rows["server"]["renew"] == "govnode cert renew server"
    assert rows["ca"]["status"] == "ok"
    assert rows["ca"]["days_left"] >= 3649
    table = govnode("cert", "list")
    [server_line] = [line for line in table.out.splitlines() if line.startswith("server")]
    assert server_line.split()[3:5] == ["9", "WARN"]


# -- agency renew ----------------------------------------------------------------


def test_agency_renew_issues_a_new_certificate_and_keeps_the_old_valid(
    govnode: Govnode, tmp_path: Path
) -> None:
    old = enroll(govnode, "edu", tmp_path / "edu", "--days", "20")
    out = tmp_path / "edu-renewed"

    result = govnode("agency", "renew", "edu", "--out", out)

    assert result.code == 0, result.err
    cert = certificate(out / "cert.pem")
    assert cert.serial_number != old.serial_number
    cert.verify_directly_issued_by(certificate(govnode.home / "pki" / "ca.pem"))
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["urn:govnode:agency:edu@kb"]
    assert mode(out / "key.pem") == 0o600
    key = load_pem_private_key((out / "key.pem").read_bytes(), password=None)
    assert key.public_key() == cert.public_key()
    assert (out / "ca.pem").read_bytes() == (govnode.home / "pki" / "ca.pem").read_bytes()
    assert f"stays valid until {old.not_valid_after_utc:%Y-%m-%d}" in result.out
    assert old.serial_number not in crl_serials(govnode.home)
    listed = govnode.agencies()["edu"]
    assert listed["status"] == "active"
    assert listed["certificate_expires"] == f"{cert.not_valid_after_utc:%Y-%m-%d}"
    enrolled = audit_records(govnode, "agency.enrolled")
    assert [r["detail"]["serial"] for r in enrolled] == [
        f"{old.serial_number:x}",
        f"{cert.serial_number:x}",
    ]


def test_agency_renew_with_revoke_old_revokes_only_the_old(
    govnode: Govnode, tmp_path: Path
) -> None:
    old = enroll(govnode, "edu", tmp_path / "edu")
    result = govnode("agency", "renew", "edu", "--out", tmp_path / "new", "--revoke-old")
    assert result.code == 0, result.err
    new = certificate(tmp_path / "new" / "cert.pem")
    assert crl_serials(govnode.home) == {old.serial_number}
    assert f"revoked the previous certificate(s): {old.serial_number:x}" in result.out
    assert govnode.agencies()["edu"]["status"] == "active"
    assert govnode.agencies()["edu"]["certificate_expires"] == (
        f"{new.not_valid_after_utc:%Y-%m-%d}"
    )


def test_agency_renew_from_a_csr_keeps_the_key_with_the_agency(
    govnode: Govnode, tmp_path: Path
) -> None:
    enroll(govnode, "edu", tmp_path / "edu")
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "whatever")]))
        .sign(key, hashes.SHA256())
    )
    csr_path = tmp_path / "edu.csr"
    csr_path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    out = tmp_path / "edu-csr"

    result = govnode("agency", "renew", "edu", "--csr", csr_path, "--out", out, "--days", "30")

    assert result.code == 0, result.err
    cert = certificate(out / "cert.pem")
    assert cert.public_key() == key.public_key()
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "edu@kb"
    assert not (out / "key.pem").exists()
    assert "the key stays with the agency (CSR)" in result.out


def test_agency_renew_refuses_a_bad_csr_before_issuing(govnode: Govnode, tmp_path: Path) -> None:
    enroll(govnode, "edu", tmp_path / "edu")
    csr_path = tmp_path / "bad.csr"
    csr_path.write_text("not a request\n")
    result = govnode("agency", "renew", "edu", "--csr", csr_path, "--out", tmp_path / "x")
    assert result.code == 2
    assert f"--csr {csr_path}: not a PEM certificate signing request" in result.err
    assert len(audit_records(govnode, "agency.enrolled")) == 1
    assert not (tmp_path / "x").exists()


def test_agency_renew_refuses_an_agency_never_enrolled(govnode: Govnode, tmp_path: Path) -> None:
    result = govnode("agency", "renew", "welfare", "--out", tmp_path / "w")
    assert result.code == 1
    assert "agency 'welfare' is not enrolled" in result.err
    assert "govnode agency enroll" in result.err
    assert not (tmp_path / "w").exists()


def test_agency_renew_refuses_a_revoked_agency(govnode: Govnode, tmp_path: Path) -> None:
    enroll(govnode, "edu", tmp_path / "edu")
    assert govnode("agency", "revoke", "edu").code == 0
    result = govnode("agency", "renew", "edu", "--out", tmp_path / "again")
    assert result.code == 1
    assert "agency 'edu' is revoked" in result.err
    assert govnode.agencies()["edu"]["status"] == "suspended"
    assert not (tmp_path / "again").exists()


def test_agency_renew_refuses_to_overwrite_the_agencys_files(
    govnode: Govnode, tmp_path: Path
) -> None:
    enroll(govnode, "edu", tmp_path / "edu")
    result = govnode("agency", "renew", "edu", "--out", tmp_path / "edu")
    assert result.code == 2
    assert f"{tmp_path / 'edu' / 'cert.pem'} exists; refusing to overwrite" in result.err
    assert len(audit_records(govnode, "agency.enrolled")) == 1


def test_renew_refuses_bad_server_names_naming_the_key(govnode: Govnode) -> None:
    pki = govnode.home / "pki"
    before = (pki / "server.pem").read_bytes()
    configure(govnode.home, server_names=["localhost", "bad_name!"])
    result = govnode("cert", "renew", "server")
    assert result.code == 2
    assert "govnode.toml: tls.server_names: 'bad_name!' is not a DNS name" in result.err
    configure(govnode.home, server_names=[])
    result = govnode("cert", "renew", "server")
    assert result.code == 2
    assert "govnode.toml: tls.server_names is empty" in result.err
    assert (pki / "server.pem").read_bytes() == before
