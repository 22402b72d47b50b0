"""The whole path of a county office, over the real API and the real command line:
its parent asks for it with its own key, the operator approves, the office logs
in with the certificate, writes outside the province, and the parent gets the
copy and follows the letter's status."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from county_support import (
    API,
    Center,
    Kb,
    key_and_csr,
    pending_json,
    request_enrollment,
    running_province,
    send,
    wait_for,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from govnode.pki.files import write_atomic, write_private
from govnode.testing.slapd import Slapd

ENROLLED = ("edu", "welfare", "welfare-dena")


@pytest.fixture(scope="module")
def province(
    tmp_path_factory: pytest.TempPathFactory, govnode_slapd: Slapd
) -> Iterator[tuple[Kb, Center]]:
    root = tmp_path_factory.mktemp("county-path")
    with running_province(root, govnode_slapd, {"copy_parent": True}, ENROLLED) as nodes:
        yield nodes


def test_a_parent_enrolls_its_office_and_follows_its_letters_out_of_the_province(
    province: tuple[Kb, Center], tmp_path: Path
) -> None:
    kb, center = province
    made = key_and_csr("edu-dena")

    # edu asks, with the CSR of a key that never leaves it.
    with kb.client("edu") as edu:
        status, asked = request_enrollment(edu, "edu-dena", made.csr_pem, note="دبیرخانه دنا")
        assert status == 201, asked
        assert asked["office"] == "edu-dena"
        assert asked["parent"] == "edu"
        assert asked["status"] == "pending"
        assert asked["note"] == "دبیرخانه دنا"
        assert asked["requested_at"].endswith("Z")
        assert "certificate" not in asked
        entry = edu.request("GET", "/api/v1/directory/edu-dena").json()
        assert entry["status"] == "pending"
        assert entry["x"]["county"] == {"parent": "edu@kb", "parent_receives": True}

    # The operator sees it, with the key's fingerprint to check with edu on the phone.
    (row,) = [r for r in pending_json(kb) if r["office"] == "edu-dena"]
    assert (row["parent"], row["office_status"], row["note"]) == ("edu", "pending", "دبیرخانه دنا")
    assert row["key_sha256"] == hashlib.sha256(made.public_der()).hexdigest()
    table = kb.govnode("county", "pending")
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].startswith("OFFICE")
    assert any(line.startswith("edu-dena") for line in table.stdout.splitlines())

    approved = kb.govnode("county", "approve", "edu-dena")
    assert approved.returncode == 0, approved.stderr
    assert "can fetch it now" in approved.stdout
    assert "pending" not in {r["office"]: r for r in pending_json(kb)}.get("edu-dena", {})

    # edu fetches the certificate: for its own key, naming the office.
    with kb.client("edu") as edu:
        shown = edu.request("GET", f"{API}/requests/edu-dena")
        assert shown.status == 200, shown.body
        record = shown.json()
    assert record["status"] == "approved"
    certificate = x509.load_pem_x509_certificate(record["certificate"].encode())
    assert (
        certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        == made.public_der()
    )
    assert certificate.fingerprint(hashes.SHA256()).hex() == record["fingerprint_sha256"]
    assert record["fingerprint_sha256"] in approved.stdout
    assert record["ca"] == kb.home.config.tls.ca_cert.read_text()
    assert record["not_after"].endswith("Z")

    # The office connects with that certificate and the parent's key, and logs in.
    cert_file, key_file = tmp_path / "edu-dena.pem", tmp_path / "edu-dena.key"
    write_atomic(cert_file, record["certificate"].encode())
    write_private(key_file, made.key_pem)
    with kb.client_with("edu-dena", cert_file, key_file) as office:
        assert office.request("GET", "/api/v1/directory/edu-dena").json()["x"]["county"] == {
            "parent": "edu@kb",
            "parent_receives": False,
        }
        letter_id = send(office, ["edu@center"], "گزارش شهرستان دنا به مرکز", "با سلام")
        shown = office.request("GET", f"/api/v1/letters/{letter_id}").json()
    # copy_parent: edu@kb is a cc of the letter, without the office asking.
    assert shown["to"] == ["edu@center"]
    assert shown["cc"] == ["edu@kb"]

    with kb.client("edu") as edu:
        inbox = edu.request("GET", "/api/v1/inbox").json()["letters"]
        (copy,) = [item for item in inbox if item["id"] == letter_id]
        assert copy["sender"] == "edu-dena@kb"

        def followed() -> dict[str, Any] | None:
            answer = edu.request("GET", f"{API}/letters")
            assert answer.status == 200, answer.body
            for letter in answer.json()["letters"]:
                statuses = {r["address"]: r["status"] for r in letter["recipients"]}
                if letter["id"] == letter_id and statuses["edu@center"] == "delivered":
                    return dict(letter)
            return None

        letter = wait_for(followed)
        assert letter["sender"] == "edu-dena@kb"
        assert letter["subject"] == "گزارش شهرستان دنا به مرکز"
        assert letter["number"] == shown["number"]
        assert letter["status"] == "delivered"
        assert "body" not in letter

    # center's edu reads it: the parent sees `read` too (the notice comes back to kb).
    with center.client("edu") as far:
        assert letter_id in [i["id"] for i in far.request("GET", "/api/v1/inbox").json()["letters"]]
        assert far.request("POST", f"/api/v1/letters/{letter_id}/read").status == 200
    with kb.client("edu") as edu:

        def read_at_center() -> bool:
            letters = edu.request("GET", f"{API}/letters", query={"office": "edu-dena"}).json()
            return any(
                r["address"] == "edu@center"
                and r["status"] == "read"
                and r["read_at"] is not None
                and r["delivered_at"] is not None
                for item in letters["letters"]
                if item["id"] == letter_id
                for r in item["recipients"]
            )

        wait_for(read_at_center)


def test_letters_inside_the_province_are_neither_copied_nor_listed(
    province: tuple[Kb, Center],
) -> None:
    kb, _ = province
    with kb.client("welfare-dena") as office:
        letter_id = send(office, ["welfare", "edu"], "نامه داخل استان")
        shown = office.request("GET", f"/api/v1/letters/{letter_id}").json()
        assert shown["cc"] == []
    with kb.client("welfare") as welfare:
        listed = welfare.request("GET", f"{API}/letters").json()
        assert letter_id not in [item["id"] for item in listed["letters"]]
        # Another parent's office is not the caller's to follow.
        refused = welfare.request("GET", f"{API}/letters", query={"office": "edu-dena"})
        assert refused.status == 403
        assert refused.error_code == "forbidden"
        assert "edu@kb" in refused.json()["error"]["message"]
