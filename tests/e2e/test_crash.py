"""Kill the node with SIGKILL at random moments while letters arrive; nothing acknowledged is lost.

Every letter that got 201 must be stored exactly once with its attachments,
registration numbers must be unique and gapless, every recipient delivered
exactly once after the last restart, the audit chain intact, and SQLite's
own integrity check clean. The seed is printed so a failure can be replayed.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import text

from govnode.cli.main import main as govnode
from govnode.testing.client import AgencyClient
from govnode.testing.databases import home_engine
from govnode.testing.home import configure
from govnode.testing.process import NodeProcess
from govnode.testing.pytest_plugin import make_node_home
from govnode.testing.slapd import Slapd

KILLS = 6


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Submitter:
    """Sends letters with attachments, reconnecting through restarts; keeps what got 201.

    A keyed submitter sends each letter with an Idempotency-Key and retries that
    same letter after a crash until it gets an answer.
    """

    url: str
    files: tuple[Path, Path, Path]
    rng: random.Random
    stop: threading.Event
    keyed: bool = False
    acknowledged: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> number, sha

    def run(self) -> None:
        ca, cert, key = self.files
        client = AgencyClient(self.url, ca, cert, key, timeout=5)
        content, idempotency_key = b"", ""
        while not self.stop.is_set():
            try:
                if client.token is None and client.login("edu", "demo-edu").status != 200:
                    time.sleep(0.05)
                    continue
                if not content:
                    content = os.urandom(self.rng.randrange(1, 4096))
                    idempotency_key = f"crash-{self.rng.randrange(2**62)}"
                response = client.request(
                    "POST",
                    "/api/v1/letters",
                    json_body={
                        "to": ["welfare", "roads"],
                        "subject": "نامه آزمون خرابی",
                        "attachments": [
                            {
                                "filename": "a.bin",
                                "content_type": "application/octet-stream",
                                "data": base64.b64encode(content).decode(),
                            }
                        ],
                    },
                    headers={"Idempotency-Key": idempotency_key} if self.keyed else None,
                )
                if response.status == 201:
                    answer = response.json()
                    self.acknowledged[answer["id"]] = (
                        answer["number"],
                        hashlib.sha256(content).hexdigest(),
                    )
                    content = b""
                elif response.status == 401:
                    client.token = None
                elif not self.keyed:
                    content = b""
            except OSError:
                client.close()  # the node died under us: try again once it is back
                if not self.keyed:
                    content = b""
                time.sleep(0.05)
        client.close()


def test_sigkill_during_submission_loses_nothing(tmp_path: Path, govnode_slapd: Slapd) -> None:
    seed = int(os.environ.get("GOVNODE_CRASH_SEED", random.randrange(2**32)))
    print(f"crash test seed {seed}")
    rng = random.Random(seed)
    home = make_node_home(tmp_path, govnode_slapd, codes=("edu",))
    port = free_port()
    configure(home.path, api=f"127.0.0.1:{port}")
    files = home.clients["edu"]
    node = NodeProcess(home.path).start()
    stop = threading.Event()
    submitters = [
        Submitter(
            node.api_url,
            (files.ca, files.cert, files.key),
            random.Random(rng.randrange(2**32)),
            stop,
            keyed=index % 2 == 1,
        )
        for index in range(6)
    ]
    threads = [threading.Thread(target=submitter.run) for submitter in submitters]
    for thread in threads:
        thread.start()
    try:
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.2, 1.2))
            node.kill()  # SIGKILL: no cleanup of any kind
            node = NodeProcess(home.path).start()
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    acknowledged = {
        letter: entry
        for submitter in submitters
        for letter, entry in submitter.acknowledged.items()
    }
    deadline = time.monotonic() + 20
    engine = home_engine(home.path)
    while True:  # the restarted worker delivers what was queued
        with engine.connect() as db:
            queued = db.execute(
                text("SELECT count(*) FROM recipients WHERE status = 'queued'")
            ).scalar_one()
        if queued == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert node.stop() == 0
    assert len(acknowledged) > 50, "the test sent too little to mean anything"

    with engine.connect() as db:
        if db.dialect.name == "sqlite":  # PostgreSQL has no such check of its own
            assert db.execute(text("PRAGMA integrity_check")).scalar_one() == "ok"
        letters = {
            row[0]: tuple(row[1:])
            for row in db.execute(
                text(
                    "SELECT l.id, l.number, a.sha256 FROM letters l "
                    "JOIN attachments a ON a.letter_id = l.id"
                )
            )
        }
        sequences = [row[0] for row in db.execute(text("SELECT sequence FROM letters ORDER BY 1"))]
        deliveries = [
            tuple(row)
            for row in db.execute(text("SELECT status, count(*) FROM recipients GROUP BY status"))
        ]
        events = db.execute(
            text(
                "SELECT count(*), count(DISTINCT letter_id || address) FROM events "
                "WHERE status = 'delivered'"
            )
        ).one()
    engine.dispose()
    for letter_id, (number, sha) in acknowledged.items():
        assert letters.get(letter_id) == (number, sha), f"acknowledged {number} is missing"
        stored = home.path / "data" / "attachments" / sha[:2] / sha[2:4] / sha
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == sha
    assert sequences == list(range(1, len(sequences) + 1)), "numbers have gaps or repeats"
    assert dict(deliveries) == {"delivered": 2 * len(sequences)}
    assert events[0] == events[1] == 2 * len(sequences), "a recipient was delivered twice"
    assert govnode(["--home", str(home.path), "audit", "verify"]) == 0
