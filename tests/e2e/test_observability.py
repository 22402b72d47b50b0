"""What an operator watches on a real node: JSON logs without secrets, /metrics that
follow the letters, refused handshakes and LDAP failures, and `govnode status`.

One node (two processes, so /metrics adds up the files of both) with a peer,
center, that never answers: letters for it wait in the queue.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from govnode.cli.main import main as govnode
from govnode.config import load_config
from govnode.pki import ca
from govnode.pki.files import write_private
from govnode.testing.client import AgencyClient
from govnode.testing.home import ClientFiles, add_peer, configure, enroll, free_port, init_home
from govnode.testing.process import NodeProcess
from govnode.testing.pytest_plugin import NodeHome, make_node_home, start_demo_slapd
from govnode.testing.slapd import Slapd

SUBJECT = "OBSERVE-SUBJECT-4d1f دستور محرمانه"
BODY = "OBSERVE-BODY-9a7c متن محرمانه نامه"
WRONG_PASSWORD = "OBSERVE-WRONG-PASSWORD-77e2"
CLEAR = "\x1b[H\x1b[2J"


@dataclass
class Observed:
    home: NodeHome
    node: NodeProcess
    revocable: ClientFiles  # an agency certificate a test revokes

    def client(self, code: str) -> AgencyClient:
        files = self.home.clients[code]
        return AgencyClient(self.node.api_url, files.ca, files.cert, files.key, timeout=10)


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory, govnode_slapd: Slapd) -> Iterator[Observed]:
    root = tmp_path_factory.mktemp("observe")
    home = make_node_home(root, govnode_slapd)
    center = root / "center"
    init_home(center, govnode_slapd, node_id="center", name="مرکز ملی")
    # Nothing listens there: letters for center wait.
    add_peer(home.path, load_config(center / "govnode.toml"), f"https://127.0.0.1:{free_port()}")
    configure(
        home.path, default_route="center", federation="127.0.0.1:0", format="json", level="debug"
    )
    revocable = enroll(home.config, ["tax"], root / "more")["tax"]
    node = NodeProcess(home.path).start()
    yield Observed(home, node, revocable)
    node.stop()


def scrape(admin_url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"{admin_url}/metrics", timeout=10) as answer:
        body = answer.read().decode("utf-8")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def eventually(check: Callable[[], bool], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.1)


def log_lines(node: NodeProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in node.log_path.read_text(encoding="utf-8").splitlines()]


def submit(client: AgencyClient, to: list[str], **fields: str) -> str:
    document = {"to": to, "subject": "آزمون", "body": "متن", **fields}
    answer = client.request("POST", "/api/v1/letters", json_body=document)
    assert answer.status == 201, answer.body
    return str(answer.json()["id"])


# -- logs ---------------------------------------------------------------------------


def test_json_logs_name_letters_and_agencies_and_never_their_secrets(observed: Observed) -> None:
    with observed.client("edu") as edu:
        assert edu.login("edu", WRONG_PASSWORD).status == 401
        assert edu.login("edu", "demo-edu").status == 200
        token = edu.token
        assert token
        letter_id = submit(edu, ["welfare", "edu@center"], subject=SUBJECT, body=BODY)

    def tried_center() -> bool:
        return any(
            line.get("letter_id") == letter_id and line.get("peer") == "center"
            for line in log_lines(observed.node)
        )

    eventually(tried_center)  # the relay worker tried center and will retry
    lines = log_lines(observed.node)  # every line is one JSON object
    assert all({"time", "level", "namespace", "message"} <= set(line) for line in lines)
    assert all(line["time"].endswith("Z") for line in lines)
    registered = [
        line
        for line in lines
        if line.get("letter_id") == letter_id and "registered" in line["message"]
    ]
    assert [(line["agency"], line["number"][:3]) for line in registered] == [("edu", "KB-")]
    delivered = [
        line
        for line in lines
        if line.get("letter_id") == letter_id and line.get("agency") == "welfare"
    ]
    assert delivered, "the local delivery names the letter and the receiving agency"
    refused = [
        line for line in lines if "refused" in line["message"] and line.get("agency") == "edu"
    ]
    assert refused
    assert refused[-1]["level"] == "warn"
    text = observed.node.log_path.read_text(encoding="utf-8")
    for secret in (
        SUBJECT,
        BODY,
        "OBSERVE-SUBJECT",
        "OBSERVE-BODY",
        WRONG_PASSWORD,
        "demo-edu",
        token,
    ):
        assert secret not in text


# -- metrics ------------------------------------------------------------------------


def test_metrics_follow_letters_queues_and_logins(observed: Observed) -> None:
    admin = observed.node.admin_url
    before = scrape(admin)
    with observed.client("welfare") as welfare:
        assert welfare.login("welfare", "not the password").status == 401
        assert welfare.login("welfare", "demo-welfare").status == 200
        submit(welfare, ["edu", "welfare@center"])

    def counted() -> bool:
        now = scrape(admin)
        return value(now, "govnode_delivery_seconds_count", path="local") > value(
            before, "govnode_delivery_seconds_count", path="local"
        )

    eventually(counted)
    after = scrape(admin)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("govnode_letters_registered_total") == 1
    assert grew("govnode_letters_delivered_total", result="delivered") == 1  # edu, here
    assert grew("govnode_submit_seconds_count") == 1
    assert grew("govnode_delivery_seconds_count", path="local") == 1
    assert grew("govnode_logins_total", result="failure") == 1
    # welfare@center waits for center, which does not answer: one more recipient.
    assert grew("govnode_queue_recipients", destination="center") == 1
    assert value(after, "govnode_queue_oldest_seconds", destination="center") > 0
    assert value(after, "govnode_peer_up", peer="center") == 0
    assert value(after, "govnode_start_time_seconds", node="kb") > 0


HANDSHAKE_REFUSED = (OSError,)  # ssl.SSLError, reset and broken pipe are all OSErrors


def refused(observed: Observed, cert: Path | None, key: Path | None) -> bool:
    """Whether the node refuses this client certificate in the TLS handshake."""
    client = AgencyClient(
        observed.node.api_url, observed.home.config.tls.ca_cert, cert, key, timeout=10
    )
    try:
        client.request("GET", "/api/v1/directory")
    except HANDSHAKE_REFUSED:
        return True
    finally:
        client.close()
    return False


def pair(folder: Path, issued: ca.Issued) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cert.pem").write_bytes(issued.cert_pem)
    write_private(folder / "key.pem", issued.key_pem)
    return folder / "cert.pem", folder / "key.pem"


def test_refused_handshakes_are_counted_by_reason(observed: Observed, tmp_path: Path) -> None:
    admin = observed.node.admin_url
    before = scrape(admin)
    tls = observed.home.config.tls
    now = datetime.now(UTC)
    impostor = ca.create_ca("kb", "an impostor CA with the same name", now=now)
    stranger = pair(
        tmp_path / "stranger",
        ca.issue_agency_certificate(
            impostor.cert_pem, impostor.key_pem, code="edu", node_id="kb", now=now
        ),
    )
    expired = pair(
        tmp_path / "expired",
        ca.issue_agency_certificate(
            tls.ca_cert.read_bytes(),
            tls.ca_key.read_bytes(),
            code="edu",
            node_id="kb",
            now=now - timedelta(days=800),
            valid_days=730,
        ),
    )
    assert refused(observed, None, None)
    assert refused(observed, *stranger)
    assert refused(observed, *expired)
    assert refused(observed, tls.server_cert, tls.server_key)  # not a client certificate
    tax = observed.revocable
    assert not refused(observed, tax.cert, tax.key)
    assert govnode(["--home", str(observed.home.path), "agency", "revoke", "tax"]) == 0
    eventually(lambda: refused(observed, tax.cert, tax.key), 10)  # the CRL is reloaded

    expected = {"no_certificate": 1, "unknown_ca": 1, "expired": 1, "revoked": 1, "other": 1}

    def counts() -> dict[str, float]:
        now = scrape(admin)
        return {
            reason: value(
                now, "govnode_tls_handshake_failures_total", listener="api", reason=reason
            )
            - value(before, "govnode_tls_handshake_failures_total", listener="api", reason=reason)
            for reason in expected
        }

    eventually(lambda: counts() == expected, 10)


def test_ldap_errors_are_counted_and_shown(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("ldap-errors")
    slapd = start_demo_slapd(root / "slapd")
    try:
        home = make_node_home(root, slapd, codes=("edu",))
        with NodeProcess(home.path) as node:
            files = home.clients["edu"]
            with AgencyClient(node.api_url, files.ca, files.cert, files.key, timeout=10) as edu:
                slapd.stop()
                assert edu.login("edu", "demo-edu").status == 503
            samples = scrape(node.admin_url)
            assert (
                value(samples, "govnode_ldap_errors_total", operation="bind", kind="unreachable")
                == 1
            )
            shown = status(home.path, "--json")
            facts = json.loads(shown.stdout)
            assert facts["ldap"]["reachable"] is False
            assert facts["ldap"]["node_errors"]["unreachable"] >= 1
            assert "unreachable" in status(home.path).stdout
    finally:
        slapd.stop()


# -- govnode status -----------------------------------------------------------------


def status(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "govnode.cli.main", "--home", str(home), "status", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def section(text: str, name: str) -> list[str]:
    """The lines of one section of the dashboard (name in the left column)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(name))
    found = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.startswith(" "):
            break
        found.append(line)
    return found


def test_status_shows_the_live_node_then_the_stopped_one(observed: Observed) -> None:
    home = observed.home.path
    with observed.client("roads") as roads:
        assert roads.login("roads", "demo-roads").status == 200
        submit(roads, ["edu", "roads@center"])
    live = status(home)
    assert live.returncode == 0, live.stderr
    assert live.stdout.startswith("govnode node kb (")
    assert all(len(line) <= 100 for line in live.stdout.splitlines())
    assert "running, healthy, up " in section(live.stdout, "Daemon")[0]
    queue = [line.split() for line in section(live.stdout, "Queues")[1:]]
    assert queue[0][0] == "center"
    assert int(queue[0][2]) >= 1
    assert "! DOWN" in section(live.stdout, "Peers")[0]
    certificates = section(live.stdout, "Certificates")
    assert [line.split()[1 if i == 0 else 0] for i, line in enumerate(certificates)][:4] == [
        "CA",
        "server",
        "node",
        "CRL",
    ]
    assert "valid until" in certificates[0]

    facts = json.loads(status(home, "--json").stdout)
    assert facts["node"]["id"] == "kb"
    assert facts["daemon"]["running"] is True
    assert facts["daemon"]["uptime_seconds"] >= 0
    assert facts["database"]["schema"] == "current"
    (center,) = facts["queues"]
    assert (center["destination"], center["recipients"] >= 1, center["oldest_seconds"] >= 0) == (
        "center",
        True,
        True,
    )
    assert facts["peers"] == [
        {"id": "center", "url": facts["peers"][0]["url"], "up": False, "hello_seconds": None}
    ]
    days = {c["name"]: c.get("days_left") for c in facts["certificates"]}
    assert days["CA"] > 3000
    assert days["server"] > 300
    assert facts["letters_today"]["registered"] >= 1
    assert facts["letters_today"]["delivered"] >= 1

    observed.node.stop()
    stopped = status(home)
    assert stopped.returncode == 1
    assert section(stopped.stdout, "Daemon")[0].split()[1:3] == ["not", "running"]
    assert "reachable, schema current" in section(stopped.stdout, "Database")[1]
    assert "valid until" in section(stopped.stdout, "Certificates")[0]
    assert "unknown (node not running)" in section(stopped.stdout, "Peers")[0]
    facts = json.loads(status(home, "--json").stdout)
    assert facts["daemon"]["running"] is False
    assert facts["database"]["reachable"] is True
    assert [c["name"] for c in facts["certificates"]] == ["CA", "server", "node", "CRL"]


def test_status_watch_redraws_until_ctrl_c(observed: Observed) -> None:
    watch = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "govnode.cli.main",
            "--home",
            str(observed.home.path),
            "status",
            "--watch",
            "0.5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert watch.stdout is not None
    seen = b""
    deadline = time.monotonic() + 30
    try:
        while seen.count(CLEAR.encode()) < 2:
            assert time.monotonic() < deadline, seen.decode(errors="replace")
            ready, _, _ = select.select([watch.stdout], [], [], 0.5)
            if ready:
                chunk = os.read(watch.stdout.fileno(), 65536)
                assert chunk, "status --watch ended by itself"
                seen += chunk
        watch.send_signal(signal.SIGINT)
        _, errors = watch.communicate(timeout=30)
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()
    assert watch.returncode == 130
    assert b"Traceback" not in errors
    first, second = seen.decode().split(CLEAR)[1:3]  # the second may be cut short
    assert first.startswith("govnode node kb (")
    assert "govnode node kb (".startswith(second[:17])
