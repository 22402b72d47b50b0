"""Three real nodes on loopback: kb and fars reach each other only through center.

kb → center → fars carries letters with the hop trail at the sender; read
and answered come back the same two hops; kb knows fars's agencies and key
from center's directory; loops and forged notices are refused; center killed
mid-transfer, again and again, loses and duplicates nothing.
"""

from __future__ import annotations

import base64
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from govnode.domain.envelope import (
    Envelope,
    Receipt,
    SignedEnvelope,
    SignedReceipt,
    StatusNotice,
)
from govnode.domain.ids import derived_ulid, new_ulid
from govnode.pki import signing
from govnode.testing.client import AgencyClient
from govnode.testing.federation import post_as_node
from govnode.testing.home import (
    ClientFiles,
    add_peer,
    configure,
    enroll,
    free_port,
    init_home,
    set_line,
    sync_directory,
)
from govnode.testing.process import NodeProcess
from govnode.testing.slapd import Slapd

NAMES = {"kb": "استانداری کهگیلویه و بویراحمد", "center": "مرکز ملی", "fars": "استانداری فارس"}
REPORT = "گزارش سه‌ماهه\n".encode() * 200


@dataclass
class Network:
    homes: dict[str, Path]
    running: dict[str, NodeProcess]
    clients: dict[str, dict[str, ClientFiles]]

    def agency(self, node: str, code: str) -> AgencyClient:
        files = self.clients[node][code]
        client = AgencyClient(self.running[node].api_url, files.ca, files.cert, files.key)
        assert client.login(code, f"demo-{code}").status == 200
        return client

    def restart(self, node: str) -> None:
        self.running[node] = NodeProcess(self.homes[node]).start()


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory, govnode_slapd: Slapd) -> Iterator[Network]:
    root = tmp_path_factory.mktemp("relay")
    ports = {node: free_port() for node in NAMES}  # fixed: nodes restart where peers expect
    homes = {node: root / node for node in NAMES}
    configs, clients = {}, {}
    for node, name in NAMES.items():
        init_home(homes[node], govnode_slapd, node_id=node, name=name)
        configs[node] = configure(
            homes[node],
            processes=1,
            federation=f"127.0.0.1:{ports[node]}",
            retry_min=1,
            retry_max=2,
        )
        sync_directory(configs[node])
        clients[node] = enroll(configs[node], ["edu", "welfare"], root / f"{node}-clients")

    def url(node: str) -> str:
        return f"https://127.0.0.1:{ports[node]}"

    add_peer(homes["kb"], configs["center"], url("center"))
    add_peer(homes["fars"], configs["center"], url("center"))
    add_peer(homes["center"], configs["kb"], url("kb"))
    add_peer(homes["center"], configs["fars"], url("fars"))
    set_line(homes["kb"], 'default_route = "center"')
    set_line(homes["fars"], 'default_route = "center"')
    set_line(homes["center"], 'routes = { kb = "kb", fars = "fars" }')
    network = Network(homes, {}, clients)
    try:
        for node in ("fars", "center", "kb"):  # kb last: center has fars's directory by then
            network.restart(node)
        yield network
    finally:
        for process in network.running.values():
            process.stop()


def wait_for(check: Any, seconds: float = 30.0) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    return check()


def trail(client: AgencyClient, letter_id: str) -> list[tuple[str, str, str]]:
    events = client.request("GET", f"/api/v1/letters/{letter_id}/events").json()["events"]
    return [(e["address"], e["status"], e["node"]) for e in events]


def inbox(client: AgencyClient) -> list[dict[str, Any]]:
    letters: list[dict[str, Any]] = []
    after = ""
    while True:
        page = client.request("GET", f"/api/v1/inbox?limit=500{after}").json()
        letters += page["letters"]
        if not page["next"]:
            return letters
        after = f"&after={page['next']}"


def send(client: AgencyClient, **fields: Any) -> str:
    answer = client.request("POST", "/api/v1/letters", json_body=fields)
    assert answer.status == 201, answer.body
    return str(answer.json()["id"])


def test_kb_knows_fars_agencies_from_centers_directory(network: Network) -> None:
    with network.agency("kb", "edu") as edu:
        found = wait_for(lambda: edu.request("GET", "/api/v1/directory/welfare@fars").status == 200)
        assert found, "kb never learned fars's directory from center"
        entry = edu.request("GET", "/api/v1/directory/welfare@fars").json()
        assert entry["address"] == "welfare@fars"
        assert entry["status"] == "active"
        assert edu.request("GET", "/api/v1/directory/nobody@fars").status == 404
        refused = edu.request(
            "POST", "/api/v1/letters", json_body={"to": ["nobody@fars"], "subject": "آزمایش"}
        )
        assert (refused.status, refused.error_code) == (422, "unknown_recipient")
        assert refused.json()["error"]["field"] == "to[0]"


def test_a_letter_to_fars_goes_through_center_and_the_sender_sees_each_hop(
    network: Network,
) -> None:
    with network.agency("kb", "edu") as edu, network.agency("fars", "welfare") as welfare:
        letter_id = send(
            edu,
            to=["welfare@fars"],
            cc=["welfare@center"],
            subject="نامه به فارس از راه مرکز",
            body="با سلام و احترام",
            attachments=[
                {
                    "filename": "گزارش.txt",
                    "content_type": "text/plain",
                    "data": base64.b64encode(REPORT).decode(),
                }
            ],
        )
        assert wait_for(lambda: ("welfare@fars", "delivered", "fars") in trail(edu, letter_id))
        steps = trail(edu, letter_id)
        assert ("welfare@fars", "relayed", "center") in steps
        assert ("welfare@center", "delivered", "center") in steps
        order = [s for s in steps if s[0] == "welfare@fars"]
        assert [s[1] for s in order] == ["queued", "relayed", "delivered"], order
        shown = edu.request("GET", f"/api/v1/letters/{letter_id}").json()
        assert shown["status"] == "delivered"

        (received,) = [item for item in inbox(welfare) if item["id"] == letter_id]
        assert received["sender"] == "edu@kb"
        assert received["number"].startswith("KB-")
        attachment = welfare.request("GET", f"/api/v1/letters/{letter_id}/attachments/0")
        assert attachment.body == REPORT


def relay_metrics(node: NodeProcess) -> tuple[float, float]:
    """This node's recipients handed to the next node, and its relayed-latency count."""
    with urllib.request.urlopen(f"{node.admin_url}/metrics", timeout=10) as answer:
        samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(answer.read().decode())
            for sample in family.samples
        }
    return (
        samples.get(("govnode_letters_delivered_total", (("result", "relayed"),)), 0.0),
        samples.get(("govnode_delivery_seconds_count", (("path", "relayed"),)), 0.0),
    )


def test_each_hop_counts_the_letter_it_handed_on(network: Network) -> None:
    before = {node: relay_metrics(network.running[node]) for node in ("kb", "center")}
    with network.agency("kb", "edu") as edu:
        letter_id = send(edu, to=["welfare@fars"], subject="شمارش", body="...")
        assert wait_for(lambda: ("welfare@fars", "delivered", "fars") in trail(edu, letter_id))
    for node in ("kb", "center"):
        relayed, timed = relay_metrics(network.running[node])
        assert (relayed, timed) == (before[node][0] + 1, before[node][1] + 1), node


def test_read_and_answered_travel_back_two_hops(network: Network) -> None:
    with network.agency("kb", "edu") as edu, network.agency("fars", "welfare") as welfare:
        letter_id = send(edu, to=["welfare@fars"], subject="لطفا پاسخ دهید")
        assert wait_for(lambda: any(i["id"] == letter_id for i in inbox(welfare)))
        assert welfare.request("POST", f"/api/v1/letters/{letter_id}/read").status == 200
        assert wait_for(lambda: ("welfare@fars", "read", "fars") in trail(edu, letter_id))
        assert edu.request("GET", f"/api/v1/letters/{letter_id}").json()["status"] == "read"

        reply_id = send(
            welfare, to=["edu@kb"], subject="پاسخ: لطفا پاسخ دهید", in_reply_to=letter_id
        )
        assert wait_for(lambda: ("welfare@fars", "answered", "fars") in trail(edu, letter_id))
        assert edu.request("GET", f"/api/v1/letters/{letter_id}").json()["status"] == "answered"
        assert wait_for(lambda: any(i["id"] == reply_id for i in inbox(edu)))
        # The reply's own trail at fars: delivered at kb, two hops away.
        assert wait_for(lambda: ("edu@kb", "delivered", "kb") in trail(welfare, reply_id))


def _federation_post(
    network: Network, caller: str, callee: str, path: str, document: object
) -> tuple[int, dict[str, Any]]:
    """POST as node `caller` (its node certificate) to `callee`'s federation port."""
    return post_as_node(
        network.homes[caller],
        network.homes[callee] / "pki" / "ca.pem",
        f"{network.running[callee].federation_url}{path}",
        document,
    )


def _sign_as(network: Network, node: str) -> Any:
    return signing.signer((network.homes[node] / "pki" / "signing.key").read_bytes())


def test_an_envelope_that_has_passed_a_node_already_is_refused(network: Network) -> None:
    now_ms = int(time.time() * 1000)
    envelope = Envelope(
        id=new_ulid(now_ms),
        origin="kb",
        destination="fars",
        letter_id=new_ulid(now_ms),
        number=f"KB-1405-{now_ms % 1_000_000:06d}",
        sender="edu@kb",
        recipients=(("welfare@fars", "to"),),
        subject="دور",
        body="",
        priority="normal",
        classification="normal",
        in_reply_to=None,
        created_at_ms=now_ms,
    )
    signed = envelope.signed(_sign_as(network, "kb"))
    # As if center had handed it back to kb, which now offers it to center again.
    looped = SignedEnvelope(envelope, signed.signature, ("kb", "center", "kb"))
    status, answer = _federation_post(
        network, "kb", "center", "/federation/v1/envelopes", looped.to_json()
    )
    assert (status, answer["error"]["code"]) == (422, "routing_loop")


def test_a_forged_or_looping_notice_changes_nothing(network: Network) -> None:
    with network.agency("kb", "edu") as edu:
        letter_id = send(edu, to=["welfare@fars"], subject="برای جعل")
        assert wait_for(lambda: ("welfare@fars", "delivered", "fars") in trail(edu, letter_id))
        receipt = Receipt(
            envelope_id=derived_ulid(letter_id, "fars"),
            letter_id=letter_id,
            node="fars",
            address="welfare@fars",
            status="answered",
            at_ms=int(time.time() * 1000),
        )
        # Center claims fars answered, signing with its own key.
        forged = SignedReceipt(receipt, _sign_as(network, "center")(receipt.canonical()))
        looping = SignedReceipt(receipt, _sign_as(network, "fars")(receipt.canonical()))
        status, answer = _federation_post(
            network,
            "center",
            "kb",
            "/federation/v1/notices",
            {
                "notices": [
                    StatusNotice("kb", forged, ("center",)).to_json(),
                    StatusNotice("kb", looping, ("kb", "center")).to_json(),
                ]
            },
        )
        assert status == 200, answer
        assert [r["accepted"] for r in answer["results"]] == [False, False]
        assert "answered" not in {step[1] for step in trail(edu, letter_id)}
        assert edu.request("GET", f"/api/v1/letters/{letter_id}").json()["status"] == "delivered"


def test_center_killed_mid_transfer_again_and_again_loses_and_doubles_nothing(
    network: Network,
) -> None:
    with network.agency("kb", "edu") as edu:
        ids: list[str] = []
        stop = threading.Event()

        def submit() -> None:
            for n in range(40):
                ids.append(send(edu, to=["welfare@fars"], subject=f"نامه {n}"))
                if stop.wait(0.05):
                    return

        sender = threading.Thread(target=submit)
        sender.start()
        try:
            for _ in range(3):
                time.sleep(0.7)
                network.running["center"].kill()
                network.restart("center")
        finally:
            sender.join(60)
        assert len(ids) == 40

        def all_delivered() -> bool:
            return all(
                edu.request("GET", f"/api/v1/letters/{letter_id}").json()["status"] == "delivered"
                for letter_id in ids
            )

        assert wait_for(all_delivered, 90), [
            edu.request("GET", f"/api/v1/letters/{i}").json()["status"] for i in ids
        ]
    with network.agency("fars", "welfare") as welfare:
        received = [item["id"] for item in inbox(welfare)]
    assert all(received.count(letter_id) == 1 for letter_id in ids)
