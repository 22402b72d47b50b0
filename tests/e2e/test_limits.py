"""`[limits]` against a real node over loopback TLS: connections, requests in
progress, head sizes, slow clients and the letter rate, each per agency where
that is the point (another agency is served meanwhile).

The nodes run one API process: the limits are counted per process.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import time
import urllib.request
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from govnode.testing.client import AgencyClient, Response, tls_context
from govnode.testing.home import configure
from govnode.testing.process import NodeProcess
from govnode.testing.pytest_plugin import NodeHome, client_for, make_node_home
from govnode.testing.slapd import Slapd

HEADER_TIMEOUT = 2.0
IDLE_TIMEOUT = 4.0
PER_MINUTE = 12  # one letter every 5 s...
BURST = 2  # ...after the first two


@pytest.fixture(scope="module")
def tight(
    tmp_path_factory: pytest.TempPathFactory, govnode_slapd: Slapd
) -> Iterator[tuple[NodeHome, NodeProcess]]:
    """A node with small per-agency limits, head limits and timeouts."""
    home = make_node_home(tmp_path_factory.mktemp("tight"), govnode_slapd)
    configure(
        home.path,
        processes=1,
        max_connections_per_agency=3,
        max_requests_per_agency=2,
        max_header_bytes=2048,
        max_headers=20,
        max_url_bytes=1024,
        header_timeout=HEADER_TIMEOUT,
        idle_timeout=IDLE_TIMEOUT,
        submissions_per_minute=PER_MINUTE,
        submissions_burst=BURST,
    )
    node = NodeProcess(home.path).start()
    yield home, node
    node.stop()


def tls_socket(home: NodeHome, node: NodeProcess, code: str) -> ssl.SSLSocket:
    """A connection with `code`'s certificate, handshake done."""
    files = home.clients[code]
    parts = urlsplit(node.api_url)
    raw = socket.create_connection((parts.hostname, parts.port), timeout=15)
    return tls_context(files.ca, files.cert, files.key).wrap_socket(
        raw, server_hostname=parts.hostname
    )


def read_answer(sock: ssl.SSLSocket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP response (its Content-Length's worth of body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers.get("content-length", "0")):
        chunk = sock.recv(65536)
        assert chunk, "closed in the middle of the body"
        body += chunk
    return int(lines[0].split()[1]), headers, body


def closed_by_node(sock: ssl.SSLSocket) -> bool:
    """Whether the node closes `sock` (within the socket's timeout), reading what
    it still sends."""
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except (ConnectionResetError, ssl.SSLError):
        pass
    return True


def openapi(client: AgencyClient) -> Response:
    return client.request("GET", "/api/v1/openapi.json")


def logged_in(home: NodeHome, node: NodeProcess, code: str) -> AgencyClient:
    client = client_for(home, node, code)
    assert client.login(code, f"demo-{code}").status == 200
    return client


def test_connections_over_the_agency_limit_get_429_while_another_agency_gets_in(
    tight: tuple[NodeHome, NodeProcess],
) -> None:
    home, node = tight
    held = [client_for(home, node, "roads") for _ in range(3)]
    try:
        for client in held:
            assert openapi(client).status == 200  # each connection open and counted
        with client_for(home, node, "roads") as fourth:
            refused = openapi(fourth)
        assert (refused.status, refused.error_code) == (429, "rate_limited")
        assert int(refused.headers["retry-after"]) >= 1
        with client_for(home, node, "health-univ") as other:
            assert openapi(other).status == 200
        held.pop().close()
        # The node counts the closed connection once it sees it go: a bounded wait.
        for _ in range(50):
            with client_for(home, node, "roads") as again:
                if openapi(again).status == 200:
                    break
            time.sleep(0.1)
        else:
            pytest.fail("roads never got a connection back")
    finally:
        for client in held:
            client.close()


def test_requests_in_progress_over_the_agency_limit_get_429(
    tight: tuple[NodeHome, NodeProcess],
) -> None:
    home, node = tight
    # Two logins whose bodies are still on their way: two requests in progress.
    holders = [tls_socket(home, node, "edu-dena") for _ in range(2)]
    try:
        for sock in holders:
            sock.sendall(
                b"POST /api/v1/auth/token HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
                b'{"username": '
            )
        statuses = []
        for _ in range(50):  # until the node has read both heads
            with client_for(home, node, "edu-dena") as third:
                answer = openapi(third)
            statuses.append(answer.status)
            if answer.status == 429:
                break
            time.sleep(0.05)
        assert statuses[-1] == 429, statuses
        assert answer.error_code == "rate_limited"
        assert answer.headers["retry-after"] == "1"
        with client_for(home, node, "welfare") as other:
            assert openapi(other).status == 200
    finally:
        for sock in holders:
            sock.close()
    for _ in range(50):
        with client_for(home, node, "edu-dena") as later:
            if openapi(later).status == 200:
                break
        time.sleep(0.1)
    else:
        pytest.fail("edu-dena was still refused after its requests ended")


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({"X-Filler": "a" * 3000}, "one line longer than the whole limit"),
        ({f"X-Filler-{n}": "a" * 300 for n in range(10)}, "lines adding up over the limit"),
        ({f"X-Many-{n}": "1" for n in range(25)}, "more header lines than max_headers"),
    ],
)
def test_an_oversize_head_gets_431_json(
    tight: tuple[NodeHome, NodeProcess], headers: dict[str, str], why: str
) -> None:
    home, node = tight
    with client_for(home, node, "health-univ") as client:
        answer = client.request("GET", "/api/v1/openapi.json", headers=headers)
    assert (answer.status, answer.error_code) == (431, "too_large"), why


@pytest.mark.parametrize("length", [1500, 5000])
def test_a_long_url_gets_414_json(tight: tuple[NodeHome, NodeProcess], length: int) -> None:
    home, node = tight
    with client_for(home, node, "health-univ") as client:
        answer = client.request("GET", "/api/v1/directory", query={"q": "a" * length})
        assert (answer.status, answer.error_code) == (414, "too_large")
        # A URL within the limit is served (the token is missing: 401, from the API).
        assert client.request("GET", "/api/v1/directory", query={"q": "a"}).status == 401


def test_a_client_trickling_its_head_is_cut_off_while_others_are_served(
    tight: tuple[NodeHome, NodeProcess],
) -> None:
    home, node = tight
    request = b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"z" * 40 + b"\r\n\r\n"
    sent = 0
    answer = b""
    with tls_socket(home, node, "health-univ") as slow:
        slow.settimeout(1.0)  # one byte a second: the wait for an answer paces it
        with client_for(home, node, "welfare") as normal:
            for byte in request:
                try:
                    slow.sendall(bytes([byte]))
                except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                    break
                sent += 1
                if sent == 1:
                    assert openapi(normal).status == 200  # served meanwhile
                try:
                    chunk = slow.recv(65536)
                except TimeoutError:
                    continue
                except (ConnectionResetError, ssl.SSLError):
                    break
                answer += chunk
                if not chunk or answer.endswith(b"}}"):
                    break
    assert sent < len(request), "the whole head went through: nothing was cut off"
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer
    assert json.loads(body)["error"]["code"] == "timeout"


def test_an_idle_keep_alive_connection_is_closed(tight: tuple[NodeHome, NodeProcess]) -> None:
    home, node = tight
    with tls_socket(home, node, "health-univ") as sock:
        sock.sendall(b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, _ = read_answer(sock)
        assert status == 200
        assert headers.get("connection") != "close"  # kept alive...
        sock.settimeout(IDLE_TIMEOUT + 10)
        assert closed_by_node(sock)  # ...until it was idle too long


def test_an_event_stream_stays_open_past_the_idle_timeout(
    tight: tuple[NodeHome, NodeProcess],
) -> None:
    home, node = tight
    with logged_in(home, node, "welfare") as welfare:
        token = welfare.token
    with tls_socket(home, node, "welfare") as stream:
        request = f"GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
        stream.sendall(request.encode())
        assert stream.recv(64).startswith(b"HTTP/1.1 200")
        time.sleep(IDLE_TIMEOUT + 2)  # silent past the idle timeout
        with logged_in(home, node, "ostandari") as sender:
            sent = sender.request(
                "POST", "/api/v1/letters", json_body={"to": ["welfare"], "subject": "still there?"}
            )
        assert sent.status == 201
        letter = sent.json()["id"].encode()
        seen = b""
        while letter not in seen:
            chunk = stream.recv(65536)
            assert chunk, "the event stream was closed"
            seen += chunk


def send(client: AgencyClient, subject: str, key: str | None = None) -> Response:
    return client.request(
        "POST",
        "/api/v1/letters",
        json_body={"to": ["welfare"], "subject": subject},
        headers={"Idempotency-Key": key} if key else None,
    )


def two_keys(
    home: NodeHome, node: NodeProcess, client: AgencyClient, old: str, new: str, subject: str
) -> int:
    """The status of a letter sent with two Idempotency-Key headers, `old` first."""
    body = json.dumps({"to": ["welfare"], "subject": subject}).encode()
    with tls_socket(home, node, "edu") as sock:
        sock.sendall(
            b"POST /api/v1/letters HTTP/1.1\r\nHost: node\r\n"
            + f"Authorization: Bearer {client.token}\r\n".encode()
            + f"Idempotency-Key: {old}\r\nIdempotency-Key: {new}\r\n".encode()
            + b"Content-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        status, _headers, _body = read_answer(sock)
    return status


def outbox_subjects(client: AgencyClient) -> list[str]:
    answer = client.request("GET", "/api/v1/outbox", query={"limit": "100"})
    assert answer.status == 200
    return [letter["subject"] for letter in answer.json()["letters"]]


def test_the_letter_rate_gives_429_with_retry_after_per_agency(
    tight: tuple[NodeHome, NodeProcess],
) -> None:
    home, node = tight
    run = uuid.uuid4().hex[:8]
    with logged_in(home, node, "edu") as edu:
        first = send(edu, f"{run} first", key=f"{run}-first")
        assert first.status == 201
        statuses = [first.status]
        for n in range(6):  # the burst is 2: refused well within 6 more
            answer = send(edu, f"{run} refused {n}")
            statuses.append(answer.status)
            if answer.status == 429:
                break
        assert statuses.count(201) >= BURST, statuses
        assert statuses[-1] == 429, statuses
        assert answer.error_code == "rate_limited"
        wait = int(answer.headers["retry-after"])
        assert 1 <= wait <= 60 // PER_MINUTE
        refused_subject = f"{run} refused {len(statuses) - 2}"

        # A retry of an accepted letter gets its first answer, even now...
        replay = send(edu, f"{run} first", key=f"{run}-first")
        assert (replay.status, replay.json()["id"]) == (201, first.json()["id"])
        # ...a new key does not get through, nor a path spelled otherwise.
        assert send(edu, f"{run} new key", key=f"{run}-new").status == 429
        disguised = edu.request(
            "POST", "//api/v1/%6cetters", json_body={"to": ["welfare"], "subject": f"{run} new key"}
        )
        assert disguised.status in (404, 429)  # never registered
        # Nor a method in lower case (the router matches it), nor an old key
        # named first with a new one after it (the handler reads the last).
        lower = edu.request(
            "post", "/api/v1/letters", json_body={"to": ["welfare"], "subject": f"{run} new key"}
        )
        assert lower.status == 429, lower.body
        assert two_keys(home, node, edu, f"{run}-first", f"{run}-two", f"{run} new key") == 429

        # Another agency is not affected.
        with logged_in(home, node, "roads") as roads:
            assert send(roads, f"{run} from roads").status == 201

        # After the wait the same agency sends again (a bounded number of waits).
        for _ in range(3):
            time.sleep(wait)
            again = send(edu, refused_subject)
            if again.status == 201:
                break
            wait = int(again.headers["retry-after"])
        assert again.status == 201
        subjects = outbox_subjects(edu)
    assert subjects.count(refused_subject) == 1  # stored once: when it was accepted
    assert f"{run} new key" not in subjects
    assert subjects.count(f"{run} first") == 1


def refused_count(metrics: str, limit: str) -> float:
    prefix = f'govnode_limits_refused_total{{limit="{limit}"}} '
    lines = [line for line in metrics.splitlines() if line.startswith(prefix)]
    return float(lines[0].removeprefix(prefix)) if lines else 0.0


@pytest.fixture(scope="module")
def few(
    tmp_path_factory: pytest.TempPathFactory, govnode_slapd: Slapd
) -> Iterator[tuple[NodeHome, NodeProcess]]:
    """A node that takes three connections in all."""
    home = make_node_home(tmp_path_factory.mktemp("few"), govnode_slapd)
    configure(
        home.path,
        processes=1,
        max_connections=3,
        max_connections_per_agency=3,
        handshake_timeout=2.0,
    )
    node = NodeProcess(home.path).start()
    yield home, node
    node.stop()


def test_connections_over_the_total_are_closed_on_arrival(
    few: tuple[NodeHome, NodeProcess],
) -> None:
    home, node = few
    held = [tls_socket(home, node, code) for code in ("edu", "welfare", "roads")]
    try:
        with pytest.raises((ssl.SSLError, ConnectionResetError, OSError)):
            tls_socket(home, node, "ostandari").close()
        with urllib.request.urlopen(f"{node.admin_url}/metrics", timeout=10) as answer:
            metrics = answer.read().decode()
        assert refused_count(metrics, "connections") >= 1
        held.pop().close()
        for _ in range(50):  # until the node has seen the close
            with contextlib.suppress(ssl.SSLError, ConnectionResetError, OSError):
                with client_for(home, node, "ostandari") as client:
                    assert openapi(client).status == 200
                break
            time.sleep(0.1)
        else:
            pytest.fail("no connection was taken after one closed")
    finally:
        for sock in held:
            sock.close()


def test_a_connection_that_never_does_its_handshake_is_closed(
    few: tuple[NodeHome, NodeProcess],
) -> None:
    home, node = few
    parts = urlsplit(node.api_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=15) as silent:
        # Idle timeout is 60 s: an end well before that is the handshake timeout
        # (an abort: the node does not wait for a goodbye).
        try:
            ended = silent.recv(1) == b""
        except ConnectionResetError:
            ended = True
        assert ended
    with client_for(home, node, "edu") as client:
        assert openapi(client).status == 200
