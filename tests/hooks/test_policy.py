"""`govnode_letter_policy`: it sees each letter before it is registered; a refusal is
the client's answer and stores nothing (fail-closed); the copies it asks for are
delivered like any cc."""

from __future__ import annotations

import base64

from govnode.testing.process import NodeProcess
from tests.hooks.conftest import ClientFactory
from tests.hooks.support import (
    Record,
    hook_errors,
    logged_in,
    mailbox_subjects,
    sequence,
    submit,
    unique,
)


def test_the_policy_sees_sender_user_recipients_and_subject(
    client: ClientFactory, record: Record
) -> None:
    dabir = logged_in(client("edu"), "dabir.edu")
    subject = unique("policy")
    attachment = {
        "filename": "گزارش.txt",
        "content_type": "text/plain",
        "data": base64.b64encode(b"report").decode(),
    }

    response = submit(
        dabir,
        to=["welfare", "health-univ@kb"],
        cc=["edu-dena"],
        subject=subject,
        priority="urgent",
        attachments=[attachment],
    )

    assert response.status == 201, response.body
    (seen,) = record.calls("govnode_letter_policy", subject=subject)
    assert seen["sender"] == "edu@kb"
    assert seen["user"] == "dabir.edu"
    assert seen["to"] == ["welfare@kb", "health-univ@kb"]  # full addresses
    assert seen["cc"] == ["edu-dena@kb"]
    assert seen["priority"] == "urgent"
    assert seen["attachments"] == ["گزارش.txt"]


def test_a_refused_letter_answers_the_plugins_error_and_stores_nothing(
    client: ClientFactory,
) -> None:
    edu = logged_in(client("edu"), "edu")
    welfare = logged_in(client("welfare"), "welfare")
    first = submit(edu)
    refused_subject = unique("REFUSE")

    refused = submit(edu, subject=refused_subject)
    after = submit(edu)

    assert refused.status == 403, refused.body
    assert refused.json() == {
        "error": {
            "code": "probe_says_no",
            "message": "the probe does not let this letter through",
        }
    }
    assert refused_subject not in mailbox_subjects(edu, "outbox")
    assert refused_subject not in mailbox_subjects(welfare, "inbox")
    # No registration number was taken: the next letter follows the last one.
    assert first.status == 201, first.body
    assert after.status == 201, after.body
    assert sequence(after.json()["number"]) == sequence(first.json()["number"]) + 1


def test_a_crashing_policy_answers_503_stores_nothing_and_is_counted(
    client: ClientFactory, probe_node: NodeProcess
) -> None:
    edu = logged_in(client("edu"), "edu")
    welfare = logged_in(client("welfare"), "welfare")
    counted = hook_errors(probe_node.admin_url, "govnode_letter_policy")
    first = submit(edu)
    crash_subject = unique("CRASH")

    crashed = submit(edu, subject=crash_subject)
    after = submit(edu)

    assert crashed.status == 503, crashed.body
    assert crashed.error_code == "unavailable"
    assert crashed.headers["retry-after"].isdigit()  # API.md: every 503 says when
    assert b"Traceback" not in crashed.body
    assert crash_subject not in mailbox_subjects(edu, "outbox")
    assert crash_subject not in mailbox_subjects(welfare, "inbox")
    assert sequence(after.json()["number"]) == sequence(first.json()["number"]) + 1
    assert hook_errors(probe_node.admin_url, "govnode_letter_policy") == counted + 1


def test_a_policy_answer_that_is_no_list_of_addresses_fails_closed(
    client: ClientFactory, probe_node: NodeProcess
) -> None:
    edu = logged_in(client("edu"), "edu")
    counted = hook_errors(probe_node.admin_url, "govnode_letter_policy")
    subject = unique("GARBAGE")

    response = submit(edu, subject=subject)

    assert response.status == 503, response.body
    assert response.error_code == "unavailable"
    assert subject not in mailbox_subjects(edu, "outbox")
    assert hook_errors(probe_node.admin_url, "govnode_letter_policy") == counted + 1


def test_a_copy_the_policy_adds_is_delivered_as_cc(client: ClientFactory) -> None:
    edu = logged_in(client("edu"), "edu")
    welfare = logged_in(client("welfare"), "welfare")
    subject = unique("COPY")

    response = submit(edu, to=["health-univ"], subject=subject)

    assert response.status == 201, response.body
    assert response.json()["recipients"] == [
        {"address": "health-univ@kb", "kind": "to", "status": "queued"},
        {"address": "welfare@kb", "kind": "cc", "status": "queued"},
    ]
    letter = edu.request("GET", f"/api/v1/letters/{response.json()['id']}").json()
    assert letter["to"] == ["health-univ@kb"]
    assert letter["cc"] == ["welfare@kb"]
    assert {(r["address"], r["kind"], r["status"]) for r in letter["recipients"]} == {
        ("health-univ@kb", "to", "delivered"),
        ("welfare@kb", "cc", "delivered"),
    }
    assert subject in mailbox_subjects(welfare, "inbox")
    # The copy reads like any letter for the agency it was added for.
    opened = welfare.request("GET", f"/api/v1/letters/{response.json()['id']}")
    assert opened.status == 200, opened.body


def test_a_copy_to_a_recipient_already_named_is_not_doubled(client: ClientFactory) -> None:
    edu = logged_in(client("edu"), "edu")

    response = submit(edu, to=["welfare"], subject=unique("COPY"))

    assert response.status == 201, response.body
    assert response.json()["recipients"] == [
        {"address": "welfare@kb", "kind": "to", "status": "queued"}
    ]


def test_a_retry_with_its_idempotency_key_gets_its_first_answer_without_the_policy(
    client: ClientFactory, record: Record
) -> None:
    """A retry of a letter already registered is answered as it was, even if the
    policy would judge it otherwise now (a phase moved, a rule changed)."""
    edu = logged_in(client("edu"), "edu")
    subject = unique("retry")
    document = {"to": ["welfare"], "subject": subject, "body": "متن"}
    headers = {"Idempotency-Key": subject}

    first = edu.request("POST", "/api/v1/letters", json_body=document, headers=headers)
    again = edu.request("POST", "/api/v1/letters", json_body=document, headers=headers)

    assert first.status == again.status == 201, (first.body, again.body)
    assert again.json()["number"] == first.json()["number"]
    assert len(record.calls("govnode_letter_policy", subject=subject)) == 1
