"""pytest fixtures for govnode and its plugin authors (loaded through `pytest11`).

- `govnode_slapd`: a private slapd seeded with the demo province (session).
- `govnode_home`: an initialised node home with some agencies enrolled (session).
- `govnode_node`: that node running as a real `govnode serve` process (session).
- `govnode_client`: a factory of HTTPS clients holding an agency's certificate.

For a plugin's own tests: `make_plugin_node_home(root, govnode_slapd, {"name":
{settings}})` makes a home with the plugin enabled, `NodeProcess(home.path)`
runs it, and `client_for(home, node, "edu")` talks to it.

Tests that stop or break these must use their own instances, not these.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from govnode.config import Config
from govnode.testing.client import AgencyClient
from govnode.testing.databases import testing_postgres
from govnode.testing.demo_data import demo_file, load_agencies
from govnode.testing.home import (
    ClientFiles,
    configure,
    enable_plugins,
    enroll,
    init_home,
    sync_directory,
)
from govnode.testing.process import NodeProcess
from govnode.testing.slapd import Slapd

ENROLLED = ("ostandari", "edu", "welfare", "health-univ", "roads", "edu-dena")
"""Agencies that the session node enrolls (a phase-3 office among them)."""

DEMO_USERS = {"edu": ["dabir.edu"]}
"""A user inside an agency's part of the directory (password `demo-dabir.edu`)."""


@dataclass(frozen=True)
class NodeHome:
    path: Path
    config: Config
    clients: dict[str, ClientFiles]


def start_demo_slapd(workdir: Path, *, base_dn: str = "dc=kb,dc=gov,dc=ir") -> Slapd:
    """A started slapd holding the demo province's agencies and users."""
    slapd = Slapd(workdir, base_dn=base_dn)
    slapd.seed(load_agencies(demo_file("agencies.csv")), users=DEMO_USERS)
    slapd.start()
    return slapd


def make_node_home(root: Path, slapd: Slapd, codes: tuple[str, ...] = ENROLLED) -> NodeHome:
    """`govnode init` + directory sync + enrollment of `codes`, ready to serve."""
    home = root / "kb"
    init_home(home, slapd)
    # Two API processes whatever the machine: the suite behaves the same everywhere.
    config = configure(home, reload_interval=0.5, processes=2)
    sync_directory(config)
    clients = enroll(config, codes, root / "clients")
    return NodeHome(path=home, config=config, clients=clients)


def make_plugin_node_home(
    root: Path,
    slapd: Slapd,
    plugins: Mapping[str, Mapping[str, object]],
    codes: tuple[str, ...] = ENROLLED,
) -> NodeHome:
    """A node home like `govnode_home`'s with `plugins` enabled (name → settings);
    start it with `NodeProcess(home.path).start()`."""
    made = make_node_home(root, slapd, codes)
    config = enable_plugins(made.path, plugins)
    return NodeHome(path=made.path, config=config, clients=made.clients)


def client_for(home: NodeHome, node: NodeProcess, code: str | None) -> AgencyClient:
    """A client of `node` holding `code`'s certificate (None: no certificate); close it."""
    ca = home.config.tls.ca_cert
    if code is None:
        return AgencyClient(node.api_url, ca)
    files = home.clients[code]
    return AgencyClient(node.api_url, ca, files.cert, files.key)


@pytest.fixture(scope="session")
def govnode_slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    slapd = start_demo_slapd(tmp_path_factory.mktemp("slapd"))
    yield slapd
    slapd.stop()


@pytest.fixture(scope="session")
def govnode_home(tmp_path_factory: pytest.TempPathFactory, govnode_slapd: Slapd) -> NodeHome:
    return make_node_home(tmp_path_factory.mktemp("node"), govnode_slapd)


@pytest.fixture(scope="session")
def govnode_node(govnode_home: NodeHome) -> Iterator[NodeProcess]:
    node = NodeProcess(govnode_home.path).start()
    yield node
    node.stop()


@pytest.fixture
def govnode_client(
    govnode_home: NodeHome, govnode_node: NodeProcess
) -> Iterator[Callable[[str | None], AgencyClient]]:
    """`govnode_client("edu")`: a client with edu's certificate; `None`: no certificate."""
    made: list[AgencyClient] = []

    def make(code: str | None) -> AgencyClient:
        ca = govnode_home.config.tls.ca_cert
        if code is None:
            client = AgencyClient(govnode_node.api_url, ca)
        else:
            files = govnode_home.clients[code]
            client = AgencyClient(govnode_node.api_url, ca, files.cert, files.key)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sqlite_only: about SQLite itself; deselected in the PostgreSQL run"
    )
    config.addinivalue_line(
        "markers", "postgresql_only: about PostgreSQL itself; deselected in the SQLite run"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect (not skip) the tests about the other database than this run's."""
    other = "sqlite_only" if testing_postgres() else "postgresql_only"
    dropped = [item for item in items if item.get_closest_marker(other) is not None]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item.get_closest_marker(other) is None]
