"""`govnode init`: a complete node home, or nothing at all."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from govnode.config import CONFIG_NAME, load_config
from govnode.pki.identity import node_id_from_certificate
from govnode.store.database import make_engine
from govnode.store.migrate import current_revision, head_revision
from govnode.testing.databases import fresh_database_url
from tests.cli.support import NODE_NAME, certificate, crl, mode, run, snapshot

DNS_NAMES = ["govnode.kb.gov.ir", "localhost"]
IP_ADDRESSES = ["10.20.0.5", "::1"]


def init_argv(home: Path, *extra: str | Path) -> list[str | Path]:
    return ["--home", home, "init", "--node", "kb", "--name", NODE_NAME, *extra]


def private_key_matches(key_path: Path, cert: x509.Certificate) -> bool:
    return load_pem_private_key(key_path.read_bytes(), password=None).public_key() == (
        cert.public_key()
    )


def test_init_creates_config_pki_and_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    password_file = tmp_path / "ldap-password"
    password_file.write_text("service-secret\n")
    home = tmp_path / "kb"
    names = [arg for name in DNS_NAMES for arg in ("--dns", name)]
    names += [arg for address in IP_ADDRESSES for arg in ("--ip", address)]
    started = datetime.now(UTC)

    result = run(capsys, *init_argv(home, *names, "--ldap-password-file", password_file))

    assert result.code == 0, result.err
    assert result.err == ""
    assert f"node kb created in {home}" in result.out
    assert str(home / "pki" / "ca.pem") in result.out
    assert "put the LDAP" not in result.out  # the password was given

    config = load_config(home / CONFIG_NAME)
    assert config.node.id == "kb"
    assert config.node.name == NODE_NAME
    assert config.tls.server_names == (*DNS_NAMES, *IP_ADDRESSES)
    assert config.ldap.bind_password == "service-secret"

    # The node CA: self-signed ECDSA P-256, a CA for end entities only.
    ca = certificate(home / "pki" / "ca.pem")
    public = ca.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert isinstance(public.curve, ec.SECP256R1)
    assert isinstance(ca.signature_hash_algorithm, hashes.SHA256)
    assert ca.issuer == ca.subject
    ca.verify_directly_issued_by(ca)
    assert ca.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == NODE_NAME
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca
    assert constraints.value.path_length == 0
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.key_cert_sign
    assert usage.value.crl_sign
    assert not usage.value.digital_signature
    ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert ca.not_valid_before_utc <= started <= ca.not_valid_after_utc

    # The server certificate: issued by that CA, for exactly the names asked for.
    server = certificate(home / "pki" / "server.pem")
    server.verify_directly_issued_by(ca)
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == DNS_NAMES
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == IP_ADDRESSES
    eku = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca

    # Private material is the service account's alone.
    assert private_key_matches(home / "pki" / "ca.key", ca)
    assert private_key_matches(home / "pki" / "server.key", server)
    # The node certificate: names the node, for both ends of federation.
    node = certificate(home / "pki" / "node.pem")
    node.verify_directly_issued_by(ca)
    assert node_id_from_certificate(node) == "kb"
    assert private_key_matches(home / "pki" / "node.key", node)
    for secret in ("pki/ca.key", "pki/server.key", "pki/node.key", "secrets/ldap-bind-password"):
        assert mode(home / secret) == 0o600, secret
    assert mode(home / "pki") == 0o700

    # An empty CRL signed by the CA, valid now.
    revocations = crl(home)
    assert revocations.is_signature_valid(public)
    assert len(revocations) == 0
    next_update = revocations.next_update_utc
    assert next_update is not None
    assert next_update > started

    # The database, created through the migrations.
    assert (home / "data" / "govnode.db").is_file()
    engine = make_engine(config.database.url)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()

    # No staging folder, and the password file given was copied, not moved.
    assert sorted(path.name for path in tmp_path.iterdir()) == ["kb", "ldap-password"]


def test_init_with_defaults_names_localhost_and_asks_for_the_ldap_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "kb"
    result = run(capsys, *init_argv(home))
    assert result.code == 0, result.err
    password_file = home / "secrets" / "ldap-bind-password"
    assert f"put the LDAP service account's password into {password_file}" in result.out
    san = certificate(home / "pki" / "server.pem").extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert san.value.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.value.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    # Until the password is there, commands that bind to LDAP say which key to fix.
    check = run(capsys, "--home", home, "check")
    assert check.code == 2
    assert "ldap.bind_password_file" in check.err
    assert str(password_file) in check.err


def test_init_fills_an_existing_empty_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A package may create /etc/govnode empty, before the sysadmin runs init."""
    home = tmp_path / "govnode"
    home.mkdir()
    result = run(capsys, *init_argv(home))
    assert result.code == 0, result.err
    assert (home / CONFIG_NAME).is_file()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["govnode"]


def test_second_init_refuses_and_leaves_the_home_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "kb"
    assert run(capsys, *init_argv(home)).code == 0
    before = snapshot(home)

    again = run(capsys, "--home", home, "init", "--node", "yz", "--name", "another node")

    assert again.code == 2
    assert str(home) in again.err
    assert "refusing to overwrite" in again.err
    assert again.out == ""
    assert snapshot(home) == before
    assert [path.name for path in tmp_path.iterdir()] == ["kb"]


def test_init_refuses_a_home_that_is_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "kb"
    home.write_text("not a folder")
    result = run(capsys, *init_argv(home))
    assert result.code == 2
    assert str(home) in result.err
    assert "not a folder" in result.err
    assert home.read_text() == "not a folder"

    below = run(capsys, *init_argv(home / "inside"))
    assert below.code == 2
    assert str(home / "inside") in below.err
    assert [path.name for path in tmp_path.iterdir()] == ["kb"]


@pytest.mark.parametrize(
    ("options", "named"),
    [
        pytest.param(["--node", "KB!"], ["--node", "'KB!'"], id="node-id"),
        pytest.param(["--name", ""], ["--name", "empty"], id="empty-name"),
        pytest.param(["--name", "ن" * 65], ["--name", "64"], id="long-name"),
        pytest.param(["--dns", "bücher.de"], ["--dns", "bücher.de", "xn--"], id="unicode-dns"),
        pytest.param(["--dns", "10.0.0.1"], ["--dns", "--ip"], id="ip-as-dns"),
        pytest.param(["--ip", "999.1.1.1"], ["--ip", "999.1.1.1"], id="bad-ip"),
        pytest.param(["--api-listen", "everywhere"], ["--api-listen", "host:port"], id="api"),
        pytest.param(["--admin-listen", "127.0.0.1:99999"], ["--admin-listen"], id="admin"),
        pytest.param(["--ldap-url", "http://ldap"], ["--ldap-url", "ldap://"], id="ldap-url"),
        pytest.param(
            ["--database-url", "mysql://govnode:pw-hidden@db/govnode"],
            ["--database-url", "mysql://govnode:***@db/govnode"],
            id="database-url",
        ),
        pytest.param(["--name", "kb\udcff"], [CONFIG_NAME], id="name-not-utf8"),
        pytest.param(
            ["--ldap-password-file", "/nonexistent/password"],
            ["--ldap-password-file", "/nonexistent/password"],
            id="password-file",
        ),
    ],
)
def test_init_refuses_bad_options_and_leaves_nothing_behind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], named: list[str]
) -> None:
    home = tmp_path / "kb"
    result = run(capsys, *init_argv(home, *options))
    assert result.code == 2
    assert result.err.startswith("govnode: ")
    assert result.err.count("\n") == 1, "one message"
    for fragment in named:
        assert fragment in result.err
    assert ".init-" not in result.err, "the message names the option, not a staging folder"
    assert list(tmp_path.iterdir()) == [], "no home and no staging folder"


def test_init_uses_govnode_home_when_no_home_is_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "from-env"
    monkeypatch.setenv("GOVNODE_HOME", str(home))
    result = run(capsys, "init", "--node", "kb", "--name", NODE_NAME)
    assert result.code == 0, result.err
    assert f"created in {home}" in result.out
    assert load_config(home / CONFIG_NAME, read_secrets=False).node.id == "kb"


def test_init_creates_the_schema_in_the_database_it_is_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = fresh_database_url(tmp_path, "given.db")  # a new PostgreSQL database in that run
    home = tmp_path / "kb"
    result = run(capsys, *init_argv(home, "--database-url", url))
    assert result.code == 0, result.err
    assert load_config(home / CONFIG_NAME, read_secrets=False).database.url == url
    assert not (home / "data" / "govnode.db").exists()
    engine = make_engine(url)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()
