"""Delivery, reading, answering, attachments and paging, as sender and recipients see them."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from govnode.testing.client import AgencyClient
from govnode.testing.pytest_plugin import NodeHome
from tests.api.test_letters import (
    LETTERS,
    RFC3339_Z,
    ClientFactory,
    assert_error,
    letter,
    logged_in,
    sequence_of,
    show,
    submit,
    wait_for,
    walk,
)


@pytest.fixture
def edu(govnode_client: ClientFactory) -> AgencyClient:
    return logged_in(govnode_client, "edu")


@pytest.fixture
def welfare(govnode_client: ClientFactory) -> AgencyClient:
    return logged_in(govnode_client, "welfare")


@pytest.fixture
def health(govnode_client: ClientFactory) -> AgencyClient:
    return logged_in(govnode_client, "health-univ")


def inbox(client: AgencyClient, **query: str) -> dict[str, Any]:
    response = client.request("GET", "/api/v1/inbox", query=query)
    assert response.status == 200, response.body
    answer: dict[str, Any] = response.json()
    return answer


def in_first_page(client: AgencyClient, letter_id: str, **query: str) -> dict[str, Any] | None:
    found = [item for item in inbox(client, **query)["letters"] if item["id"] == letter_id]
    return found[0] if found else None


def read(client: AgencyClient, letter_id: str) -> dict[str, Any]:
    response = client.request("POST", f"{LETTERS}/{letter_id}/read")
    assert response.status == 200, response.body
    answer: dict[str, Any] = response.json()
    return answer


def recipient(view: dict[str, Any], address: str) -> dict[str, Any]:
    entries: list[dict[str, Any]] = [r for r in view["recipients"] if r["address"] == address]
    assert len(entries) == 1, view["recipients"]
    return entries[0]


def statuses(entry: dict[str, Any]) -> list[str]:
    return [event["status"] for event in entry["events"]]


# -- delivery, read, answered ----------------------------------------------------------


def test_a_letter_is_delivered_read_and_answered_and_the_sender_follows_it(
    edu: AgencyClient, welfare: AgencyClient, health: AgencyClient
) -> None:
    sent = submit(edu, letter(to=["welfare"], cc=["health-univ"], subject="پیگیری")).json()
    letter_id = sent["id"]
    view = wait_for(edu, letter_id)
    assert view["status"] == "delivered"
    # In the recipients' inboxes, unread.
    for client in (welfare, health):
        summary = in_first_page(client, letter_id)
        assert summary is not None, "not in the inbox"
        assert set(summary) == {
            "id",
            "number",
            "sender",
            "subject",
            "priority",
            "classification",
            "created_at",
            "delivered_at",
            "read_at",
        }
        assert summary["number"] == sent["number"]
        assert summary["sender"] == "edu@kb"
        assert summary["subject"] == "پیگیری"
        assert (summary["priority"], summary["classification"]) == ("normal", "normal")
        assert summary["created_at"] == sent["created_at"]
        assert RFC3339_Z.fullmatch(summary["delivered_at"])
        assert summary["read_at"] is None
        assert in_first_page(client, letter_id, unread="true") is not None
        assert show(client, letter_id)["body"] == "متن نامه"

    # Read, twice: the second answer is the first.
    first = read(welfare, letter_id)
    assert first["address"] == "welfare@kb"
    assert first["kind"] == "to"
    assert first["status"] == "read"
    assert RFC3339_Z.fullmatch(first["read_at"])
    assert read(welfare, letter_id) == first
    assert in_first_page(welfare, letter_id, unread="true") is None
    summary = in_first_page(welfare, letter_id)
    assert summary is not None
    assert summary["read_at"] == first["read_at"]
    assert in_first_page(health, letter_id, unread="true") is not None

    view = show(edu, letter_id)
    assert view["status"] == "delivered", "the least advanced recipient decides"
    welfare_entry = recipient(view, "welfare@kb")
    assert welfare_entry["status"] == "read"
    assert statuses(welfare_entry) == ["queued", "delivered", "read"]
    assert welfare_entry["events"][-1]["at"] == first["read_at"]
    assert all(e["node"] == "kb" for e in welfare_entry["events"])
    health_entry = recipient(view, "health-univ@kb")
    assert (health_entry["kind"], health_entry["status"]) == ("cc", "delivered")
    assert statuses(health_entry) == ["queued", "delivered"]

    assert read(health, letter_id)["status"] == "read"
    assert show(edu, letter_id)["status"] == "read"

    # welfare answers: its entry becomes answered; the letter stays read (health has not).
    reply = submit(
        welfare, {"to": ["edu"], "subject": "پاسخ", "body": "انجام شد", "in_reply_to": letter_id}
    ).json()
    view = show(edu, letter_id)
    assert recipient(view, "welfare@kb")["status"] == "answered"
    assert statuses(recipient(view, "welfare@kb")) == ["queued", "delivered", "read", "answered"]
    assert view["status"] == "read"
    # Reading again after answering changes nothing.
    assert read(welfare, letter_id)["read_at"] == first["read_at"]
    assert read(welfare, letter_id)["status"] == "answered"

    # The reply reaches the sender, pointing at the letter it answers.
    wait_for(welfare, reply["id"])
    assert show(edu, reply["id"])["in_reply_to"] == letter_id
    answering = in_first_page(edu, reply["id"])
    assert answering is not None
    assert answering["sender"] == "welfare@kb"

    # A second reply from welfare changes nothing; health's reply completes it.
    submit(welfare, letter(to=["edu"], subject="تکمیلی", in_reply_to=letter_id))
    submit(health, letter(to=["edu"], subject="پاسخ دوم", in_reply_to=letter_id))
    view = show(edu, letter_id)
    assert view["status"] == "answered"
    assert statuses(recipient(view, "welfare@kb")) == ["queued", "delivered", "read", "answered"]

    # The trail, oldest first, for the sender and for a recipient.
    response = edu.request("GET", f"{LETTERS}/{letter_id}/events")
    assert response.status == 200, response.body
    trail = response.json()["events"]
    assert [(e["address"], e["status"]) for e in trail] == [
        ("welfare@kb", "queued"),
        ("health-univ@kb", "queued"),
        ("welfare@kb", "delivered"),  # delivered in the order they were named
        ("health-univ@kb", "delivered"),
        ("welfare@kb", "read"),
        ("health-univ@kb", "read"),
        ("welfare@kb", "answered"),
        ("health-univ@kb", "answered"),
    ]
    assert [e["at"] for e in trail] == sorted(e["at"] for e in trail)
    for event in trail:
        assert set(event) == {"at", "address", "status", "node", "detail"}
        assert RFC3339_Z.fullmatch(event["at"])
        assert event["node"] == "kb"
    assert welfare.request("GET", f"{LETTERS}/{letter_id}/events").json()["events"] == trail


def test_answering_without_reading_first_still_records_the_reading(
    edu: AgencyClient, welfare: AgencyClient
) -> None:
    """A reply is proof of reading: the letter leaves the unread list and shows a read time."""
    letter_id = submit(edu, letter(to=["welfare"])).json()["id"]
    wait_for(edu, letter_id)
    submit(welfare, letter(to=["edu"], in_reply_to=letter_id))
    entry = recipient(show(edu, letter_id), "welfare@kb")
    assert entry["status"] == "answered"
    assert statuses(entry) == ["queued", "delivered", "read", "answered"]
    assert in_first_page(welfare, letter_id, unread="true") is None
    summary = in_first_page(welfare, letter_id)
    assert summary is not None
    assert summary["read_at"] is not None
    marked = read(welfare, letter_id)
    assert (marked["status"], marked["read_at"]) == ("answered", summary["read_at"])


def test_in_reply_to_must_name_a_letter_the_caller_received(
    edu: AgencyClient, welfare: AgencyClient, govnode_client: ClientFactory
) -> None:
    letter_id = submit(edu, letter(to=["welfare"])).json()["id"]
    wait_for(edu, letter_id)
    roads = logged_in(govnode_client, "roads")
    for client in (roads, edu):  # not a recipient; the sender itself
        response = submit(client, letter(to=["welfare"], in_reply_to=letter_id), expect=None)
        assert_error(response, 400, "invalid_field", "in_reply_to")
    assert recipient(show(edu, letter_id), "welfare@kb")["status"] == "delivered"


def test_several_addresses_of_one_recipient_are_one_delivery(
    edu: AgencyClient, welfare: AgencyClient
) -> None:
    sent = submit(edu, letter(to=["welfare", "welfare@kb"], cc=["WELFARE"])).json()
    assert sent["recipients"] == [{"address": "welfare@kb", "kind": "to", "status": "queued"}]
    wait_for(edu, sent["id"])
    found = [item for item in inbox(welfare)["letters"] if item["id"] == sent["id"]]
    assert len(found) == 1


# -- attachments -----------------------------------------------------------------------

PERSIAN_NAME = "گزارش\u200cنهایی «بودجه» ۱۴۰۵.pdf"  # with a ZWNJ, as Persian names have


def attachment(filename: str, content_type: str | None, data: bytes) -> dict[str, Any]:
    item: dict[str, Any] = {"filename": filename, "data": base64.b64encode(data).decode()}
    if content_type is not None:
        item["content_type"] = content_type
    return item


def test_attachments_download_as_sent_with_their_type_and_name(
    edu: AgencyClient, welfare: AgencyClient, health: AgencyClient
) -> None:
    pdf = b"%PDF-1.7\n" + os.urandom(300_000)
    binary = bytes(range(256)) * 4
    files = [
        attachment(PERSIAN_NAME, "application/pdf", pdf),
        attachment('data "raw".bin', None, binary),
        attachment("empty.txt", "Text/Plain", b""),
    ]
    letter_id = submit(edu, letter(to=["welfare"], attachments=files)).json()["id"]
    view = wait_for(edu, letter_id)
    assert view["attachments"] == [
        {
            "filename": PERSIAN_NAME,
            "content_type": "application/pdf",
            "size": len(pdf),
            "sha256": hashlib.sha256(pdf).hexdigest(),
        },
        {
            "filename": 'data "raw".bin',
            "content_type": "application/octet-stream",
            "size": len(binary),
            "sha256": hashlib.sha256(binary).hexdigest(),
        },
        {
            "filename": "empty.txt",
            "content_type": "text/plain",
            "size": 0,
            "sha256": hashlib.sha256(b"").hexdigest(),
        },
    ]
    for client in (edu, welfare):
        for index, (name, content_type, data) in enumerate(
            [
                (PERSIAN_NAME, "application/pdf", pdf),
                ('data "raw".bin', "application/octet-stream", binary),
                ("empty.txt", "text/plain", b""),
            ]
        ):
            response = client.request("GET", f"{LETTERS}/{letter_id}/attachments/{index}")
            assert response.status == 200, response.body
            assert response.body == data
            assert response.headers["content-type"] == content_type
            disposition = response.headers["content-disposition"]
            assert response.headers["x-content-type-options"] == "nosniff"
            assert disposition.split(";")[0] == "attachment"
            (encoded,) = [
                part.strip().removeprefix("filename*=")
                for part in disposition.split(";")
                if part.strip().startswith("filename*=")
            ]
            assert encoded.startswith("UTF-8''")
            assert unquote(encoded.removeprefix("UTF-8''"), encoding="utf-8") == name
        for beyond in ("3", "99"):
            response = client.request("GET", f"{LETTERS}/{letter_id}/attachments/{beyond}")
            assert_error(response, 404, "not_found")
    outsider = health.request("GET", f"{LETTERS}/{letter_id}/attachments/0")
    assert_error(outsider, 404, "not_found")


def blob_files(home: NodeHome, sha256: str) -> list[Path]:
    root = home.config.node.data_dir / "attachments"
    return [path for path in root.rglob(sha256) if path.is_file()]


def test_the_same_bytes_in_two_letters_are_stored_once(
    edu: AgencyClient, welfare: AgencyClient, govnode_home: NodeHome
) -> None:
    data = os.urandom(50_000)
    sha256 = hashlib.sha256(data).hexdigest()
    first = submit(edu, letter(attachments=[attachment("a.bin", None, data)])).json()
    second = submit(
        welfare, letter(to=["edu"], attachments=[attachment("نسخه دوم.bin", None, data)])
    ).json()
    (stored,) = blob_files(govnode_home, sha256)
    assert stored.read_bytes() == data
    wait_for(edu, first["id"])
    wait_for(welfare, second["id"])
    assert welfare.request("GET", f"{LETTERS}/{first['id']}/attachments/0").body == data
    assert edu.request("GET", f"{LETTERS}/{second['id']}/attachments/0").body == data
    assert blob_files(govnode_home, sha256) == [stored]
    incoming = govnode_home.config.node.data_dir / "attachments" / "incoming"
    assert not [p for p in incoming.iterdir() if p.is_file()], "temporary files left behind"


# -- paging ------------------------------------------------------------------------------


def test_inbox_paging_walks_every_letter_once_while_letters_arrive(
    govnode_client: ClientFactory,
) -> None:
    sender = logged_in(govnode_client, "roads")
    reader = logged_in(govnode_client, "edu-dena")

    def send(count: int, label: str) -> list[str]:
        ids = [
            submit(sender, letter(to=["edu-dena"], subject=f"{label} {i}")).json()["id"]
            for i in range(count)
        ]
        for letter_id in ids:
            wait_for(sender, letter_id)
        return ids

    older = send(7, "پیش")
    everything = [item["id"] for item in walk(reader, "/api/v1/inbox")]
    assert everything[:7] == older[::-1], "newest first"
    seen: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        query = {"limit": "3"} | ({"after": after} if after else {})
        answer = inbox(reader, **query)
        assert len(answer["letters"]) <= 3
        seen.extend(item["id"] for item in answer["letters"])
        pages += 1
        if pages <= 3:
            send(2, f"میان {pages}")  # new letters arrive between pages
        after = answer["next"]
        if after is None:
            break
    assert seen == everything, "skipped, repeated or reordered"
    # A fresh first page shows the late arrivals, newest first.
    fresh = [item["id"] for item in inbox(reader, limit="6")["letters"]]
    assert [show(sender, i)["subject"] for i in fresh] == [
        f"میان {n} {i}" for n in (3, 2, 1) for i in (1, 0)
    ]


def test_unread_paging_and_outbox_paging_while_letters_are_sent(
    govnode_client: ClientFactory,
) -> None:
    sender = logged_in(govnode_client, "ostandari")
    reader = logged_in(govnode_client, "edu-dena")
    ids = [
        submit(sender, letter(to=["edu-dena"], subject=f"بخشنامه {i}")).json()["id"]
        for i in range(6)
    ]
    for letter_id in ids:
        wait_for(sender, letter_id)
    read(reader, ids[1])
    read(reader, ids[4])
    unread = [item["id"] for item in walk(reader, "/api/v1/inbox", limit=2, unread="true")]
    assert len(unread) == len(set(unread))
    assert [i for i in unread if i in ids] == [ids[5], ids[3], ids[2], ids[0]]

    everything = [item["id"] for item in walk(sender, "/api/v1/outbox")]
    assert everything[:6] == ids[::-1]
    seen: list[str] = []
    after: str | None = None
    while True:
        query = {"limit": "2"} | ({"after": after} if after else {})
        response = sender.request("GET", "/api/v1/outbox", query=query)
        assert response.status == 200, response.body
        answer = response.json()
        seen.extend(item["id"] for item in answer["letters"])
        submit(sender, letter(to=["edu-dena"], subject="در میانه"))
        after = answer["next"]
        if after is None:
            break
    assert seen == everything
    summary = walk(sender, "/api/v1/outbox", limit=1)[0]
    assert summary["sender"] == "ostandari@kb"
    assert sequence_of(summary["number"])


def test_bad_paging_parameters_are_named(edu: AgencyClient) -> None:
    for _ in range(2):
        wait_for(edu, submit(edu, letter(to=["edu"])).json()["id"])
    inbox_cursor = inbox(edu, limit="1")["next"]
    assert inbox_cursor is not None
    huge = base64.urlsafe_b64encode(b"i" + b"9" * 40).decode().rstrip("=")
    cases: list[tuple[str, dict[str, str], str]] = [
        ("/api/v1/inbox", {"after": "garbage!"}, "after"),
        ("/api/v1/inbox", {"after": "aQ"}, "after"),  # "i" without a position
        ("/api/v1/inbox", {"after": huge}, "after"),
        ("/api/v1/inbox", {"after": "bzEy"}, "after"),  # an outbox cursor ("o12")
        ("/api/v1/outbox", {"after": inbox_cursor}, "after"),
        ("/api/v1/outbox", {"after": "x" * 5000}, "after"),
        ("/api/v1/inbox", {"limit": "0"}, "limit"),
        ("/api/v1/inbox", {"limit": "501"}, "limit"),
        ("/api/v1/outbox", {"limit": "-1"}, "limit"),
        ("/api/v1/outbox", {"limit": "ten"}, "limit"),
        ("/api/v1/inbox", {"unread": "maybe"}, "unread"),
    ]
    for path, query, field in cases:
        response = edu.request("GET", path, query=query)
        assert_error(response, 400, "invalid_field", field)
    assert edu.request("GET", "/api/v1/inbox", query={"limit": "500"}).status == 200
