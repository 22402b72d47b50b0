"""Two real nodes on loopback made peers with `govnode peer export`: only a configured
peer's node certificate, issued by that peer's own CA, gets through."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import re
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from govnode.cli.main import main as govnode
from govnode.domain.envelope import Envelope, EnvelopeAttachment, Receipt, SignedEnvelope
from govnode.domain.ids import new_ulid
from govnode.pki import ca, signing
from govnode.pki.files import write_atomic
from govnode.testing.client import AgencyClient
from govnode.testing.federation import post_as_node
from govnode.testing.home import ClientFiles, configure, enroll, init_home, sync_directory
from govnode.testing.process import NodeProcess
from govnode.testing.slapd import Slapd

FARS_PEER = """
[[peers]]
id = "fars"
url = "https://127.0.0.1:1"
ca_cert = "peers/fars-ca.pem"
signing_key = "peers/fars-signing.pem"
"""


@dataclass
class Nodes:
    kb: Path
    center: Path
    center_node: NodeProcess
    fars_ca: ca.Issued
    center_clients: dict[str, ClientFiles]
    kb_clients: dict[str, ClientFiles]


def export(home: Path, out: Path, url: str) -> str:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = govnode(["--home", str(home), "peer", "export", "--out", str(out), "--url", url])
    assert code == 0
    return printed.getvalue().split("add to its govnode.toml:\n", 1)[1]


def add_peer(home: Path, files: dict[str, bytes], lines: str) -> None:
    (home / "peers").mkdir(exist_ok=True)
    for name, content in files.items():
        write_atomic(home / "peers" / name, content)
    with (home / "govnode.toml").open("a", encoding="utf-8") as config:
        config.write("\n" + lines + "\n")


def saved(issued: ca.Issued, folder: Path, name: str) -> tuple[Path, Path]:
    write_atomic(folder / f"{name}.pem", issued.cert_pem)
    write_atomic(folder / f"{name}.key", issued.key_pem)
    return folder / f"{name}.pem", folder / f"{name}.key"


def hello(url: str, ca_file: Path, cert: Path, key: Path) -> tuple[int, dict[str, object]]:
    context = ssl.create_default_context(cafile=str(ca_file))
    context.load_cert_chain(str(cert), str(key))
    try:
        with urllib.request.urlopen(f"{url}/federation/v1/hello", context=context, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory, govnode_slapd: Slapd) -> Iterator[Nodes]:
    root = tmp_path_factory.mktemp("federation")
    kb, center = root / "kb", root / "center"
    init_home(kb, govnode_slapd)
    init_home(center, govnode_slapd, node_id="center", name="مرکز ملی")
    with socket.socket() as probe:  # a fixed port: center restarts where kb expects it
        probe.bind(("127.0.0.1", 0))
        federation_port = probe.getsockname()[1]
    center_config = configure(center, processes=1, federation=f"127.0.0.1:{federation_port}")
    sync_directory(center_config)
    center_clients = enroll(center_config, ["edu", "welfare"], root / "center-clients")
    lines = export(kb, root / "kb-export", "https://127.0.0.1:8444")
    files = {path.name: path.read_bytes() for path in (root / "kb-export").iterdir()}
    add_peer(center, files, lines)
    # A third node, fars, that center also trusts: kb must not be able to speak for it.
    fars_ca = ca.create_ca("fars", "استانداری فارس", now=datetime.now(UTC))
    fars_signing = signing.public_pem(signing.create_signing_key())
    add_peer(center, {"fars-ca.pem": fars_ca.cert_pem, "fars-signing.pem": fars_signing}, FARS_PEER)
    node = NodeProcess(center).start()
    # ...and kb makes center its peer, with the URL center listens on.
    lines = export(center, root / "center-export", node.federation_url)
    files = {p.name: p.read_bytes() for p in (root / "center-export").iterdir()}
    add_peer(kb, files, lines)
    kb_config = configure(kb, processes=1, federation="127.0.0.1:0")
    sync_directory(kb_config)
    kb_clients = enroll(kb_config, ["edu"], root / "kb-clients")
    nodes = Nodes(kb, center, node, fars_ca, center_clients, kb_clients)
    yield nodes
    nodes.center_node.stop()  # the one running now: a test restarts it


def test_export_prints_lines_the_other_node_can_use(nodes: Nodes) -> None:
    config = (nodes.center / "govnode.toml").read_text(encoding="utf-8")
    assert 'id = "kb"' in config
    assert (nodes.center / "peers" / "kb-ca.pem").read_bytes() == (
        nodes.kb / "pki" / "ca.pem"
    ).read_bytes()
    assert nodes.center_node.federation_url.startswith("https://127.0.0.1:")


def test_a_peer_with_its_node_certificate_is_recognised(nodes: Nodes) -> None:
    status, answer = hello(
        nodes.center_node.federation_url,
        nodes.center / "pki" / "ca.pem",
        nodes.kb / "pki" / "node.pem",
        nodes.kb / "pki" / "node.key",
    )
    assert (status, answer) == (200, {"node": "center", "peer": "kb"})


def test_an_agency_certificate_of_a_peer_is_not_a_node(nodes: Nodes, tmp_path: Path) -> None:
    issued = ca.issue_agency_certificate(
        (nodes.kb / "pki" / "ca.pem").read_bytes(),
        (nodes.kb / "pki" / "ca.key").read_bytes(),
        code="edu",
        node_id="kb",
        now=datetime.now(UTC),
    )
    cert, key = saved(issued, tmp_path, "edu")
    status, answer = hello(
        nodes.center_node.federation_url,
        nodes.center / "pki" / "ca.pem",
        cert,
        key,
    )
    assert status == 403
    assert answer["error"]["code"] == "unknown_peer"  # type: ignore[index]


def test_one_peer_cannot_pass_for_another(nodes: Nodes, tmp_path: Path) -> None:
    """kb's CA issues a node certificate naming fars: center trusts kb's CA, but fars
    is vouched for by fars's CA only."""
    forged = ca.issue_node_certificate(
        (nodes.kb / "pki" / "ca.pem").read_bytes(),
        (nodes.kb / "pki" / "ca.key").read_bytes(),
        node_id="fars",
        dns_names=["localhost"],
        ip_addresses=["127.0.0.1"],
        now=datetime.now(UTC),
    )
    cert, key = saved(forged, tmp_path, "forged")
    status, answer = hello(
        nodes.center_node.federation_url,
        nodes.center / "pki" / "ca.pem",
        cert,
        key,
    )
    assert status == 403
    assert "fars" not in json.dumps(answer)


def test_a_node_of_an_unknown_ca_is_refused_in_the_handshake(nodes: Nodes, tmp_path: Path) -> None:
    stranger_ca = ca.create_ca("mars", "mars", now=datetime.now(UTC))
    stranger = ca.issue_node_certificate(
        stranger_ca.cert_pem,
        stranger_ca.key_pem,
        node_id="kb",
        dns_names=["localhost"],
        ip_addresses=["127.0.0.1"],
        now=datetime.now(UTC),
    )
    cert, key = saved(stranger, tmp_path, "stranger")
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        hello(
            nodes.center_node.federation_url,
            nodes.center / "pki" / "ca.pem",
            cert,
            key,
        )


def test_govnode_peers_says_who_answers_and_who_does_not(nodes: Nodes) -> None:
    # fars's URL leads to center, whose certificate fars's CA never issued.
    add_peer(
        nodes.kb,
        {
            "fars-ca.pem": nodes.fars_ca.cert_pem,
            "fars-signing.pem": signing.public_pem(signing.create_signing_key()),
        },
        FARS_PEER.replace("https://127.0.0.1:1", nodes.center_node.federation_url),
    )
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = govnode(["--home", str(nodes.kb), "peers", "--json"])
    assert code == 1  # one peer failing
    by_peer = {row["peer"]: row for row in json.loads(printed.getvalue())}
    assert by_peer["center"]["ok"] is True
    assert by_peer["center"]["detail"] == "knows us as kb"
    assert by_peer["center"]["certificate_expires"]
    assert by_peer["fars"]["ok"] is False
    assert by_peer["fars"]["detail"].startswith("TLS")

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        govnode(["--home", str(nodes.kb), "peers"])
    table = printed.getvalue()
    assert table.splitlines()[0].startswith("PEER")
    assert any(line.startswith("center") and " ok " in line for line in table.splitlines())
    assert any(line.startswith("fars") and "FAILING" in line for line in table.splitlines())


def test_a_running_node_watches_its_peers(nodes: Nodes) -> None:
    """kb, started with center as its peer, says hello to it and shows it in /metrics."""
    with NodeProcess(nodes.kb) as kb:
        deadline = time.monotonic() + 20
        text = ""
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"{kb.admin_url}/metrics", timeout=10) as answer:
                text = answer.read().decode()
            # The log line comes after the peer's directory is fetched (a database write).
            up = 'govnode_peer_up{peer="center"} 1.0' in text
            if up and "peer center is up" in kb.log_tail(200):
                break
            time.sleep(0.2)
        assert 'govnode_peer_up{peer="center"} 1.0' in text
        expiry = re.search(
            r'^govnode_peer_certificate_expiry_seconds\{peer="center"\} (\S+)$', text, re.M
        )
        assert expiry is not None
        assert float(expiry.group(1)) > 300 * 86400
        # The line comes after the directory fetch that follows the hello.
        assert wait_for(lambda: "peer center is up" in kb.log_tail(200))


# -- letters from kb to center's agencies ------------------------------------


def kb_envelope(nodes: Nodes, **changes: Any) -> SignedEnvelope:
    """A letter from edu@kb to two of center's agencies (one unknown), signed by kb."""
    now_ms = int(time.time() * 1000)
    envelope = Envelope(
        id=new_ulid(now_ms),
        origin="kb",
        destination="center",
        letter_id=new_ulid(now_ms),
        number=f"KB-1405-{now_ms % 1_000_000:06d}",
        sender="edu@kb",
        recipients=(("edu@center", "to"), ("nobody@center", "cc")),
        subject="گزارش استان به مرکز",
        body="با سلام\nگزارش پیوست است.",
        priority="normal",
        classification="normal",
        in_reply_to=None,
        created_at_ms=now_ms,
        attachments=(
            EnvelopeAttachment(
                "گزارش.txt", "text/plain", len(REPORT), hashlib.sha256(REPORT).hexdigest()
            ),
        ),
    )
    kb_key = (nodes.kb / "pki" / "signing.key").read_bytes()
    return replace(envelope, **changes).signed(signing.signer(kb_key))


REPORT = "گزارش ماهانه".encode()


def post(nodes: Nodes, document: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return post_as_node(
        nodes.kb,
        nodes.center / "pki" / "ca.pem",
        f"{nodes.center_node.federation_url}/federation/v1/envelopes",
        document,
    )


def with_files(signed: SignedEnvelope, data: bytes = REPORT) -> dict[str, Any]:
    document = signed.to_json()
    document["attachments"] = [
        {"sha256": a.sha256, "data": base64.b64encode(data).decode()}
        for a in signed.envelope.attachments
    ]
    return document


def center_inbox(nodes: Nodes) -> list[dict[str, Any]]:
    files = nodes.center_clients["edu"]
    with AgencyClient(nodes.center_node.api_url, files.ca, files.cert, files.key) as client:
        assert client.login("edu", "demo-edu").status == 200
        return list(client.request("GET", "/api/v1/inbox").json()["letters"])


def test_a_letter_from_kb_lands_in_centers_inbox_with_signed_receipts(nodes: Nodes) -> None:
    signed = kb_envelope(nodes)
    status, answer = post(nodes, with_files(signed))
    assert status == 200, answer
    center_key = signing.public_pem((nodes.center / "pki" / "signing.key").read_bytes())

    def keys(node: str) -> Any:
        return signing.verifier(center_key) if node == "center" else None

    receipts = {r.address: r for r in (Receipt.verified(doc, keys) for doc in answer["receipts"])}
    assert receipts["edu@center"].status == "delivered"
    assert receipts["nobody@center"].status == "failed"
    assert {r.envelope_id for r in receipts.values()} == {signed.envelope.id}

    inbox = center_inbox(nodes)
    letter = next(item for item in inbox if item["id"] == signed.envelope.letter_id)
    assert letter["number"] == signed.envelope.number
    assert letter["sender"] == "edu@kb"
    assert letter["subject"] == "گزارش استان به مرکز"
    files = nodes.center_clients["edu"]
    with AgencyClient(nodes.center_node.api_url, files.ca, files.cert, files.key) as client:
        assert client.login("edu", "demo-edu").status == 200
        shown = client.request("GET", f"/api/v1/letters/{signed.envelope.letter_id}")
        assert shown.status == 200, shown.body
        assert shown.json()["body"] == "با سلام\nگزارش پیوست است."
        report = client.request("GET", f"/api/v1/letters/{signed.envelope.letter_id}/attachments/0")
        assert (report.status, report.body) == (200, REPORT)

    # The peer retries (it never saw our answer): the same outcome, nothing stored twice.
    again_status, again = post(nodes, with_files(signed))
    assert again_status == 200
    assert again["replayed"] is True
    assert sorted(r["receipt"]["status"] for r in again["receipts"]) == ["delivered", "failed"]
    assert [item["id"] for item in center_inbox(nodes)].count(signed.envelope.letter_id) == 1


def test_tampered_or_misrouted_envelopes_are_refused_and_store_nothing(nodes: Nodes) -> None:
    before = len(center_inbox(nodes))
    signed = kb_envelope(nodes)
    tampered = SignedEnvelope(
        replace(signed.envelope, subject="نامه جعلی"), signed.signature, signed.hops
    )
    status, answer = post(nodes, with_files(tampered))
    assert (status, answer["error"]["code"]) == (422, "bad_signature")

    status, answer = post(nodes, with_files(signed, data=b"another file"))
    assert (status, answer["error"]["code"]) == (422, "attachment_mismatch")

    relayed_by_fars = SignedEnvelope(signed.envelope, signed.signature, ("kb", "fars"))
    status, answer = post(nodes, with_files(relayed_by_fars))
    assert (status, answer["error"]["code"]) == (403, "hop_mismatch")

    elsewhere = kb_envelope(nodes, destination="isfahan")
    status, answer = post(nodes, with_files(elsewhere))
    assert (status, answer["error"]["code"]) == (422, "no_route")

    status, answer = post(nodes, {"envelope": {"protocol": "x"}, "signature": "", "hops": []})
    assert (status, answer["error"]["field"]) == (422, "envelope.protocol")
    assert len(center_inbox(nodes)) == before


# -- kb sends through its relay worker --------------------------------------


def kb_agency(nodes: Nodes, kb: NodeProcess) -> AgencyClient:
    files = nodes.kb_clients["edu"]
    client = AgencyClient(kb.api_url, files.ca, files.cert, files.key)
    assert client.login("edu", "demo-edu").status == 200
    return client


def wait_for(check: Any, seconds: float = 20.0) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    return check()


def test_a_letter_from_an_agency_of_kb_reaches_center_and_the_sender_sees_it(
    nodes: Nodes,
) -> None:
    configure(nodes.kb, default_route="center", retry_min=1, retry_max=2)
    with NodeProcess(nodes.kb) as kb, kb_agency(nodes, kb) as edu:
        sent = edu.request(
            "POST",
            "/api/v1/letters",
            json_body={
                "to": ["edu@center"],
                "subject": "از استان به مرکز",
                "body": "با سلام",
                "attachments": [
                    {
                        "filename": "a.txt",
                        "content_type": "text/plain",
                        "data": base64.b64encode(REPORT).decode(),
                    }
                ],
            },
        )
        assert sent.status == 201, sent.body
        letter_id = sent.json()["id"]

        def trail() -> list[tuple[str, str]]:
            events = edu.request("GET", f"/api/v1/letters/{letter_id}/events").json()["events"]
            return [(e["status"], e["node"]) for e in events]

        assert wait_for(lambda: ("delivered", "center") in trail()), trail()
        assert edu.request("GET", f"/api/v1/letters/{letter_id}").json()["status"] == "delivered"
        assert letter_id in [item["id"] for item in center_inbox(nodes)]


def test_letters_wait_while_center_is_down_and_flow_when_it_is_back(nodes: Nodes) -> None:
    configure(nodes.kb, default_route="center", retry_min=1, retry_max=2)
    with NodeProcess(nodes.kb) as kb, kb_agency(nodes, kb) as edu:
        nodes.center_node.stop()
        ids = []
        for n in range(3):
            sent = edu.request(
                "POST", "/api/v1/letters", json_body={"to": ["edu@center"], "subject": f"نامه {n}"}
            )
            assert sent.status == 201, sent.body  # kb keeps accepting
            ids.append(sent.json()["id"])
        time.sleep(2.5)  # a few attempts fail meanwhile
        for letter_id in ids:
            shown = edu.request("GET", f"/api/v1/letters/{letter_id}").json()
            assert shown["status"] == "registered", shown
        # What the operator sees meanwhile.
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            assert govnode(["--home", str(nodes.kb), "queue", "--json"]) == 0
        (line,) = json.loads(printed.getvalue())
        assert (line["destination"], line["letters"]) == ("center", 3)
        assert line["most_attempts"] >= 1
        assert "unreachable" in line["last_error"]
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            assert govnode(["--home", str(nodes.kb), "queue", "show", ids[0]]) == 0
        assert printed.getvalue().startswith("edu@center  queued  attempts=")
        (center,) = [row for row in peers_json(nodes.kb) if row["peer"] == "center"]
        assert (center["ok"], center["backing_off"]) == (False, 3)
        assert center["next_attempt"] is not None
        nodes.center_node = NodeProcess(nodes.center).start()

        def all_delivered() -> bool:
            return all(
                edu.request("GET", f"/api/v1/letters/{letter_id}").json()["status"] == "delivered"
                for letter_id in ids
            )

        assert wait_for(all_delivered, 30)
        inbox = [item["id"] for item in center_inbox(nodes)]
        assert all(inbox.count(letter_id) == 1 for letter_id in ids)
        # Newest first: they arrived in the order they were submitted.
        assert [letter_id for letter_id in reversed(inbox) if letter_id in ids] == ids
        (center,) = [row for row in peers_json(nodes.kb) if row["peer"] == "center"]
        assert (center["ok"], center["backing_off"]) == (True, 0)
        last = datetime.fromisoformat(center["last_success"])
        assert datetime.now(UTC) - last < timedelta(minutes=1)


def peers_json(home: Path) -> list[dict[str, Any]]:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        govnode(["--home", str(home), "peers", "--json"])
    return list(json.loads(printed.getvalue()))


def test_when_center_answers_again_its_backlog_goes_at_once(nodes: Nodes) -> None:
    """Long backoffs (30 s and more) do not hold letters up once center answers again."""
    configure(nodes.kb, default_route="center", retry_min=30, retry_max=600)
    with NodeProcess(nodes.kb) as kb, kb_agency(nodes, kb) as edu:
        nodes.center_node.stop()
        waiting = [
            edu.request(
                "POST", "/api/v1/letters", json_body={"to": ["edu@center"], "subject": f"صف {n}"}
            ).json()["id"]
            for n in range(3)
        ]
        time.sleep(1.5)  # each has failed once and waits 30 s
        nodes.center_node = NodeProcess(nodes.center).start()
        # A new letter goes at once; its success releases the others.
        edu.request("POST", "/api/v1/letters", json_body={"to": ["edu@center"], "subject": "تازه"})

        def all_delivered() -> bool:
            return all(
                edu.request("GET", f"/api/v1/letters/{letter_id}").json()["status"] == "delivered"
                for letter_id in waiting
            )

        assert wait_for(all_delivered, 15)  # well before the 30 s backoff
        assert "waiting letters go now" in kb.log_tail(200)
