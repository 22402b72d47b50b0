"""Oversized bodies are refused before they are read (a private node with small limits)."""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from govnode.testing.client import AgencyClient, tls_context
from govnode.testing.home import configure
from govnode.testing.process import NodeProcess
from govnode.testing.pytest_plugin import NodeHome, make_node_home
from govnode.testing.slapd import Slapd

LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def small(
    tmp_path_factory: pytest.TempPathFactory, govnode_slapd: Slapd
) -> Iterator[tuple[NodeHome, NodeProcess]]:
    home = make_node_home(tmp_path_factory.mktemp("limits"), govnode_slapd, codes=("edu",))
    configure(home.path, max_body_bytes=LIMIT, max_attachment_bytes=1024)
    node = NodeProcess(home.path).start()
    yield home, node
    node.stop()


def raw_tls(home: NodeHome, node: NodeProcess) -> ssl.SSLSocket:
    files = home.clients["edu"]
    parts = urlsplit(node.api_url)
    raw = socket.create_connection((parts.hostname, parts.port), timeout=10)
    return tls_context(files.ca, files.cert, files.key).wrap_socket(
        raw, server_hostname=parts.hostname
    )


def answer(sock: ssl.SSLSocket) -> tuple[int, dict[str, object]]:
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_a_huge_content_length_is_refused_without_waiting_for_the_body(
    small: tuple[NodeHome, NodeProcess],
) -> None:
    home, node = small
    with raw_tls(home, node) as sock:
        sock.sendall(
            b"POST /api/v1/letters HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\n"
            b"Content-Length: 10000000000\r\nExpect: 100-continue\r\n\r\n"
        )
        status, body = answer(sock)  # no body was sent: an answer proves it was not awaited
    assert status == 413
    assert body["error"]["code"] == "too_large"  # type: ignore[index]


def test_a_chunked_body_is_cut_off_at_the_limit(small: tuple[NodeHome, NodeProcess]) -> None:
    home, node = small
    with raw_tls(home, node) as sock:
        sock.sendall(
            b"POST /api/v1/letters HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        piece = b"x" * 16384
        try:
            for _ in range(2 * LIMIT // len(piece)):
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass  # the node closed the connection as soon as the limit was passed
        status, _ = answer(sock)
    assert status == 413


def test_an_attachment_over_its_limit_is_413_naming_it(
    small: tuple[NodeHome, NodeProcess],
) -> None:
    home, node = small
    files = home.clients["edu"]
    with AgencyClient(node.api_url, files.ca, files.cert, files.key) as client:
        assert client.login("edu", "demo-edu").status == 200
        response = client.request(
            "POST",
            "/api/v1/letters",
            json_body={
                "to": ["welfare"],
                "subject": "s",
                "attachments": [{"filename": "a.bin", "data": "A" * 2000}],
            },
        )
        assert (response.status, response.error_code) == (413, "too_large")
        assert response.json()["error"]["field"] == "attachments[0].data"
        ok = client.request(
            "POST", "/api/v1/letters", json_body={"to": ["welfare"], "subject": "small"}
        )
        assert ok.status == 201
