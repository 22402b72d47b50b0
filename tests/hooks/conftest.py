"""One node with the probe plugin for the hook tests of this package.

It runs as a real `govnode serve` (two processes, mutual TLS, SQLite file,
the session's slapd) with the probe told to refuse, crash and copy letters
by subject, to refuse enrolling `roads` (and crash on `natres`), to route
node `fars` through peer `center` (configured, never running) and crash on
`kish`, and to crash adding to the directory entry of `roads`. Tests tell their letters apart
by unique subjects, so they share it; tests that need the probe to behave
otherwise start nodes of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from govnode.config import CONFIG_NAME, load_config
from govnode.testing.client import AgencyClient
from govnode.testing.home import add_peer, configure, free_port, init_home
from govnode.testing.process import NodeProcess
from govnode.testing.pytest_plugin import NodeHome, client_for, make_plugin_node_home
from govnode.testing.slapd import Slapd
from tests.hooks.support import Record

ENROLLED = ("ostandari", "edu", "welfare", "health-univ", "edu-dena")
"""Enrolled at the start; `roads`, `agri`, `natres`, `heritage` (in the directory) are pending."""

NOTE = "دیده شد"


def probe_settings(record: Path, **more: object) -> dict[str, object]:
    """The probe's `[plugins.probe]` of the shared node, with `more` added."""
    return {
        "record": str(record),
        "refuse_subject": "REFUSE",
        "crash_subject": "CRASH",
        "cc": ["welfare"],
        "cc_subject": "COPY",
        "garbage_subject": "GARBAGE",
        "refuse_enrollment": "roads",
        "crash_enrollment": "natres",
        "route": {"fars": "center", "isfahan": "nowhere"},
        "crash_route": "kish",
        "fail_directory": "roads",
        "directory": {"note": NOTE},
        **more,
    }


@pytest.fixture(scope="package")
def probe_home(tmp_path_factory: pytest.TempPathFactory, govnode_slapd: Slapd) -> NodeHome:
    root = tmp_path_factory.mktemp("probe-node")
    made = make_plugin_node_home(
        root, govnode_slapd, {"probe": probe_settings(root / "calls.jsonl")}, codes=ENROLLED
    )
    # A peer that never answers: letters the probe routes there wait in the queue.
    center = init_home(root / "center", govnode_slapd, node_id="center", name="مرکز")
    add_peer(made.path, center, f"https://127.0.0.1:{free_port()}")
    configure(made.path, federation="127.0.0.1:0")
    config = load_config(made.path / CONFIG_NAME)
    return NodeHome(path=made.path, config=config, clients=made.clients)


@pytest.fixture(scope="package")
def record(probe_home: NodeHome) -> Record:
    return Record(probe_home.path.parent / "calls.jsonl")


@pytest.fixture(scope="package")
def probe_node(probe_home: NodeHome) -> Iterator[NodeProcess]:
    node = NodeProcess(probe_home.path).start()
    yield node
    node.stop()


ClientFactory = Callable[[str | None], AgencyClient]


@pytest.fixture
def client(probe_home: NodeHome, probe_node: NodeProcess) -> Iterator[ClientFactory]:
    """`client("edu")`: a client of the probe node with edu's certificate (not logged in)."""
    made: list[AgencyClient] = []

    def make(code: str | None) -> AgencyClient:
        made.append(client_for(probe_home, probe_node, code))
        return made[-1]

    yield make
    for each in made:
        each.close()
