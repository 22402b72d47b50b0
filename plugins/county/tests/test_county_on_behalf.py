"""A parent receives the letters of its county office until the office is
enrolled: it reads them and marks them read, every access is in the audit log,
and the office's senders see who read for it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from county_support import API, Kb, key_and_csr, request_enrollment, running_kb, send

from govnode.pki.files import write_atomic, write_private
from govnode.testing.slapd import Slapd

ENROLLED = ("edu", "welfare", "ostandari")
INBOX = f"{API}/offices/edu-dena/inbox"


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory, govnode_slapd: Slapd) -> Iterator[Kb]:
    with running_kb(tmp_path_factory.mktemp("county-behalf"), govnode_slapd, {}, ENROLLED) as kb:
        yield kb


def test_the_parent_reads_for_its_office_until_the_office_is_enrolled(
    kb: Kb, tmp_path: Path
) -> None:
    with kb.client("welfare") as welfare:
        letter_id = send(welfare, ["edu-dena"], "درخواست آمار مدارس دنا", "با سلام، لطفاً ...")
        elsewhere = send(welfare, ["ostandari"], "نامه‌ای برای استانداری")
    with kb.client("ostandari") as ostandari:
        later = send(ostandari, ["edu-dena", "edu"], "بخشنامه")

    with kb.client("edu") as edu:
        offices = {o["code"]: o for o in edu.request("GET", f"{API}/offices").json()["offices"]}
        assert offices["edu-dena"]["status"] == "pending"
        assert offices["edu-dena"]["parent_receives"] is True
        assert offices["edu-dena"]["request"] is None
        assert "welfare-dena" not in offices

        # The office's inbox, newest first, a page at a time.
        first = edu.request("GET", INBOX, query={"limit": "1"}).json()
        assert [item["id"] for item in first["letters"]] == [later]
        assert first["next"]
        second = edu.request("GET", INBOX, query={"limit": "1", "after": first["next"]}).json()
        assert [item["id"] for item in second["letters"]] == [letter_id]
        assert second["letters"][0]["sender"] == "welfare@kb"
        assert second["letters"][0]["read_at"] is None
        assert second["next"] is None

        shown = edu.request("GET", f"{API}/offices/edu-dena/letters/{letter_id}")
        assert shown.status == 200, shown.body
        letter = shown.json()
        assert letter["subject"] == "درخواست آمار مدارس دنا"
        assert letter["body"] == "با سلام، لطفاً ..."
        assert letter["to"] == ["edu-dena@kb"]
        # Only the office's own letters: not one it is no party to.
        other = edu.request("GET", f"{API}/offices/edu-dena/letters/{elsewhere}")
        assert (other.status, other.error_code) == (404, "not_found")

        read = edu.request("POST", f"{API}/offices/edu-dena/letters/{letter_id}/read")
        assert read.status == 200, read.body
        assert read.json()["status"] == "read"
        assert read.json()["read_at"].endswith("Z")
        unread = edu.request("GET", INBOX, query={"unread": "true"}).json()["letters"]
        assert [item["id"] for item in unread] == [later]

    # The sender sees the letter read, and by whom.
    with kb.client("welfare") as welfare:
        tracked = welfare.request("GET", f"/api/v1/letters/{letter_id}").json()
        (recipient,) = tracked["recipients"]
        assert (recipient["address"], recipient["status"]) == ("edu-dena@kb", "read")
        assert "read by edu@kb on its behalf" in [e["detail"] for e in recipient["events"]]
        # Not the parent: refused, naming the parent.
        refused = welfare.request("GET", INBOX)
        assert (refused.status, refused.error_code) == (403, "forbidden")
        assert "edu@kb" in refused.json()["error"]["message"]

    # Every access is in the audit log, and the chain still holds.
    entries = [r for r in kb.audit_log() if r.kind == "county.on_behalf"]
    seen = [(r.actor, r.subject, json.loads(r.detail)["action"]) for r in entries]
    assert seen == [
        ("edu@kb", "edu-dena", "inbox"),
        ("edu@kb", "edu-dena", "inbox"),
        ("edu@kb", letter_id, "letter"),
        ("edu@kb", letter_id, "read"),
        ("edu@kb", "edu-dena", "inbox"),
    ]
    assert all(json.loads(r.detail)["office"] == "edu-dena@kb" for r in entries)
    assert ("letter.read", "edu@kb for edu-dena@kb", letter_id) in [
        (r.kind, r.actor, r.subject) for r in kb.audit_log()
    ]
    verified = kb.govnode("audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr

    # Enrolled, the office reads its own letters; the parent no longer does.
    made = key_and_csr("edu-dena")
    with kb.client("edu") as edu:
        assert request_enrollment(edu, "edu-dena", made.csr_pem)[0] == 201
        approved = kb.govnode("county", "approve", "edu-dena")
        assert approved.returncode == 0, approved.stderr
        for method, path in [
            ("GET", INBOX),
            ("GET", f"{API}/offices/edu-dena/letters/{letter_id}"),
            ("POST", f"{API}/offices/edu-dena/letters/{later}/read"),
        ]:
            answer = edu.request(method, path)
            assert (answer.status, answer.error_code) == (403, "forbidden"), path
            assert "reads its own letters" in answer.json()["error"]["message"]
        certificate = edu.request("GET", f"{API}/requests/edu-dena").json()["certificate"]
    write_atomic(tmp_path / "cert.pem", certificate.encode())
    write_private(tmp_path / "key.pem", made.key_pem)
    with kb.client_with("edu-dena", tmp_path / "cert.pem", tmp_path / "key.pem") as office:
        own = {i["id"]: i for i in office.request("GET", "/api/v1/inbox").json()["letters"]}
    assert own[letter_id]["read_at"] is not None  # what its parent read for it
    assert own[later]["read_at"] is None
    kinds = [r.kind for r in kb.audit_log()]
    assert kinds.count("county.on_behalf") == len(entries)  # refusals read nothing
    assert {"county.requested", "agency.enrollment_by", "county.approved"} <= set(kinds)
