"""The example plugin in a real node: each of its hooks, seen as a user sees it.

This is also the template for a plugin's own tests: `govnode.testing` gives a
private slapd (`govnode_slapd`), a node home with the plugin enabled
(`make_plugin_node_home`), the node as a real process (`NodeProcess`) and
clients holding agencies' certificates (`client_for`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from govnode.testing.client import AgencyClient
from govnode.testing.process import NodeProcess
from govnode.testing.pytest_plugin import NodeHome, client_for, make_plugin_node_home
from govnode.testing.slapd import Slapd

SETTINGS = {"forbidden_words": ["محرمانه‌نویسی"], "never_enroll": ["roads"], "heartbeat": 0.2}
ENROLLED = ("edu", "welfare", "ostandari")


@pytest.fixture(scope="module")
def example_node(
    tmp_path_factory: pytest.TempPathFactory, govnode_slapd: Slapd
) -> Iterator[tuple[NodeHome, NodeProcess]]:
    home = make_plugin_node_home(
        tmp_path_factory.mktemp("example"), govnode_slapd, {"example": SETTINGS}, ENROLLED
    )
    node = NodeProcess(home.path).start()
    yield home, node
    node.stop()


def logged_in(example_node: tuple[NodeHome, NodeProcess], code: str) -> AgencyClient:
    client = client_for(*example_node, code)
    assert client.login(code, f"demo-{code}").status == 200
    return client


def govnode(home: NodeHome, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "govnode.cli.main", "--home", str(home.path), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_route_answers_the_authenticated_caller(
    example_node: tuple[NodeHome, NodeProcess],
) -> None:
    with logged_in(example_node, "edu") as client:
        answer = client.request("GET", "/api/v1/x/example/hello")
    assert answer.status == 200, answer.body
    assert answer.json()["hello"] == "edu@kb"
    with client_for(*example_node, "edu") as stranger:
        refused = stranger.request("GET", "/api/v1/x/example/hello")
    assert refused.status == 401
    assert refused.error_code == "unauthenticated"


def test_policy_refuses_a_forbidden_word_and_stores_nothing(
    example_node: tuple[NodeHome, NodeProcess],
) -> None:
    with logged_in(example_node, "edu") as client:
        before = client.request("GET", "/api/v1/outbox").json()["letters"]
        answer = client.request(
            "POST",
            "/api/v1/letters",
            json_body={"to": ["welfare"], "subject": "درباره محرمانه‌نویسی", "body": "..."},
        )
        after = client.request("GET", "/api/v1/outbox").json()["letters"]
    assert answer.status == 422, answer.body
    error = answer.json()["error"]
    assert (error["code"], error["field"]) == ("forbidden_word", "subject")
    assert "محرمانه‌نویسی" in error["message"]
    assert after == before


def test_directory_entries_carry_the_plugins_part(
    example_node: tuple[NodeHome, NodeProcess],
) -> None:
    with logged_in(example_node, "edu") as client:
        enrolled = client.request("GET", "/api/v1/directory/welfare").json()
        pending = client.request("GET", "/api/v1/directory/roads").json()
    assert enrolled["x"] == {"example": {"enrolled": True}}
    assert pending["x"] == {"example": {"enrolled": False}}


def test_letter_events_reach_the_plugin(example_node: tuple[NodeHome, NodeProcess]) -> None:
    _, node = example_node
    with logged_in(example_node, "edu") as edu:
        sent = edu.request(
            "POST", "/api/v1/letters", json_body={"to": ["welfare"], "subject": "گزارش"}
        )
        assert sent.status == 201, sent.body
        deadline = time.monotonic() + 10
        while True:
            seen = edu.request("GET", "/api/v1/x/example/hello").json()["events_seen"]
            if seen.get("registered") and seen.get("delivered"):
                break
            assert time.monotonic() < deadline, f"events not handed on: {seen}"
            time.sleep(0.2)
    # The counter the plugin made is on the node's /metrics.
    with urllib.request.urlopen(f"{node.admin_url}/metrics", timeout=10) as answer:
        metrics = answer.read().decode()
    assert 'govnode_plugin_example_events_total{kind="delivered"}' in metrics


def test_command_and_plugin_list(example_node: tuple[NodeHome, NodeProcess]) -> None:
    home, _ = example_node
    counted = govnode(home, "example", "--phase", "1")
    assert counted.returncode == 0, counted.stderr
    assert "agencies at node kb" in counted.stdout
    listed = govnode(home, "plugins", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (example,) = [p for p in json.loads(listed.stdout) if p["name"] == "example"]
    assert example["version"] == "0.1.0"
    assert "govnode_letter_policy" in example["hooks"]


def test_enrollment_refused_by_the_plugin(
    example_node: tuple[NodeHome, NodeProcess], tmp_path: Path
) -> None:
    home, _ = example_node
    refused = govnode(home, "agency", "enroll", "roads", "--out", str(tmp_path / "roads"))
    assert refused.returncode != 0
    assert "roads is in plugins.example.never_enroll" in refused.stderr
    assert not (tmp_path / "roads" / "cert.pem").exists()
    listed = govnode(home, "agency", "list", "--json")
    (roads,) = [a for a in json.loads(listed.stdout) if a["code"] == "roads"]
    assert roads["status"] == "pending"


def test_a_misspelled_setting_names_the_key(example_node: tuple[NodeHome, NodeProcess]) -> None:
    home, _ = example_node
    path = home.path / "govnode.toml"
    original = path.read_text(encoding="utf-8")
    try:
        path.write_text(original + "\nforbiden_words = []\n", encoding="utf-8")
        refused = govnode(home, "plugins", "list")
    finally:
        path.write_text(original, encoding="utf-8")
    assert refused.returncode != 0
    assert "plugins.example.forbiden_words" in refused.stderr
