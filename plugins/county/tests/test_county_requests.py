"""Enrollment requests refused, repeated and rejected, as the parent and the
operator see them."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from county_support import API, Kb, key_and_csr, pending_json, request_enrollment, running_kb
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from govnode.testing.pytest_plugin import client_for
from govnode.testing.slapd import Slapd

ENROLLED = ("edu", "welfare", "welfare-dena", "ostandari")


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory, govnode_slapd: Slapd) -> Iterator[Kb]:
    with running_kb(tmp_path_factory.mktemp("county-requests"), govnode_slapd, {}, ENROLLED) as kb:
        yield kb


def test_only_the_parent_may_ask_for_an_office(kb: Kb) -> None:
    csr = key_and_csr("edu-dena").csr_pem
    with kb.client("welfare") as welfare:
        status, answer = request_enrollment(welfare, "edu-dena", csr)
        assert (status, answer["error"]["code"]) == (403, "forbidden")
        assert "edu@kb" in answer["error"]["message"]  # who may ask
    with kb.client("edu") as edu:
        status, answer = request_enrollment(edu, "welfare", csr)
        assert (status, answer["error"]["code"]) == (403, "forbidden")
        assert "not a county office" in answer["error"]["message"]
        status, answer = request_enrollment(edu, "edu-nowhere", csr)
        assert (status, answer["error"]["code"], answer["error"]["field"]) == (
            400,
            "invalid_field",
            "office",
        )
        missing = edu.request("POST", f"{API}/requests", json_body={"csr": csr})
        assert (missing.status, missing.json()["error"]["field"]) == (400, "office")
        assert edu.request("GET", f"{API}/requests").json() == {"requests": []}
    assert pending_json(kb) == []
    with client_for(kb.home, kb.node, "edu") as no_token:
        assert no_token.request("GET", f"{API}/requests").status == 401


def test_an_enrolled_office_is_not_asked_for_again(kb: Kb) -> None:
    with kb.client("welfare") as welfare:
        status, answer = request_enrollment(welfare, "welfare-dena", key_and_csr("x").csr_pem)
    assert (status, answer["error"]["code"]) == (409, "conflict")
    assert "already enrolled" in answer["error"]["message"]


def weak_rsa_csr() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the weak key refused
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "weak")]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def test_the_csr_is_checked_when_the_parent_asks(kb: Kb) -> None:
    certificate = kb.home.config.tls.ca_cert.read_text()  # PEM, but not a request
    with kb.client("edu") as edu:
        for csr, words in [
            (None, "csr is required"),
            ("", "csr is required"),
            ("not a pem", "not a PEM certificate signing request"),
            (certificate, "not a PEM certificate signing request"),
            (weak_rsa_csr(), "at least 2048"),
        ]:
            body = {"office": "edu-dena", "csr": csr}
            answer = edu.request("POST", f"{API}/requests", json_body=body)
            assert answer.status == 400, (csr, answer.body)
            error = answer.json()["error"]
            assert (error["code"], error["field"]) == ("invalid_field", "csr")
            assert words in error["message"]
        assert edu.request("GET", f"{API}/requests").json() == {"requests": []}


def test_a_request_already_pending(kb: Kb) -> None:
    first, second = key_and_csr("edu-kohgiluyeh"), key_and_csr("edu-kohgiluyeh")
    with kb.client("edu") as edu:
        status, asked = request_enrollment(edu, "edu-kohgiluyeh", first.csr_pem, note="اول")
        assert status == 201, asked
        # The same request again (a retry after a lost answer): the one pending.
        status, again = request_enrollment(edu, "edu-kohgiluyeh", first.csr_pem, note="اول")
        assert (status, again) == (200, asked)
        # Another key while one waits: refused, the first one stands.
        status, other = request_enrollment(edu, "edu-kohgiluyeh", second.csr_pem)
        assert (status, other["error"]["code"]) == (409, "conflict")
        assert "pending" in other["error"]["message"]
        shown = edu.request("GET", f"{API}/requests/edu-kohgiluyeh").json()
        assert shown == asked
    with kb.client("welfare") as welfare:  # another agency does not see edu's requests
        assert welfare.request("GET", f"{API}/requests/edu-kohgiluyeh").status == 404
        assert welfare.request("GET", f"{API}/requests").json() == {"requests": []}


def test_a_rejected_request_tells_the_parent_why(kb: Kb) -> None:
    with kb.client("edu") as edu:
        status, _ = request_enrollment(edu, "edu-yasuj-1", key_and_csr("edu-yasuj-1").csr_pem)
        assert status == 201
    assert "edu-yasuj-1" in [row["office"] for row in pending_json(kb)]

    no_reason = kb.govnode("county", "reject", "edu-yasuj-1")
    assert no_reason.returncode == 2
    assert "--reason" in no_reason.stderr
    rejected = kb.govnode(
        "county", "reject", "edu-yasuj-1", "--reason", "نامه رسمی معرفی مسئول دبیرخانه لازم است"
    )
    assert rejected.returncode == 0, rejected.stderr
    assert "edu-yasuj-1" not in [row["office"] for row in pending_json(kb)]

    with kb.client("edu") as edu:
        shown = edu.request("GET", f"{API}/requests/edu-yasuj-1").json()
        assert shown["status"] == "rejected"
        assert shown["reason"] == "نامه رسمی معرفی مسئول دبیرخانه لازم است"
        assert shown["decided_at"].endswith("Z")
        assert "certificate" not in shown
        listed = edu.request("GET", f"{API}/requests", query={"status": "rejected"}).json()
        assert [r["office"] for r in listed["requests"]] == ["edu-yasuj-1"]
        # Nothing was issued.
        assert edu.request("GET", "/api/v1/directory/edu-yasuj-1").json()["status"] == "pending"

    # A decided request is not decided again; an unknown one is named.
    late = kb.govnode("county", "approve", "edu-yasuj-1")
    assert late.returncode == 1
    assert "not pending: it was rejected" in late.stderr
    unknown = kb.govnode("county", "approve", "edu-nowhere")
    assert unknown.returncode == 1
    assert "no enrollment request for edu-nowhere" in unknown.stderr
    listed_offices = json.loads(kb.govnode("agency", "list", "--json").stdout)
    (office,) = [a for a in listed_offices if a["code"] == "edu-yasuj-1"]
    assert office["status"] == "pending"

    # The parent may ask again, with what the operator asked for.
    with kb.client("edu") as edu:
        status, again = request_enrollment(
            edu, "edu-yasuj-1", key_and_csr("edu-yasuj-1").csr_pem, note="معرفی‌نامه پیوست شد"
        )
        assert (status, again["status"]) == (201, "pending")
        assert "reason" not in again

    kinds = [(r.kind, r.subject) for r in kb.audit_log() if r.kind.startswith("county.")]
    assert kinds.count(("county.requested", "edu-yasuj-1")) == 2
    assert ("county.rejected", "edu-yasuj-1") in kinds


def test_copy_parent_must_be_true_or_false(kb: Kb) -> None:
    path = kb.home.path / "govnode.toml"
    original = path.read_text(encoding="utf-8")
    try:
        path.write_text(f'{original}\n[plugins.county]\ncopy_parent = "yes"\n', encoding="utf-8")
        refused = kb.govnode("plugins", "list")
    finally:
        path.write_text(original, encoding="utf-8")
    assert refused.returncode != 0
    assert "plugins.county.copy_parent" in refused.stderr
    assert "true or false" in refused.stderr
