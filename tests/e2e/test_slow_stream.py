"""A client that stops reading its event stream is cut off, not buffered for."""

from __future__ import annotations

import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

from govnode.testing.client import AgencyClient, tls_context
from govnode.testing.home import configure
from govnode.testing.process import NodeProcess
from govnode.testing.pytest_plugin import make_node_home
from govnode.testing.slapd import Slapd

LETTERS = 4500  # ~1 KB frames: more than the 4 MB a kernel send buffer grows to


def test_a_stalled_stream_is_dropped_and_the_node_carries_on(
    govnode_slapd: Slapd, tmp_path: Path
) -> None:
    home = make_node_home(tmp_path, govnode_slapd, codes=("edu", "welfare"))
    configure(home.path, event_stream_stall=1.0)
    node = NodeProcess(home.path).start()
    try:
        welfare = home.clients["welfare"]
        with AgencyClient(node.api_url, welfare.ca, welfare.cert, welfare.key) as login:
            assert login.login("welfare", "demo-welfare").status == 200
            token = login.token
        parts = urlsplit(node.api_url)
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting
        raw.settimeout(20)
        raw.connect((parts.hostname, parts.port))
        stream = tls_context(welfare.ca, welfare.cert, welfare.key).wrap_socket(
            raw, server_hostname=parts.hostname
        )
        request = f"GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
        stream.sendall(request.encode())
        assert stream.recv(64).startswith(b"HTTP/1.1 200")
        # ...and from now on this client reads nothing while its inbox fills up.

        edu = home.clients["edu"]

        def send(batch: range) -> int:
            sent = 0
            with AgencyClient(node.api_url, edu.ca, edu.cert, edu.key) as client:
                assert client.login("edu", "demo-edu").status == 200
                for n in batch:
                    response = client.request(
                        "POST",
                        "/api/v1/letters",
                        json_body={"to": ["welfare"], "subject": f"{n} " + "گ" * 480},
                    )
                    sent += response.status == 201
            return sent

        with ThreadPoolExecutor(8) as pool:
            assert sum(pool.map(send, [range(i, LETTERS, 8) for i in range(8)])) == LETTERS

        deadline = time.monotonic() + 30
        while "dropping the event stream of welfare@kb" not in node.log_tail(200):
            assert time.monotonic() < deadline, "the stalled stream was never dropped"
            time.sleep(0.2)
        # What the node had written before is still in flight; after it, the end.
        received = 0
        try:
            while chunk := stream.recv(65536):
                received += len(chunk)
        except (ConnectionResetError, ssl.SSLError):
            pass  # aborted: the node let go of it at once

        assert received < LETTERS * 1000, "everything was delivered: nothing was stalled"
        stream.close()
        # The node itself is fine and serves the same agency on a new connection.
        with AgencyClient(
            node.api_url, welfare.ca, welfare.cert, welfare.key, token=token
        ) as again:
            inbox = again.request("GET", "/api/v1/inbox", query={"limit": "1"})
            assert inbox.status == 200
    finally:
        node.stop()
