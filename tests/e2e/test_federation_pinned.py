"""Peers pinned by the SHA-256 of their node certificate instead of trusted by CA.

Both ends of kb ↔ center pin each other: letters flow, and a certificate
that is not the pinned one gets nothing, whoever issued it.
"""

from __future__ import annotations

import ssl
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from govnode.config import Config, load_config
from govnode.pki import ca, signing
from govnode.pki.files import write_atomic
from govnode.relay.peer_client import PeerUnreachable, call_peer
from govnode.testing.client import AgencyClient
from govnode.testing.home import (
    ClientFiles,
    configure,
    enroll,
    free_port,
    init_home,
    set_line,
    sync_directory,
)
from govnode.testing.process import NodeProcess
from govnode.testing.slapd import Slapd


@dataclass
class Pinned:
    homes: dict[str, Path]
    configs: dict[str, Config]
    running: dict[str, NodeProcess]
    edu: ClientFiles


def pin(home: Path, other: Path, other_id: str, port: int) -> None:
    """A [[peers]] entry for `other` with a fingerprint pin instead of a CA."""
    fingerprint = ca.fingerprint_sha256((other / "pki" / "node.pem").read_bytes())
    public = signing.public_pem((other / "pki" / "signing.key").read_bytes())
    write_atomic(home / "peers" / f"{other_id}-signing.pem", public)
    with (home / "govnode.toml").open("a", encoding="utf-8") as config:
        config.write(
            f'\n[[peers]]\nid = "{other_id}"\nurl = "https://127.0.0.1:{port}"\n'
            f'fingerprint = "{fingerprint}"\nsigning_key = "peers/{other_id}-signing.pem"\n'
        )


@pytest.fixture(scope="module")
def pinned(tmp_path_factory: pytest.TempPathFactory, govnode_slapd: Slapd) -> Iterator[Pinned]:
    root = tmp_path_factory.mktemp("pinned")
    ports = {"kb": free_port(), "center": free_port()}
    homes = {node: root / node for node in ports}
    configs = {}
    for node, port in ports.items():
        init_home(homes[node], govnode_slapd, node_id=node, name=node)
        configs[node] = configure(homes[node], processes=1, federation=f"127.0.0.1:{port}")
        sync_directory(configs[node])
        (homes[node] / "peers").mkdir()
    pin(homes["kb"], homes["center"], "center", ports["center"])
    pin(homes["center"], homes["kb"], "kb", ports["kb"])
    set_line(homes["kb"], 'default_route = "center"')
    set_line(homes["center"], 'routes = { kb = "kb" }')
    edu = enroll(configs["kb"], ["edu"], root / "clients")["edu"]
    running: dict[str, NodeProcess] = {}
    try:
        for node in ("center", "kb"):
            running[node] = NodeProcess(homes[node]).start()
        yield Pinned(homes, configs, running, edu)
    finally:
        for process in running.values():
            process.stop()


def test_letters_flow_between_pinned_peers(pinned: Pinned) -> None:
    with AgencyClient(
        pinned.running["kb"].api_url, pinned.edu.ca, pinned.edu.cert, pinned.edu.key
    ) as edu:
        assert edu.login("edu", "demo-edu").status == 200
        sent = edu.request(
            "POST", "/api/v1/letters", json_body={"to": ["welfare@center"], "subject": "پین"}
        )
        assert sent.status == 201, sent.body
        letter_id = sent.json()["id"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            shown = edu.request("GET", f"/api/v1/letters/{letter_id}").json()
            if shown["status"] == "delivered":
                break
            time.sleep(0.2)
        assert shown["status"] == "delivered", shown


def test_a_certificate_that_is_not_the_pinned_one_gets_nothing(
    pinned: Pinned, tmp_path: Path
) -> None:
    kb = load_config(pinned.homes["kb"] / "govnode.toml")  # with its pins
    (center,) = [peer for peer in kb.peers if peer.id == "center"]
    with pytest.raises(PeerUnreachable, match="pinned fingerprint"):
        call_peer(
            replace(center, fingerprint="0" * 64),
            "GET",
            "/federation/v1/hello",
            node_cert=kb.tls.node_cert,
            node_key=kb.tls.node_key,
        )
    # A second node certificate for kb from kb's own CA: right name, wrong pin.
    pki = pinned.homes["kb"] / "pki"
    other = ca.issue_node_certificate(
        (pki / "ca.pem").read_bytes(),
        (pki / "ca.key").read_bytes(),
        node_id="kb",
        dns_names=["localhost"],
        ip_addresses=["127.0.0.1"],
        now=datetime.now(UTC),
    )
    write_atomic(tmp_path / "node.pem", other.cert_pem)
    write_atomic(tmp_path / "node.key", other.key_pem)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.load_cert_chain(str(tmp_path / "node.pem"), str(tmp_path / "node.key"))
    url = f"{pinned.running['center'].federation_url}/federation/v1/hello"
    with pytest.raises((ssl.SSLError, ConnectionError, urllib.error.URLError)):
        urllib.request.urlopen(url, context=context, timeout=10).read()
