"""`govnode agency ...`, `check`, `db` and `serve` on a node home, as a sysadmin runs them.

Every test gets a fresh home (see conftest) against the session's slapd, which
these tests only read.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy import text

from govnode.config import CONFIG_NAME
from govnode.pki import ca
from govnode.pki.files import write_atomic
from govnode.store import directory
from govnode.store.database import Database, make_engine
from govnode.store.migrate import current_revision, head_revision
from govnode.store.urls import shown_url
from govnode.testing.databases import fresh_database_url, home_engine, unreachable_database_url
from govnode.testing.home import configure, init_home
from govnode.testing.slapd import Slapd
from tests.cli.support import (
    DEMO_AGENCIES,
    DEMO_BY_CODE,
    Govnode,
    certificate,
    crl,
    crl_number,
    crl_serials,
    free_port,
    listening,
    mode,
    run,
    run_process,
)

CHECK_LINE = re.compile(r"^(ok|FAIL) +(.*)$")


def enroll(govnode: Govnode, code: str, out: Path, *options: str) -> x509.Certificate:
    result = govnode("agency", "enroll", code, "--out", out, *options)
    assert result.code == 0, result.err
    return certificate(out / "cert.pem")


def failures(output: str) -> list[str]:
    """The FAIL lines of `govnode check`."""
    return [line for line in output.splitlines() if line.startswith("FAIL")]


def recorded_fingerprint(govnode: Govnode, code: str) -> str | None:
    """The fingerprint the node holds for `code` (what the agency API reports)."""
    db = Database(govnode.config.database.url)
    try:
        record = db.run_sync(directory.thd_get, code, now=datetime.now(UTC).timestamp())
    finally:
        db.stop()
    assert record is not None
    return record.fingerprint_sha256


# -- agency enroll ---------------------------------------------------------------


def test_enroll_writes_the_agency_certificate_key_and_ca(govnode: Govnode, tmp_path: Path) -> None:
    out = tmp_path / "edu-files"
    started = datetime.now(UTC)

    result = govnode("agency", "enroll", "edu", "--out", out)

    assert result.code == 0, result.err
    assert result.out.startswith(f"enrolled edu@kb ({DEMO_BY_CODE['edu'].name_fa})")
    assert (out / "ca.pem").read_bytes() == (govnode.home / "pki" / "ca.pem").read_bytes()
    assert mode(out / "key.pem") == 0o600
    cert = certificate(out / "cert.pem")
    key = load_pem_private_key((out / "key.pem").read_bytes(), password=None)
    assert key.public_key() == cert.public_key()
    cert.verify_directly_issued_by(certificate(govnode.home / "pki" / "ca.pem"))

    # Who it is: the agency at this node, in the subject and in the SAN the node trusts.
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "edu@kb"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == ("govnode kb")
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["urn:govnode:agency:edu@kb"]
    # What it may do: authenticate a client, nothing else.
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    # For how long: two years by default.
    lifetime = cert.not_valid_after_utc - started
    assert abs(lifetime - timedelta(days=730)) < timedelta(minutes=1)

    fingerprint = cert.fingerprint(hashes.SHA256()).hex()
    assert f"sha256 {fingerprint}" in result.out
    assert recorded_fingerprint(govnode, "edu") == fingerprint
    assert govnode.agencies()["edu"] == {
        "code": "edu",
        "name": DEMO_BY_CODE["edu"].name_fa,
        "phase": 1,
        "status": "active",
        "certificate_expires": f"{cert.not_valid_after_utc:%Y-%m-%d}",
    }


def test_enroll_a_county_office_with_a_shorter_validity(govnode: Govnode, tmp_path: Path) -> None:
    cert = enroll(govnode, "edu-dena", tmp_path / "edu-dena", "--days", "90")
    lifetime = cert.not_valid_after_utc - datetime.now(UTC)
    assert abs(lifetime - timedelta(days=90)) < timedelta(minutes=1)
    listed = govnode.agencies()["edu-dena"]
    assert listed["phase"] == 3
    assert listed["status"] == "active"
    assert listed["certificate_expires"] == f"{cert.not_valid_after_utc:%Y-%m-%d}"


def test_enroll_refuses_a_validity_of_zero_days(
    govnode: Govnode, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        govnode("agency", "enroll", "edu", "--out", tmp_path / "edu", "--days", "0")
    assert exit_info.value.code == 2
    assert "--days" in capsys.readouterr().err
    assert govnode.agencies()["edu"]["status"] == "pending"


def test_enroll_an_agency_missing_from_the_directory_fails(
    govnode: Govnode, tmp_path: Path
) -> None:
    out = tmp_path / "nobody"
    result = govnode("agency", "enroll", "no-such-office", "--out", out)
    assert result.code == 1
    assert "'no-such-office' is not in the directory" in result.err
    assert "ou=agencies,dc=kb,dc=gov,dc=ir" in result.err
    assert not out.exists()
    assert "no-such-office" not in govnode.agencies()


def test_enroll_refuses_a_malformed_code(govnode: Govnode, tmp_path: Path) -> None:
    result = govnode("agency", "enroll", "EDU", "--out", tmp_path / "edu")
    assert result.code == 2
    assert "'EDU' is not an agency code" in result.err


def test_enroll_looks_in_ldap_when_the_cache_is_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], govnode_slapd: Slapd
) -> None:
    """Right after init nothing is cached yet: enroll asks the directory itself."""
    home = tmp_path / "fresh"
    init_home(home, govnode_slapd)
    fresh = Govnode(capsys, home)
    enroll(fresh, "welfare", tmp_path / "welfare")
    listed = fresh.agencies()
    assert len(listed) == len(DEMO_AGENCIES)
    assert listed["welfare"]["status"] == "active"


def test_enroll_twice_refuses_without_force(govnode: Govnode, tmp_path: Path) -> None:
    first = enroll(govnode, "edu", tmp_path / "edu")
    fingerprint = first.fingerprint(hashes.SHA256()).hex()

    again = govnode("agency", "enroll", "edu", "--out", tmp_path / "edu-again")

    assert again.code == 1
    assert "edu is already enrolled" in again.err
    assert fingerprint in again.err
    assert "--force" in again.err
    assert not (tmp_path / "edu-again").exists()
    assert recorded_fingerprint(govnode, "edu") == fingerprint
    assert crl_serials(govnode.home) == set()


def test_enroll_with_force_revokes_the_old_certificate(govnode: Govnode, tmp_path: Path) -> None:
    out = tmp_path / "edu"
    old = enroll(govnode, "edu", out)
    old_key = (out / "key.pem").read_bytes()

    new = enroll(govnode, "edu", out, "--force")

    assert new.serial_number != old.serial_number
    assert (out / "key.pem").read_bytes() != old_key
    assert mode(out / "key.pem") == 0o600
    assert crl_serials(govnode.home) == {old.serial_number}
    assert recorded_fingerprint(govnode, "edu") == new.fingerprint(hashes.SHA256()).hex()
    assert govnode.agencies()["edu"]["status"] == "active"


def test_enroll_into_an_unusable_folder_enrolls_nothing(govnode: Govnode, tmp_path: Path) -> None:
    out = tmp_path / "a-file"
    out.write_text("in the way")
    result = govnode("agency", "enroll", "edu", "--out", out)
    assert result.code == 2
    assert "--out" in result.err
    assert str(out) in result.err
    assert out.read_text() == "in the way"
    # No certificate was recorded whose key nobody holds.
    assert govnode.agencies()["edu"]["status"] == "pending"
    assert recorded_fingerprint(govnode, "edu") is None


def test_enroll_refuses_to_overwrite_a_key(govnode: Govnode, tmp_path: Path) -> None:
    out = tmp_path / "shared"
    out.mkdir()
    (out / "key.pem").write_text("someone's key")
    result = govnode("agency", "enroll", "welfare", "--out", out)
    assert result.code == 2
    assert str(out / "key.pem") in result.err
    assert (out / "key.pem").read_text() == "someone's key"
    assert govnode.agencies()["welfare"]["status"] == "pending"


# -- agency revoke ---------------------------------------------------------------


def test_revoke_suspends_the_agency_and_lists_the_serial_in_the_crl(
    govnode: Govnode, tmp_path: Path
) -> None:
    cert = enroll(govnode, "edu", tmp_path / "edu")
    number_before = crl_number(govnode.home)

    result = govnode("agency", "revoke", "edu")

    assert result.code == 0, result.err
    assert f"revoked 1 certificate(s) of edu: {cert.serial_number:x}" in result.out
    assert str(govnode.home / "pki" / "crl.pem") in result.out
    listed = govnode.agencies()["edu"]
    assert listed["status"] == "suspended"
    assert listed["certificate_expires"] is None
    revocations = crl(govnode.home)
    ca_key = certificate(govnode.home / "pki" / "ca.pem").public_key()
    assert isinstance(ca_key, ec.EllipticCurvePublicKey)
    assert revocations.is_signature_valid(ca_key)
    assert {entry.serial_number for entry in revocations} == {cert.serial_number}
    assert crl_number(govnode.home) > number_before


def test_revoke_without_a_certificate_fails_clearly(govnode: Govnode, tmp_path: Path) -> None:
    never = govnode("agency", "revoke", "welfare")
    assert never.code == 1
    assert "welfare has no unrevoked certificate" in never.err
    assert never.out == ""

    enroll(govnode, "edu", tmp_path / "edu")
    assert govnode("agency", "revoke", "edu").code == 0
    twice = govnode("agency", "revoke", "edu")
    assert twice.code == 1
    assert "edu has no unrevoked certificate" in twice.err


def test_a_revoked_agency_can_be_enrolled_again(govnode: Govnode, tmp_path: Path) -> None:
    old = enroll(govnode, "edu", tmp_path / "edu")
    assert govnode("agency", "revoke", "edu").code == 0
    new = enroll(govnode, "edu", tmp_path / "edu-new")
    assert govnode.agencies()["edu"]["status"] == "active"
    assert crl_serials(govnode.home) == {old.serial_number}
    assert new.serial_number not in crl_serials(govnode.home)


# -- agency list -----------------------------------------------------------------


def test_list_shows_a_table_with_one_row_per_agency_and_a_summary(
    govnode: Govnode, tmp_path: Path
) -> None:
    edu = enroll(govnode, "edu", tmp_path / "edu")
    enroll(govnode, "welfare", tmp_path / "welfare")
    assert govnode("agency", "revoke", "welfare").code == 0

    result = govnode("agency", "list")

    assert result.code == 0, result.err
    header, *rows, summary = result.out.splitlines()
    assert header.split() == ["CODE", "PHASE", "STATUS", "EXPIRES", "NAME"]
    assert len(rows) == len(DEMO_AGENCIES)
    by_code = {row.split()[0]: row.split(maxsplit=4) for row in rows}
    assert list(by_code) == sorted(DEMO_BY_CODE)
    assert by_code["edu"] == [
        "edu",
        "1",
        "active",
        f"{edu.not_valid_after_utc:%Y-%m-%d}",
        DEMO_BY_CODE["edu"].name_fa,
    ]
    assert by_code["welfare"][1:4] == ["1", "suspended", "-"]
    assert by_code["edu-dena"][1:4] == ["3", "pending", "-"]
    assert by_code["edu-dena"][4] == DEMO_BY_CODE["edu-dena"].name_fa
    total = len(DEMO_AGENCIES)
    assert summary == f"{total} agencies: 1 active, {total - 2} pending, 1 suspended"


def test_list_json_holds_every_agency_of_the_directory(govnode: Govnode) -> None:
    listed = govnode.agencies()
    assert list(listed) == sorted(DEMO_BY_CODE)
    for code, row in listed.items():
        agency = DEMO_BY_CODE[code]
        assert row == {
            "code": code,
            "name": agency.name_fa,
            "phase": agency.phase,
            "status": "pending",
            "certificate_expires": None,
        }


def test_list_on_an_empty_cache_says_to_sync(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], govnode_slapd: Slapd
) -> None:
    home = tmp_path / "fresh"
    init_home(home, govnode_slapd)
    fresh = Govnode(capsys, home)
    table = fresh("agency", "list")
    assert table.code == 0
    assert "govnode directory sync" in table.out
    assert fresh.agencies() == {}


# -- check -----------------------------------------------------------------------


def test_check_passes_on_a_fresh_home(govnode: Govnode) -> None:
    result = govnode("check")
    assert result.code == 0, result.out
    lines = result.out.splitlines()
    assert lines[-1] == "all checks passed"
    verdicts = [CHECK_LINE.match(line) for line in lines[:-1]]
    assert all(match is not None and match[1] == "ok" for match in verdicts), result.out
    checked = " | ".join(match[2] for match in verdicts if match is not None)
    for part in ("config", "database", "ldap", "CA certificate", "server certificate", "CRL"):
        assert part in checked
    assert f"{len(DEMO_AGENCIES)} agencies cached" in result.out


def warnings(output: str) -> list[str]:
    """The WARN lines of `govnode check`."""
    return [line for line in output.splitlines() if line.startswith("WARN")]


def test_check_warns_of_a_server_certificate_that_expires_within_30_days(
    govnode: Govnode,
) -> None:
    pki = govnode.home / "pki"
    soon = ca.issue_server_certificate(
        (pki / "ca.pem").read_bytes(),
        (pki / "ca.key").read_bytes(),
        node_id="kb",
        dns_names=["localhost"],
        ip_addresses=["127.0.0.1"],
        now=datetime.now(UTC),
        valid_days=10,
    )
    write_atomic(pki / "server.pem", soon.cert_pem)

    result = govnode("check")

    # A warning, not a failure: the node works for ten more days.
    assert result.code == 0, result.out
    assert failures(result.out) == []
    [warning] = warnings(result.out)
    assert f"server certificate {pki / 'server.pem'}" in warning
    assert f"valid until {soon.not_after:%Y-%m-%d}" in warning
    assert "(9 days left); renew: govnode cert renew server" in warning
    assert result.out.splitlines()[-1].startswith("no problems, 1 warning(s)")
    strict = govnode("check", "--strict")
    assert strict.code == 1
    assert strict.out.splitlines()[-1] == "1 problem(s)"


def test_check_fails_on_an_expired_server_certificate(govnode: Govnode) -> None:
    pki = govnode.home / "pki"
    expired = ca.issue_server_certificate(
        (pki / "ca.pem").read_bytes(),
        (pki / "ca.key").read_bytes(),
        node_id="kb",
        dns_names=["localhost"],
        ip_addresses=["127.0.0.1"],
        now=datetime.now(UTC) - timedelta(days=3),
        valid_days=1,
    )
    write_atomic(pki / "server.pem", expired.cert_pem)
    result = govnode("check")
    assert result.code == 1
    [failure] = failures(result.out)
    assert f"server certificate {pki / 'server.pem'}" in failure
    assert "EXPIRED 2 days ago); renew: govnode cert renew server" in failure


def test_check_warns_of_agency_certificates_that_expire_within_30_days(
    govnode: Govnode, tmp_path: Path
) -> None:
    enroll(govnode, "welfare", tmp_path / "welfare", "--days", "10")
    enroll(govnode, "edu", tmp_path / "edu", "--days", "20")
    enroll(govnode, "roads", tmp_path / "roads")
    result = govnode("check")
    assert result.code == 0, result.out
    assert warnings(result.out) == [
        "WARN   2 agency certificate(s) expire within 30 days: edu, welfare; "
        "renew: govnode agency renew CODE --out DIR"
    ]
    # Renewed: the new certificate counts, the old one may run out.
    assert govnode("agency", "renew", "welfare", "--out", tmp_path / "welfare-2").code == 0
    result = govnode("check")
    assert warnings(result.out) == [
        "WARN   1 agency certificate(s) expire within 30 days: edu; "
        "renew: govnode agency renew CODE --out DIR"
    ]


def test_check_fails_when_ldap_refuses_the_service_account(govnode: Govnode) -> None:
    (govnode.home / "secrets" / "ldap-bind-password").write_text("not-the-password\n")
    result = govnode("check")
    assert result.code == 1
    [failure] = failures(result.out)
    assert failure.startswith("FAIL   ldap")
    assert "refused the service account" in failure


def test_check_fails_without_a_crl(govnode: Govnode) -> None:
    crl_path = govnode.home / "pki" / "crl.pem"
    crl_path.unlink()
    result = govnode("check")
    assert result.code == 1
    [failure] = failures(result.out)
    assert f"CRL {crl_path}" in failure


# -- db upgrade and the schema guard ------------------------------------------------


def test_an_empty_database_is_refused_until_db_upgrade(govnode: Govnode, tmp_path: Path) -> None:
    database = fresh_database_url(tmp_path, "fresh.db")
    api_port, admin_port = free_port(), free_port()
    configure(
        govnode.home,
        url=database,
        api=f"127.0.0.1:{api_port}",
        admin=f"127.0.0.1:{admin_port}",
    )

    check = govnode("check")
    assert check.code == 1
    [failure] = failures(check.out)
    assert failure.startswith(f"FAIL   database {shown_url(database)}")
    assert "govnode db upgrade" in failure

    listed = govnode("agency", "list")
    assert listed.code == 2
    assert "govnode db upgrade" in listed.err

    # `serve` as systemd runs it: refuses before anything listens.
    served = run_process(govnode.home, "serve")
    assert served.returncode == 2, served.stderr
    assert "govnode db upgrade" in served.stderr
    assert "Traceback" not in served.stderr
    assert "govnode ready" not in served.stdout
    assert not listening(api_port)
    assert not listening(admin_port)

    upgraded = govnode("db", "upgrade")
    assert upgraded.code == 0, upgraded.err
    assert f"empty -> {head_revision()}" in upgraded.out
    engine = make_engine(database)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()
    assert govnode("check").code == 0

    again = govnode("db", "upgrade")
    assert again.code == 0
    assert f"is current ({head_revision()})" in again.out


def test_a_database_from_a_newer_govnode_is_left_alone(govnode: Govnode) -> None:
    engine = home_engine(govnode.home)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'f00dcafe'"))

    upgrade = govnode("db", "upgrade")
    assert upgrade.code == 2
    assert "f00dcafe" in upgrade.err
    assert "refusing" in upgrade.err
    check = govnode("check")
    assert check.code == 1
    assert "f00dcafe" in failures(check.out)[0]
    with engine.connect() as conn:
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    engine.dispose()
    assert [tuple(row) for row in versions] == [("f00dcafe",)]


def test_an_unreachable_database_is_a_problem_not_a_traceback(
    govnode: Govnode, tmp_path: Path
) -> None:
    url = unreachable_database_url(tmp_path)
    configure(govnode.home, url=url)

    check = govnode("check")
    assert check.code == 1
    [failure] = failures(check.out)
    assert failure.startswith(f"FAIL   database {shown_url(url)} unreachable")

    for argv in (("agency", "list"), ("directory", "sync"), ("db", "upgrade")):
        result = govnode(*argv)
        assert result.code == 1, argv
        assert url in result.err
        assert result.err.count("\n") == 1


# -- where the home is -----------------------------------------------------------


def test_govnode_home_is_used_when_home_is_not_given(
    node_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOVNODE_HOME", str(node_home))
    result = run(capsys, "check")
    assert result.code == 0, result.out
    assert f"ok    config {node_home / CONFIG_NAME}" in result.out


def test_home_option_wins_over_govnode_home(
    node_home: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GOVNODE_HOME", str(tmp_path / "elsewhere"))
    result = run(capsys, "--home", node_home, "agency", "list", "--json")
    assert result.code == 0, result.err


def test_a_home_without_config_names_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nowhere"
    monkeypatch.setenv("GOVNODE_HOME", str(missing))
    result = run(capsys, "check")
    assert result.code == 2
    assert str(missing / CONFIG_NAME) in result.err
    assert "cannot read" in result.err


def test_an_empty_govnode_home_means_the_default_home(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    default = Path("/etc/govnode") / CONFIG_NAME
    if default.exists():
        pytest.skip(f"{default} exists on this machine")
    monkeypatch.setenv("GOVNODE_HOME", "")
    result = run(capsys, "check")
    assert result.code == 2
    assert str(default) in result.err


def test_list_into_a_pipe_that_closes_early_is_not_an_error(node_home: Path) -> None:
    """`govnode agency list | head -1`: the reader leaving is no failure of ours."""
    import subprocess
    import sys

    reader = subprocess.Popen(["head", "-1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    listing = subprocess.run(
        [sys.executable, "-m", "govnode.cli.main", "--home", str(node_home), "agency", "list"],
        stdout=reader.stdin,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        check=False,
    )
    assert reader.stdin is not None
    assert reader.stdout is not None
    reader.stdin.close()
    header = reader.stdout.read().decode()
    reader.wait(10)
    assert header.startswith("CODE")
    assert "Traceback" not in listing.stderr
    assert listing.returncode == 0


def test_list_and_revoke_need_no_ldap_secret(
    govnode: Govnode, node_home: Path, tmp_path: Path
) -> None:
    enroll(govnode, "edu", tmp_path / "edu")
    (node_home / "secrets" / "ldap-bind-password").unlink()
    assert govnode("agency", "list").code == 0
    assert govnode("agency", "revoke", "edu").code == 0
