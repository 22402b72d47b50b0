"""Several `govnode serve` processes on one port (`listen.processes = 2`).

The kernel spreads connections over the processes; they share the SQLite
file, so numbers stay gapless, event streams hear of letters the other
process registered, /metrics counts both, and the primary restarts a
secondary that dies and takes its secondaries with it when it stops.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from govnode.testing.client import AgencyClient
from govnode.testing.home import configure
from govnode.testing.process import NodeProcess
from govnode.testing.pytest_plugin import NodeHome, make_node_home
from govnode.testing.slapd import Slapd
from tests.api.test_events import Stream

LETTERS_EACH = 15


@pytest.fixture(scope="module")
def two(
    tmp_path_factory: pytest.TempPathFactory, govnode_slapd: Slapd
) -> Iterator[tuple[NodeHome, NodeProcess]]:
    home = make_node_home(tmp_path_factory.mktemp("processes"), govnode_slapd)
    configure(home.path, processes=2)
    node = NodeProcess(home.path).start()
    yield home, node
    node.stop()


def client(home: NodeHome, node: NodeProcess, code: str) -> AgencyClient:
    files = home.clients[code]
    connection = AgencyClient(node.api_url, files.ca, files.cert, files.key)
    assert connection.login(code, f"demo-{code}").status == 200
    return connection


def established_per_process(node: NodeProcess) -> dict[int, int]:
    """How many open API connections each of the node's processes holds."""
    port = int(node.api_url.rsplit(":", 1)[1])
    inodes: set[str] = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "01":  # ESTABLISHED
            inodes.add(fields[9])
    counts = {}
    for pid in [node.pid, *node.secondary_pids()]:
        sockets = set()
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except FileNotFoundError:  # closed meanwhile
                continue
            if target.startswith("socket:["):
                sockets.add(target[8:-1])
        counts[pid] = len(sockets & inodes)
    return counts


def connections_on_every_process(
    home: NodeHome, node: NodeProcess, code: str, *, at_most: int = 60
) -> list[AgencyClient]:
    """Open connections (each used once) until every process of the node holds one.

    Which process accepts a connection is up to the kernel; 60 all landing on
    one process means the other is not accepting.
    """
    token = client(home, node, code).token
    files = home.clients[code]
    opened: list[AgencyClient] = []
    pids = [node.pid, *node.secondary_pids()]
    while len(opened) < at_most:
        connection = AgencyClient(node.api_url, files.ca, files.cert, files.key, token=token)
        assert connection.request("GET", f"/api/v1/directory/{code}").status == 200
        opened.append(connection)
        spread = established_per_process(node)
        if all(spread.get(pid, 0) > 0 for pid in pids):
            return opened
    raise AssertionError(f"{at_most} connections did not reach every process: {spread}")


def registered_count(node: NodeProcess) -> float:
    with urllib.request.urlopen(f"{node.admin_url}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    match = re.search(r"^govnode_letters_registered_total (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_both_processes_serve_and_numbers_stay_gapless(
    two: tuple[NodeHome, NodeProcess],
) -> None:
    home, node = two
    assert len(node.secondary_pids()) == 1
    before = registered_count(node)
    listening = Stream(home, node, "welfare", str(client(home, node, "welfare").token))
    senders = connections_on_every_process(home, node, "edu")

    def send(sender: AgencyClient) -> list[tuple[str, str]]:
        sent = []
        for n in range(LETTERS_EACH):
            response = sender.request(
                "POST", "/api/v1/letters", json_body={"to": ["welfare"], "subject": f"نامه {n}"}
            )
            assert response.status == 201, response.body
            sent.append((response.json()["id"], response.json()["number"]))
        return sent

    with ThreadPoolExecutor(len(senders)) as pool:
        sent = [letter for batch in pool.map(send, senders) for letter in batch]
    for sender in senders:
        sender.close()
    sequences = sorted(int(number.rsplit("-", 1)[1]) for _, number in sent)
    assert sequences == list(range(sequences[0], sequences[0] + len(sent)))

    # The stream (on whichever process) hears of every letter, from both processes,
    # soon: not at its next heartbeat (15 s), which reads the database anyway.
    expected = {letter_id for letter_id, _ in sent}
    heard: set[str] = set()
    for frame in listening.frames(time.monotonic() + 5):
        if frame.event == "letter" and frame.data is not None:
            heard.add(str(frame.data["id"]))
        if expected <= heard:
            break
    listening.close()
    assert expected <= heard
    assert registered_count(node) - before == len(sent)  # /metrics adds both processes up


def test_a_secondary_that_dies_is_replaced(two: tuple[NodeHome, NodeProcess]) -> None:
    home, node = two
    (secondary,) = node.secondary_pids()
    os.kill(secondary, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        replacement = [pid for pid in node.secondary_pids() if pid != secondary]
        if replacement and f"secondary process {replacement[0]} ready" in node.log_tail(200):
            break
        time.sleep(0.2)
    assert replacement, "the primary did not start another secondary"
    assert "ended (exit" in node.log_tail(200)
    # The replacement serves the shared socket: connections reach it and are answered.
    opened = connections_on_every_process(home, node, "edu")
    assert replacement[0] in node.secondary_pids()
    for connection in opened:
        connection.close()


def test_a_second_serve_on_the_same_home_is_refused(two: tuple[NodeHome, NodeProcess]) -> None:
    home, node = two
    counted = registered_count(node)
    second = subprocess.run(
        [sys.executable, "-m", "govnode.cli.main", "--home", str(home.path), "serve"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert second.returncode == 1
    assert "another govnode serve holds" in second.stderr
    assert "Traceback" not in second.stderr
    assert registered_count(node) == counted  # the running node's metrics are untouched
    assert client(home, node, "edu").request("GET", "/api/v1/directory/edu").status == 200


def test_stopping_the_primary_stops_the_secondaries(tmp_path: Path, govnode_slapd: Slapd) -> None:
    home = make_node_home(tmp_path, govnode_slapd, codes=("edu",))
    configure(home.path, processes=2)
    for how in ("TERM", "KILL"):
        node = NodeProcess(home.path).start()
        secondaries = node.secondary_pids()
        assert secondaries
        with client(home, node, "edu") as connection:  # a kept-alive connection open
            assert connection.request("GET", "/api/v1/directory/edu").status == 200
            if how == "TERM":
                assert node.stop(timeout=20) == 0
            else:
                node.kill()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and any(_alive(pid) for pid in secondaries):
                time.sleep(0.2)
        assert not any(_alive(pid) for pid in secondaries), how


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
