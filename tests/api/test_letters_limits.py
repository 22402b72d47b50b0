"""413 `too_large`: the limits of `[limits]`, on a private node with small ones."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from govnode.testing.client import AgencyClient, tls_context
from govnode.testing.home import configure
from govnode.testing.process import NodeProcess
from govnode.testing.pytest_plugin import NodeHome, make_node_home
from govnode.testing.slapd import Slapd
from tests.api.test_letters import (
    LETTERS,
    assert_error,
    letter,
    outbox_ids,
    sequence_of,
    submit,
)

MAX_ATTACHMENT = 1024
MAX_BODY = 64 * 1024


@pytest.fixture(scope="module")
def small_node(
    tmp_path_factory: pytest.TempPathFactory, govnode_slapd: Slapd
) -> Iterator[tuple[NodeHome, NodeProcess]]:
    home = make_node_home(tmp_path_factory.mktemp("limits"), govnode_slapd, codes=("edu",))
    configure(home.path, max_attachment_bytes=MAX_ATTACHMENT, max_body_bytes=MAX_BODY)
    process = NodeProcess(home.path).start()
    yield home, process
    process.stop()


@pytest.fixture
def edu(small_node: tuple[NodeHome, NodeProcess]) -> Iterator[AgencyClient]:
    home, process = small_node
    files = home.clients["edu"]
    with AgencyClient(process.api_url, files.ca, files.cert, files.key) as client:
        assert client.login("edu", "demo-edu").status == 200
        yield client


def attached(size: int) -> dict[str, str]:
    return {"filename": "scan.bin", "data": base64.b64encode(b"\x07" * size).decode()}


def test_an_attachment_over_the_limit_is_413_and_nothing_is_stored(edu: AgencyClient) -> None:
    first = submit(edu, letter(attachments=[attached(MAX_ATTACHMENT)])).json()
    sent = outbox_ids(edu)
    for sizes, field in (
        ([MAX_ATTACHMENT + 1], "attachments[0].data"),
        ([10, MAX_ATTACHMENT * 3], "attachments[1].data"),
    ):
        response = submit(edu, letter(attachments=[attached(s) for s in sizes]), expect=None)
        assert_error(response, 413, "too_large", field)
    assert outbox_ids(edu) == sent
    after = submit(edu, letter()).json()
    year, sequence = sequence_of(first["number"])
    assert sequence_of(after["number"]) == (year, sequence + 1)


def test_a_body_over_the_limit_is_413_and_nothing_is_stored(edu: AgencyClient) -> None:
    sent = outbox_ids(edu)
    parts = urlsplit(edu.base_url)
    context = tls_context(edu.ca, edu.cert, edu.key)
    with (
        socket.create_connection((parts.hostname, parts.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=parts.hostname) as tls,
    ):
        # Only the head: the answer must come from Content-Length, not from the body.
        tls.sendall(
            f"POST {LETTERS} HTTP/1.1\r\nHost: node\r\nAuthorization: Bearer {edu.token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {MAX_BODY + 1}\r\n\r\n".encode()
        )
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), data
    assert json.loads(body)["error"]["code"] == "too_large"
    assert outbox_ids(edu) == sent
    # A body just under the limit is fine.
    assert submit(edu, letter(body="z" * (MAX_BODY - 200))).status == 201
