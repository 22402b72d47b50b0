"""POST /api/v1/letters over real mutual TLS: answers, errors, numbers, idempotency (API.md).

The helpers at the top are shared with the other `test_letters_*` modules.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import jdatetime
import pytest

from govnode.testing.client import AgencyClient, Response, tls_context

ClientFactory = Callable[[str | None], AgencyClient]

LETTERS = "/api/v1/letters"
NUMBER = re.compile(r"^KB-(?P<year>\d{4})-(?P<sequence>\d{6})$")
RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
JALALI_TEXT = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d$")
TEHRAN = ZoneInfo("Asia/Tehran")
DELIVERY_DEADLINE = 10.0


# -- helpers shared by the letters tests ----------------------------------------


def logged_in(factory: ClientFactory, code: str) -> AgencyClient:
    client = factory(code)
    response = client.login(code, f"demo-{code}")
    assert response.status == 200, response.body
    return client


def letter(**fields: Any) -> dict[str, Any]:
    """A valid submission to welfare, with `fields` replacing or adding fields."""
    document: dict[str, Any] = {"to": ["welfare"], "subject": "آزمون", "body": "متن نامه"}
    document.update(fields)
    return document


def submit(
    client: AgencyClient, document: Any, *, key: str | None = None, expect: int | None = 201
) -> Response:
    headers = {"Idempotency-Key": key} if key is not None else None
    response = client.request("POST", LETTERS, json_body=document, headers=headers)
    if expect is not None:
        assert response.status == expect, response.body
    return response


def sequence_of(number: str) -> tuple[int, int]:
    match = NUMBER.fullmatch(number)
    assert match, number
    return int(match["year"]), int(match["sequence"])


def show(client: AgencyClient, letter_id: str) -> Any:
    response = client.request("GET", f"{LETTERS}/{letter_id}")
    assert response.status == 200, response.body
    return response.json()


def wait_for(
    client: AgencyClient, letter_id: str, status: str = "delivered", *, address: str | None = None
) -> Any:
    """The sender's view of a letter once `address` (or every recipient) reached `status`."""
    deadline = time.monotonic() + DELIVERY_DEADLINE
    while True:
        view = show(client, letter_id)
        entries = [r for r in view["recipients"] if address is None or r["address"] == address]
        assert entries, f"{address} is not a recipient of {letter_id}"
        if all(r["status"] == status for r in entries):
            return view
        assert time.monotonic() < deadline, f"still not {status} after 10 s: {view['recipients']}"
        time.sleep(0.02)


def walk(client: AgencyClient, path: str, *, limit: int = 500, **query: str) -> list[Any]:
    """Every summary of an inbox or outbox, page by page."""
    found: list[Any] = []
    after: str | None = None
    while True:
        params = {"limit": str(limit), **query}
        if after is not None:
            params["after"] = after
        response = client.request("GET", path, query=params)
        assert response.status == 200, response.body
        answer = response.json()
        found.extend(answer["letters"])
        after = answer["next"]
        if after is None:
            return found


def outbox_ids(client: AgencyClient) -> list[str]:
    return [item["id"] for item in walk(client, "/api/v1/outbox")]


def assert_error(response: Response, status: int, code: str, field: str | None = None) -> None:
    assert (response.status, response.error_code) == (status, code), response.body
    error = response.json()["error"]
    assert isinstance(error["message"], str)
    assert error["message"]
    if field is not None:
        assert error.get("field") == field, error
    assert b"Traceback" not in response.body


# -- fixtures -------------------------------------------------------------------


@pytest.fixture
def edu(govnode_client: ClientFactory) -> AgencyClient:
    return logged_in(govnode_client, "edu")


@pytest.fixture
def roads(govnode_client: ClientFactory) -> AgencyClient:
    return logged_in(govnode_client, "roads")


# -- 201 ------------------------------------------------------------------------


def test_a_registered_letter_answers_with_number_times_and_full_addresses(
    edu: AgencyClient,
) -> None:
    before = time.time()
    response = submit(
        edu,
        letter(to=["welfare", "Health-Univ@KB"], cc=["edu-dena"], priority="urgent"),
    )
    after = time.time()
    assert response.headers["content-type"].startswith("application/json")
    answer = response.json()
    assert set(answer) == {
        "id",
        "number",
        "status",
        "created_at",
        "created_at_jalali",
        "recipients",
    }
    assert re.fullmatch(r"[0-7][0-9A-HJKMNP-TV-Z]{25}", answer["id"]), answer["id"]
    assert answer["status"] == "registered"
    assert RFC3339_Z.fullmatch(answer["created_at"]), answer["created_at"]
    created = datetime.strptime(answer["created_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert int(before) <= created.timestamp() <= after
    jalali = jdatetime.datetime.fromgregorian(datetime=created.astimezone(TEHRAN))
    assert JALALI_TEXT.fullmatch(answer["created_at_jalali"])
    assert answer["created_at_jalali"] == jalali.strftime("%Y/%m/%d %H:%M:%S")
    year, sequence = sequence_of(answer["number"])
    assert year == jalali.year
    assert sequence >= 1
    assert answer["recipients"] == [
        {"address": "welfare@kb", "kind": "to", "status": "queued"},
        {"address": "health-univ@kb", "kind": "to", "status": "queued"},
        {"address": "edu-dena@kb", "kind": "cc", "status": "queued"},
    ]
    # The sender reads it back as submitted, with full addresses.
    view = show(edu, answer["id"])
    assert view["id"] == answer["id"]
    assert view["number"] == answer["number"]
    assert view["sender"] == "edu@kb"
    assert view["to"] == ["welfare@kb", "health-univ@kb"]
    assert view["cc"] == ["edu-dena@kb"]
    assert view["priority"] == "urgent"
    assert view["classification"] == "normal"
    assert view["in_reply_to"] is None
    assert view["attachments"] == []
    assert view["created_at"] == answer["created_at"]


def test_letters_to_agencies_not_yet_enrolled_are_accepted(edu: AgencyClient) -> None:
    answer = submit(edu, letter(to=["agri@kb"])).json()
    assert answer["recipients"] == [{"address": "agri@kb", "kind": "to", "status": "queued"}]


def test_limits_that_are_allowed_are_accepted(edu: AgencyClient) -> None:
    """The largest values the contract allows are not refused."""
    body = "ب" * 1_000_000
    answer = submit(
        edu,
        letter(
            subject="س" * 500,
            body=body,
            priority="immediate",
            classification="secret",
            cc=[],
            in_reply_to=None,
            attachments=[],
        ),
    ).json()
    view = show(edu, answer["id"])
    assert view["body"] == body
    assert len(view["subject"]) == 500
    assert (view["priority"], view["classification"]) == ("immediate", "secret")
    assert submit(edu, letter(body="")).status == 201


# -- 400 ------------------------------------------------------------------------


def test_bodies_that_are_not_json_objects_are_invalid_json(edu: AgencyClient) -> None:
    json_type = {"Content-Type": "application/json"}
    for raw in (b"{", b"", b"[]", b'"to"', b"\xff\xfe{}", b'{"to": ["welfare"],}'):
        response = edu.request("POST", LETTERS, body=raw, headers=json_type)
        assert_error(response, 400, "invalid_json")


TOO_MANY = [f"a{i}" for i in range(101)]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"to": None}, "to"),
        ({"to": []}, "to"),
        ({"to": "welfare"}, "to"),
        ({"to": TOO_MANY}, "to"),
        ({"to": ["welfare", "not an address"]}, "to[1]"),
        ({"to": ["welfare", "edu@"]}, "to[1]"),
        ({"to": ["welfare", "@kb"]}, "to[1]"),
        ({"to": [7]}, "to[0]"),
        ({"cc": TOO_MANY}, "cc"),
        ({"cc": "roads"}, "cc"),
        ({"cc": ["roads", "a b@kb"]}, "cc[1]"),
        ({"subject": None}, "subject"),
        ({"subject": ""}, "subject"),
        ({"subject": "   "}, "subject"),
        ({"subject": "س" * 501}, "subject"),
        ({"subject": 5}, "subject"),
        ({"body": "x" * 1_000_001}, "body"),
        ({"body": ["x"]}, "body"),
        ({"priority": "high"}, "priority"),
        ({"priority": None}, "priority"),
        ({"classification": "top-secret"}, "classification"),
        ({"classification": "Secret "}, "classification"),
        ({"in_reply_to": "not-a-letter-id"}, "in_reply_to"),
        ({"in_reply_to": 12}, "in_reply_to"),
        ({"bcc": ["roads"]}, "bcc"),
        ({"attachments": "report.pdf"}, "attachments"),
        ({"attachments": [{"filename": "x", "data": ""}] * 21}, "attachments"),
        ({"attachments": ["report.pdf"]}, "attachments[0]"),
        ({"attachments": [{"filename": "a/b.pdf", "data": "AAAA"}]}, "attachments[0].filename"),
        ({"attachments": [{"filename": "..\\b.pdf", "data": "AAAA"}]}, "attachments[0].filename"),
        ({"attachments": [{"filename": "", "data": "AAAA"}]}, "attachments[0].filename"),
        (  # right-to-left override: "report\u202efdp.exe" shows as "reportexe.pdf"
            {"attachments": [{"filename": "report\u202efdp.exe", "data": "AAAA"}]},
            "attachments[0].filename",
        ),
        ({"attachments": [{"filename": "a\nb.pdf", "data": "AAAA"}]}, "attachments[0].filename"),
        ({"attachments": [{"data": "AAAA"}]}, "attachments[0].filename"),
        (
            {"attachments": [{"filename": "a.pdf", "content_type": "pdf", "data": "AAAA"}]},
            "attachments[0].content_type",
        ),
        ({"attachments": [{"filename": "a.pdf", "data": "@@@@"}]}, "attachments[0].data"),
        ({"attachments": [{"filename": "a.pdf", "data": "AAA"}]}, "attachments[0].data"),
        ({"attachments": [{"filename": "a.pdf", "data": 5}]}, "attachments[0].data"),
        (
            {
                "attachments": [
                    {"filename": "ok.txt", "data": "AAAA"},
                    {"filename": "b.txt", "data": "QUJD" * 10 + "!!!!"},
                ]
            },
            "attachments[1].data",
        ),
    ],
)
def test_each_bad_field_is_named(edu: AgencyClient, changes: dict[str, Any], field: str) -> None:
    document = letter(**changes)
    for name, value in changes.items():
        if value is None and name in ("to", "subject"):
            del document[name]  # missing rather than null
    assert_error(submit(edu, document, expect=None), 400, "invalid_field", field)


def test_text_that_cannot_be_stored_as_utf8_is_refused(edu: AgencyClient) -> None:
    """JSON can spell a lone surrogate (\\ud800) and NUL: no letter text holds them."""
    cases = [
        ("subject", b'{"to": ["welfare"], "subject": "x\\ud800y"}'),
        ("body", b'{"to": ["welfare"], "subject": "s", "body": "x\\udfffy"}'),
        ("body", b'{"to": ["welfare"], "subject": "s", "body": "x\\u0000y"}'),
        (
            "attachments[0].filename",
            b'{"to": ["welfare"], "subject": "s",'
            b' "attachments": [{"filename": "a\\ud800.pdf", "data": "AAAA"}]}',
        ),
    ]
    for name, raw in cases:
        response = edu.request(
            "POST", LETTERS, body=raw, headers={"Content-Type": "application/json"}
        )
        assert_error(response, 400, "invalid_field", name)


def test_a_bad_idempotency_key_is_named(edu: AgencyClient) -> None:
    for key in ("k" * 129, "tab\there"):
        assert_error(
            submit(edu, letter(), key=key, expect=None), 400, "invalid_field", "Idempotency-Key"
        )


# -- 401, 415 -------------------------------------------------------------------


def test_without_a_token_nothing_is_sent_or_shown(govnode_client: ClientFactory) -> None:
    client = govnode_client("edu")
    for method, path in (
        ("POST", LETTERS),
        ("GET", f"{LETTERS}/01JD0000000000000000000000"),
        ("GET", f"{LETTERS}/01JD0000000000000000000000/events"),
        ("GET", f"{LETTERS}/01JD0000000000000000000000/attachments/0"),
        ("POST", f"{LETTERS}/01JD0000000000000000000000/read"),
        ("GET", "/api/v1/inbox"),
        ("GET", "/api/v1/outbox"),
    ):
        for token in ("", "forged"):
            response = client.request(
                method, path, json_body=letter() if method == "POST" else None, token=token
            )
            assert_error(response, 401, "unauthenticated")
            assert response.headers.get("www-authenticate") == "Bearer"


def test_a_body_that_is_not_json_is_415(edu: AgencyClient) -> None:
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {"Content-Type": content_type} if content_type else {}
        response = edu.request("POST", LETTERS, body=b'{"to": ["welfare"]}', headers=headers)
        assert response.status == 415, response.body
        assert response.error_code == "invalid_json"
    # A charset parameter is still JSON.
    response = edu.request(
        "POST",
        LETTERS,
        body='{"to": ["welfare"], "subject": "ص"}'.encode(),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status == 201, response.body


# -- 404, never 403 ---------------------------------------------------------------


def test_a_letter_is_only_shown_to_its_sender_and_recipients(
    edu: AgencyClient, govnode_client: ClientFactory
) -> None:
    sent = submit(edu, letter(to=["welfare"], attachments=[{"filename": "a", "data": "AAAA"}]))
    letter_id = sent.json()["id"]
    wait_for(edu, letter_id)
    outsider = logged_in(govnode_client, "health-univ")
    unknown = "01JD0000000000000000000000"
    for letter_ref in (letter_id, unknown, "not-a-ulid", letter_id.lower()):
        for method, path in (
            ("GET", f"{LETTERS}/{letter_ref}"),
            ("GET", f"{LETTERS}/{letter_ref}/events"),
            ("GET", f"{LETTERS}/{letter_ref}/attachments/0"),
            ("POST", f"{LETTERS}/{letter_ref}/read"),
        ):
            response = outsider.request(method, path)
            assert_error(response, 404, "not_found")
    # The outsider's 404 for a real letter is the same as for no letter at all.
    real = outsider.request("GET", f"{LETTERS}/{letter_id}")
    none = outsider.request("GET", f"{LETTERS}/{unknown}")
    assert real.body == none.body
    # The sender is no recipient: it cannot mark its own letter read.
    assert_error(edu.request("POST", f"{LETTERS}/{letter_id}/read"), 404, "not_found")
    welfare = logged_in(govnode_client, "welfare")
    assert welfare.request("GET", f"{LETTERS}/{letter_id}").status == 200


# -- 409 and idempotent repeats ---------------------------------------------------


def test_the_same_idempotency_key_and_body_answer_the_first_letter_again(
    roads: AgencyClient,
) -> None:
    key = f"roads-{uuid.uuid4()}"
    document = letter(to=["welfare", "edu"], subject="تکرار", attachments=[])
    first = submit(roads, document, key=key)
    sent = outbox_ids(roads)
    wait_for(roads, first.json()["id"])
    # Keys in another order are the same body.
    again = submit(roads, dict(reversed(list(document.items()))), key=key)
    assert again.json() == first.json()
    assert outbox_ids(roads) == sent
    next_number = sequence_of(submit(roads, letter()).json()["number"])
    assert next_number == (
        sequence_of(first.json()["number"])[0],
        sequence_of(first.json()["number"])[1] + 1,
    )


def test_the_same_idempotency_key_with_another_body_is_a_conflict(roads: AgencyClient) -> None:
    key = f"roads-{uuid.uuid4()}"
    first = submit(roads, letter(subject="اول"), key=key).json()
    sent = outbox_ids(roads)
    conflict = submit(roads, letter(subject="دوم"), key=key, expect=None)
    assert_error(conflict, 409, "conflict")
    assert outbox_ids(roads) == sent
    assert show(roads, first["id"])["subject"] == "اول"


def test_idempotency_keys_belong_to_one_agency(
    roads: AgencyClient, govnode_client: ClientFactory
) -> None:
    key = f"shared-{uuid.uuid4()}"
    first = submit(roads, letter(), key=key).json()
    other = submit(logged_in(govnode_client, "edu"), letter(), key=key).json()
    assert other["id"] != first["id"]
    assert other["number"] != first["number"]


def test_a_key_whose_first_use_failed_is_still_free(roads: AgencyClient) -> None:
    key = f"roads-{uuid.uuid4()}"
    assert_error(
        submit(roads, letter(to=["nobody"]), key=key, expect=None), 422, "unknown_recipient"
    )
    assert submit(roads, letter(subject="دوباره"), key=key).status == 201


# -- 422 --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"to": ["no-such-agency"]}, "to[0]"),
        ({"to": ["welfare", "nobody@kb"]}, "to[1]"),
        ({"cc": ["ghost-office"]}, "cc[0]"),
        ({"to": ["welfare", "x@mars"]}, "to[1]"),
        ({"cc": ["edu-dena", "edu@mars"]}, "cc[1]"),
    ],
)
def test_unknown_recipients_are_named_and_nothing_is_stored(
    roads: AgencyClient, changes: dict[str, Any], field: str
) -> None:
    before = submit(roads, letter()).json()
    sent = outbox_ids(roads)
    response = submit(roads, letter(**changes), expect=None)
    assert_error(response, 422, "unknown_recipient", field)
    assert outbox_ids(roads) == sent
    after = submit(roads, letter()).json()
    year, sequence = sequence_of(before["number"])
    assert sequence_of(after["number"]) == (year, sequence + 1), "a number was consumed"


def test_a_refused_reply_consumes_no_number(roads: AgencyClient) -> None:
    before = submit(roads, letter()).json()
    response = submit(roads, letter(in_reply_to="01JD0000000000000000000000"), expect=None)
    assert_error(response, 400, "invalid_field", "in_reply_to")
    after = submit(roads, letter()).json()
    year, sequence = sequence_of(before["number"])
    assert sequence_of(after["number"]) == (year, sequence + 1)


# -- Persian text -------------------------------------------------------------------

SUBJECT = (
    "\u200fدرخواست\u200cهای اداره\u200c کل — مي\u200cخواهيم "  # RLM, ZWNJ, Arabic yeh
    "كتاب ۱۴۰۵ و ١٤٠٥ 🇮🇷👩🏽‍💼 «نقل» \u202bembedded\u202c ی\u0654 ي"  # digits, emoji, RLE/PDF
)
BODY_LINE = (
    "بسمه\u200cتعالی\r\nبا سلام، احتراماً به استحضار می\u200cرساند: مبلغ ۱٬۲۳۴٬۵۶۷ ریال "
    "— Arabic: يحيى كريم — emoji 🙏🏻 — marks \u200e\u200f\u2067isolate\u2069 "
    "diacritics: مُحَمَّد — tatweel: بـــــاشد\t\n"
)


def test_persian_subject_and_body_come_back_byte_for_byte(
    edu: AgencyClient, govnode_client: ClientFactory
) -> None:
    body = (BODY_LINE * (300_000 // len(BODY_LINE.encode("utf-8")) + 1)) + "  \u200c"
    assert len(body.encode("utf-8")) > 300_000
    answer = submit(edu, letter(to=["welfare"], subject=SUBJECT, body=body)).json()
    wait_for(edu, answer["id"])
    welfare = logged_in(govnode_client, "welfare")
    for reader in (edu, welfare):
        view = show(reader, answer["id"])
        assert view["subject"].encode("utf-8") == SUBJECT.encode("utf-8")
        assert view["body"].encode("utf-8") == body.encode("utf-8")
    (summary,) = [
        item for item in walk(welfare, "/api/v1/inbox", limit=50) if item["id"] == answer["id"]
    ][:1]
    assert summary["subject"].encode("utf-8") == SUBJECT.encode("utf-8")


# -- numbers under concurrency -------------------------------------------------------


def test_forty_concurrent_letters_get_forty_consecutive_numbers(
    govnode_client: ClientFactory,
) -> None:
    token = logged_in(govnode_client, "edu").token
    clients = [govnode_client("edu") for _ in range(40)]
    start = threading.Barrier(len(clients))
    answers: list[Response | BaseException] = [RuntimeError("not run")] * len(clients)

    def send(index: int) -> None:
        try:
            start.wait(timeout=10)
            answers[index] = clients[index].request(
                "POST",
                LETTERS,
                json_body=letter(to=["welfare", "roads"], subject=f"هم‌زمان {index}"),
                token=token,
            )
        except BaseException as exc:  # noqa: BLE001 - reported below
            answers[index] = exc

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    responses = [a for a in answers if isinstance(a, Response)]
    assert len(responses) == 40, [a for a in answers if not isinstance(a, Response)]
    assert [r.status for r in responses] == [201] * 40, [r.body for r in responses]
    numbers = [sequence_of(r.json()["number"]) for r in responses]
    assert len({r.json()["id"] for r in responses}) == 40
    years = {year for year, _ in numbers}
    assert len(years) == 1
    sequences = sorted(sequence for _, sequence in numbers)
    assert sequences == list(range(sequences[0], sequences[0] + 40))


def test_concurrent_repeats_of_one_idempotency_key_register_one_letter(
    govnode_client: ClientFactory,
) -> None:
    """A client retrying in a hurry (or several workers of it) gets one letter, one number."""
    sender = logged_in(govnode_client, "health-univ")
    sent = outbox_ids(sender)
    clients = [govnode_client("health-univ") for _ in range(10)]
    key = f"storm-{uuid.uuid4()}"
    document = letter(to=["welfare"], subject="تکرار هم‌زمان")
    start = threading.Barrier(len(clients))
    answers: list[Response | None] = [None] * len(clients)

    def send(index: int) -> None:
        start.wait(timeout=10)
        answers[index] = clients[index].request(
            "POST",
            LETTERS,
            json_body=document,
            headers={"Idempotency-Key": key},
            token=sender.token,
        )

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert all(a is not None and a.status == 201 for a in answers), answers
    assert len({a.body for a in answers if a is not None}) == 1
    assert len(outbox_ids(sender)) == len(sent) + 1


def test_a_chunked_submission_without_content_length_is_registered(edu: AgencyClient) -> None:
    """`curl -T -` and streaming clients send no Content-Length."""
    data = bytes(range(256)) * 1200  # 300 KB: past the size parsed on the reactor
    document = letter(
        subject="بدون طول",
        attachments=[{"filename": "a.bin", "data": base64.b64encode(data).decode()}],
    )
    raw = json.dumps(document, ensure_ascii=False).encode("utf-8")
    parts = urlsplit(edu.base_url)
    connection = http.client.HTTPSConnection(
        parts.hostname or "127.0.0.1",
        parts.port,
        context=tls_context(edu.ca, edu.cert, edu.key),
        timeout=15,
    )
    try:
        connection.request(
            "POST",
            LETTERS,
            body=iter([raw[:1000], raw[1000:]]),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {edu.token}"},
            encode_chunked=True,
        )
        answer = connection.getresponse()
        body = answer.read()
    finally:
        connection.close()
    assert answer.status == 201, body
    letter_id = json.loads(body)["id"]
    assert show(edu, letter_id)["attachments"][0]["size"] == len(data)
    assert edu.request("GET", f"{LETTERS}/{letter_id}/attachments/0").body == data
