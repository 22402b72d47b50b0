"""`govnode_letter_event`: each committed step of a letter reaches the plugin, in
order, shortly after, in the primary process; a plugin that fails loses nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from govnode.testing.client import AgencyClient
from govnode.testing.process import NodeProcess
from govnode.testing.pytest_plugin import NodeHome, client_for, make_plugin_node_home
from govnode.testing.slapd import Slapd
from tests.hooks.conftest import ENROLLED, ClientFactory
from tests.hooks.support import (
    Call,
    Record,
    govnode,
    hook_errors,
    logged_in,
    mailbox_subjects,
    submit,
    unique,
)

EVENT = "govnode_letter_event"


def steps(calls: list[Call]) -> list[tuple[str, str | None]]:
    return [(call["kind"], call["address"]) for call in calls]


def read_and_answer(reader: AgencyClient, letter_id: str) -> str:
    """`reader` reads the letter and replies to it; the reply's id."""
    read = reader.request("POST", f"/api/v1/letters/{letter_id}/read")
    assert read.status == 200, read.body
    reply = submit(reader, to=["edu"], subject=unique("reply"), in_reply_to=letter_id)
    assert reply.status == 201, reply.body
    return str(reply.json()["id"])


def test_a_local_letter_is_registered_delivered_read_and_answered_in_order(
    client: ClientFactory, record: Record, probe_node: NodeProcess
) -> None:
    edu = logged_in(client("edu"), "edu")
    welfare = logged_in(client("welfare"), "welfare")
    sent = submit(edu, subject=unique("events"))
    assert sent.status == 201, sent.body
    letter_id, number = sent.json()["id"], sent.json()["number"]

    arrived = record.wait(lambda calls: len(calls) >= 2, EVENT, letter_id=letter_id)
    reply_id = read_and_answer(welfare, letter_id)
    calls = record.wait(lambda calls: len(calls) >= 4, EVENT, letter_id=letter_id)
    reply = record.wait(lambda calls: len(calls) >= 2, EVENT, letter_id=reply_id)

    assert steps(arrived) == [("registered", None), ("delivered", "welfare@kb")]
    assert steps(calls) == [
        ("registered", None),
        ("delivered", "welfare@kb"),
        ("read", "welfare@kb"),
        ("answered", "welfare@kb"),
    ]
    ids = [call["id"] for call in calls]
    assert ids == sorted(set(ids))  # each once, in the order they were committed
    assert all(call["number"] == number for call in calls)
    assert all(call["sender"] == "edu@kb" and call["node"] == "kb" for call in calls)
    assert steps(reply) == [("registered", None), ("delivered", "edu@kb")]
    # Only the primary process hands events on, whichever process took the letter.
    assert {call["pid"] for call in calls + reply} == {probe_node.pid}


def test_events_follow_the_order_of_commits_across_letters(
    client: ClientFactory, record: Record
) -> None:
    edu = logged_in(client("edu"), "edu")
    sent = [submit(edu, subject=unique("order")) for _ in range(5)]
    letter_ids = [answer.json()["id"] for answer in sent]

    record.wait(
        lambda calls: (
            {c["letter_id"] for c in calls if c["kind"] == "delivered"} >= set(letter_ids)
        ),
        EVENT,
    )

    ours = [c for c in record.calls(EVENT) if c["letter_id"] in letter_ids]
    assert [c["letter_id"] for c in ours if c["kind"] == "registered"] == letter_ids
    assert [c["id"] for c in ours] == sorted(c["id"] for c in ours)


def test_a_letter_the_operator_gives_up_on_is_an_expired_event(
    client: ClientFactory, record: Record, probe_home: NodeHome
) -> None:
    edu = logged_in(client("edu"), "edu")
    sent = submit(edu, to=["edu@fars"])  # waits for peer center, which never answers
    assert sent.status == 201, sent.body
    letter_id = sent.json()["id"]

    expired = govnode(probe_home.path, "queue", "expire", letter_id, "--reason", "آزمون")

    assert expired.returncode == 0, expired.stderr
    calls = record.wait(lambda calls: len(calls) >= 2, EVENT, letter_id=letter_id)
    assert steps(calls) == [("registered", None), ("expired", "edu@fars")]


# -- a plugin whose event hook fails -------------------------------------------------


@pytest.fixture(scope="module")
def failing(
    tmp_path_factory: pytest.TempPathFactory, govnode_slapd: Slapd
) -> Iterator[tuple[NodeHome, NodeProcess, Record]]:
    """A node whose probe raises on every event (after recording it)."""
    root = tmp_path_factory.mktemp("failing-events")
    record = root / "calls.jsonl"
    home = make_plugin_node_home(
        root,
        govnode_slapd,
        {"probe": {"record": str(record), "fail_events": True}},
        codes=ENROLLED,
    )
    node = NodeProcess(home.path).start()
    yield home, node, Record(record)
    node.stop()


def test_a_failing_event_hook_loses_no_letter_and_no_later_event(
    failing: tuple[NodeHome, NodeProcess, Record],
) -> None:
    home, node, record = failing
    with (
        client_for(home, node, "edu") as edu_client,
        client_for(home, node, "welfare") as welfare_client,
    ):
        edu = logged_in(edu_client, "edu")
        welfare = logged_in(welfare_client, "welfare")
        subjects = [unique("first"), unique("second")]
        first = submit(edu, subject=subjects[0])
        assert first.status == 201, first.body
        record.wait(lambda calls: len(calls) >= 2, EVENT, letter_id=first.json()["id"])

        second = submit(edu, subject=subjects[1])
        assert second.status == 201, second.body
        read = welfare.request("POST", f"/api/v1/letters/{second.json()['id']}/read")
        assert read.status == 200, read.body
        later = record.wait(lambda calls: len(calls) >= 3, EVENT, letter_id=second.json()["id"])

        # Both letters went their whole way: registered, delivered, readable, read.
        assert set(subjects) <= set(mailbox_subjects(welfare, "inbox"))
        shown = [
            welfare.request("GET", f"/api/v1/letters/{sent.json()['id']}")
            for sent in (first, second)
        ]
        assert [answer.status for answer in shown] == [200, 200]
        assert [answer.json()["status"] for answer in shown] == ["delivered", "read"]
    # Every step still reached the plugin after the earlier ones failed, and
    # each failure is counted.
    assert steps(later) == [
        ("registered", None),
        ("delivered", "welfare@kb"),
        ("read", "welfare@kb"),
    ]
    handed = len(record.calls(EVENT))
    assert handed >= 5
    assert hook_errors(node.admin_url, EVENT) == handed
