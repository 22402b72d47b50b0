"""GET /api/v1/events: server-sent events over mutual TLS, with resumption."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from govnode.testing.client import AgencyClient, tls_context
from govnode.testing.process import NodeProcess
from govnode.testing.pytest_plugin import NodeHome

ClientFactory = Callable[[str | None], AgencyClient]


@dataclass
class Frame:
    id: int | None
    event: str | None
    data: dict[str, object] | None


class Stream:
    """A raw SSE reader on its own HTTPS connection."""

    def __init__(
        self,
        home: NodeHome,
        node: NodeProcess,
        code: str,
        token: str,
        last_event_id: int | None = None,
    ) -> None:
        files = home.clients[code]
        parts = urlsplit(node.api_url)
        self.connection = http.client.HTTPSConnection(
            parts.hostname or "",
            parts.port,
            timeout=10,
            context=tls_context(files.ca, files.cert, files.key),
        )
        headers = {"Authorization": f"Bearer {token}"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        self.connection.request("GET", "/api/v1/events", headers=headers)
        self.response = self.connection.getresponse()

    def frames(self, deadline: float) -> Iterator[Frame]:
        fields: dict[str, str] = {}
        while time.monotonic() < deadline:
            line = self.response.fp.readline().decode("utf-8").rstrip("\n")
            if line == "":
                if "data" in fields or "id" in fields:
                    yield Frame(
                        int(fields["id"]) if "id" in fields else None,
                        fields.get("event"),
                        json.loads(fields["data"]) if "data" in fields else None,
                    )
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields[name] = value

    def close(self) -> None:
        self.connection.close()


def send(client: AgencyClient, to: str, subject: str) -> str:
    response = client.request("POST", "/api/v1/letters", json_body={"to": [to], "subject": subject})
    assert response.status == 201, response.body
    return str(response.json()["id"])


def test_recipient_and_sender_hear_of_a_letter_and_can_resume(
    govnode_home: NodeHome, govnode_node: NodeProcess, govnode_client: ClientFactory
) -> None:
    health = govnode_client("health-univ")
    assert health.login("health-univ", "demo-health-univ").status == 200
    ostandari = govnode_client("ostandari")
    assert ostandari.login("ostandari", "demo-ostandari").status == 200
    listening = Stream(govnode_home, govnode_node, "health-univ", str(health.token))
    assert listening.response.status == 200
    assert listening.response.getheader("content-type", "").startswith("text/event-stream")
    letter_id = send(ostandari, "health-univ", "بخشنامه واکسیناسیون")
    frames = listening.frames(time.monotonic() + 10)
    first = next(frame for frame in frames if frame.event == "letter")
    assert first.data is not None
    assert (first.data["id"], first.data["subject"]) == (letter_id, "بخشنامه واکسیناسیون")
    assert first.data["sender"] == "ostandari@kb"
    listening.close()

    # Two more letters arrive while nobody listens; resuming gets exactly those.
    missed = [send(ostandari, "health-univ", f"پیگیری {n}") for n in (1, 2)]
    time.sleep(0.5)
    resumed = Stream(
        govnode_home, govnode_node, "health-univ", str(health.token), last_event_id=first.id
    )
    got = []
    for frame in resumed.frames(time.monotonic() + 10):
        if frame.event == "letter" and frame.data is not None:
            got.append(frame.data["id"])
        if len(got) == 2:
            break
    resumed.close()
    assert got == missed

    # The sender's stream carries the status changes of what it sent.
    sender = Stream(
        govnode_home,
        govnode_node,
        "ostandari",
        str(ostandari.token),
        last_event_id=first.id - 1 if first.id else 0,
    )
    statuses = []
    for frame in sender.frames(time.monotonic() + 10):
        if frame.event == "status" and frame.data is not None:
            statuses.append((frame.data["id"], frame.data["status"]))
        if (letter_id, "delivered") in statuses:
            break
    sender.close()
    assert (letter_id, "delivered") in statuses


def test_a_bad_last_event_id_is_refused(
    govnode_home: NodeHome, govnode_node: NodeProcess, govnode_client: ClientFactory
) -> None:
    client = govnode_client("roads")
    assert client.login("roads", "demo-roads").status == 200
    response = client.request("GET", "/api/v1/events", headers={"Last-Event-ID": "x"})
    assert (response.status, response.error_code) == (400, "invalid_field")


def test_the_sender_hears_at_once_that_its_letter_was_read(
    govnode_home: NodeHome, govnode_node: NodeProcess, govnode_client: ClientFactory
) -> None:
    sender = govnode_client("edu-dena")
    assert sender.login("edu-dena", "demo-edu-dena").status == 200
    reader = govnode_client("welfare")
    assert reader.login("welfare", "demo-welfare").status == 200
    letter_id = send(sender, "welfare", "گزارش ماهانه")
    deadline = time.monotonic() + 10
    while reader.request("GET", f"/api/v1/letters/{letter_id}").status != 200:
        assert time.monotonic() < deadline, "never delivered"
        time.sleep(0.1)
    # Listening from now on (no Last-Event-ID): only what happens next arrives.
    listening = Stream(govnode_home, govnode_node, "edu-dena", str(sender.token))
    time.sleep(0.3)
    started = time.monotonic()
    assert reader.request("POST", f"/api/v1/letters/{letter_id}/read").status == 200
    heard = None
    for frame in listening.frames(time.monotonic() + 10):
        if frame.data is not None and frame.data["id"] == letter_id:
            heard = frame.data["status"]
            break
    listening.close()
    assert heard == "read"
    assert time.monotonic() - started < 5, "the read receipt waited for a heartbeat"
