"""Two `govnode serve` servers on one PostgreSQL database, one killed under load.

Each server has its own home (ports, data_dir, serve.lock) with the same PKI
and database.url, and both keep attachments in one shared folder. Clients
send letters with attachments to both; one server is killed with SIGKILL
mid-load. Afterwards every letter answered 201 is stored once with its
attachment and delivered to each recipient once, numbers are unique and
gapless, the audit chain verifies, and the survivor took over the upkeep.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from govnode.cli.main import main as govnode
from govnode.config import CONFIG_NAME
from govnode.testing.databases import home_engine
from govnode.testing.home import configure
from govnode.testing.process import NodeProcess
from govnode.testing.pytest_plugin import NodeHome, client_for, make_node_home
from govnode.testing.slapd import Slapd
from tests.api.test_events import Stream, send
from tests.e2e.test_crash import Submitter
from tests.e2e.test_tls_refusals import HANDSHAKE_REFUSED, handshake

pytestmark = pytest.mark.postgresql_only

TAKE_OVER = "this server now runs the node's upkeep"


def share_attachments(home: Path, folder: Path) -> None:
    path = home / CONFIG_NAME
    text_ = path.read_text(encoding="utf-8")
    line = '# attachments_dir = "data/attachments"'
    assert line in text_
    path.write_text(text_.replace(line, f'attachments_dir = "{folder}"'), encoding="utf-8")


def two_homes(root: Path, slapd: Slapd, codes: tuple[str, ...]) -> tuple[NodeHome, Path]:
    """Two homes of one node: the same PKI and database.url, their own data_dir
    and ports, one shared attachments folder (root/shared-attachments)."""
    (root / "one").mkdir()
    first = make_node_home(root / "one", slapd, codes=codes)
    second = root / "two" / "kb"
    shutil.copytree(first.path, second)
    shutil.rmtree(second / "data")
    (second / "data").mkdir(mode=0o750)
    for home in (first.path, second):
        share_attachments(home, root / "shared-attachments")
        configure(home, processes=1)
    return first, second


def wait_for(condition: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.2)
    return False


def test_two_servers_share_one_database_and_the_survivor_carries_on(
    tmp_path: Path, govnode_slapd: Slapd
) -> None:
    seed = int(os.environ.get("GOVNODE_CRASH_SEED", random.randrange(2**32)))
    print(f"two-server test seed {seed}")
    rng = random.Random(seed)
    first, second_home = two_homes(tmp_path, govnode_slapd, ("edu",))
    shared = tmp_path / "shared-attachments"
    files = first.clients["edu"]
    one = NodeProcess(first.path).start()
    assert wait_for(lambda: TAKE_OVER in one.log_tail(200), 15), one.log_tail()
    two = NodeProcess(second_home).start()
    stop = threading.Event()
    submitters = [
        Submitter(
            node.api_url,
            (files.ca, files.cert, files.key),
            random.Random(rng.randrange(2**32)),
            stop,
            keyed=index % 2 == 1,
        )
        for index, node in enumerate([one, two, one, two])
    ]
    threads = [threading.Thread(target=submitter.run) for submitter in submitters]
    for thread in threads:
        thread.start()
    try:
        time.sleep(rng.uniform(1.0, 2.0))
        one.kill()  # SIGKILL mid-load: the leader and half the clients' server
        time.sleep(1.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    acknowledged = {
        letter: entry
        for submitter in submitters
        for letter, entry in submitter.acknowledged.items()
    }
    assert len(acknowledged) > 50, "the test sent too little to mean anything"
    assert len({s.url for s in submitters if s.acknowledged}) == 2, "both servers took letters"
    # The survivor leads the upkeep now, and delivers what the killed one left queued.
    assert wait_for(lambda: TAKE_OVER in two.log_tail(200), 15), two.log_tail()
    engine = home_engine(second_home)

    def queued() -> int:
        with engine.connect() as db:
            count = db.execute(
                text("SELECT count(*) FROM recipients WHERE status = 'queued'")
            ).scalar_one()
        return int(count)

    assert wait_for(lambda: queued() == 0, 20), f"{queued()} recipients never delivered"
    with engine.connect() as db:
        letters = {
            row[0]: (row[1], row[2])
            for row in db.execute(
                text(
                    "SELECT l.id, l.number, a.sha256 FROM letters l "
                    "JOIN attachments a ON a.letter_id = l.id"
                )
            )
        }
        years = {row[0] for row in db.execute(text("SELECT DISTINCT year FROM letters"))}
        per_year = {
            year: [
                row[0]
                for row in db.execute(
                    text("SELECT sequence FROM letters WHERE year = :year ORDER BY 1"),
                    {"year": year},
                )
            ]
            for year in years
        }
        deliveries = dict(
            tuple(row)
            for row in db.execute(text("SELECT status, count(*) FROM recipients GROUP BY status"))
        )
        events = db.execute(
            text(
                "SELECT count(*), count(DISTINCT letter_id || address) FROM events "
                "WHERE status = 'delivered'"
            )
        ).one()
        inbox = db.execute(
            text(
                "SELECT count(*), count(DISTINCT inbox_seq) FROM recipients "
                "WHERE status = 'delivered'"
            )
        ).one()
    engine.dispose()
    assert two.stop() == 0
    for letter_id, (number, sha) in acknowledged.items():
        assert letters.get(letter_id) == (number, sha), f"acknowledged {number} is missing"
        stored = shared / sha[:2] / sha[2:4] / sha
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == sha
    total = len(letters)
    for year, sequences in per_year.items():
        assert sequences == list(range(1, len(sequences) + 1)), f"{year}: gaps or repeats"
    assert sum(len(sequences) for sequences in per_year.values()) == total
    assert len({number for number, _ in letters.values()}) == total
    assert deliveries == {"delivered": 2 * total}
    assert tuple(events) == (2 * total, 2 * total), "a recipient was delivered twice"
    assert tuple(inbox) == (2 * total, 2 * total), "two deliveries share an inbox position"
    assert govnode(["--home", str(second_home), "audit", "verify"]) == 0


def test_a_revocation_made_on_one_server_is_enforced_by_the_other(
    tmp_path: Path, govnode_slapd: Slapd
) -> None:
    first, second_home = two_homes(tmp_path, govnode_slapd, ("edu", "tax"))
    tax, edu = first.clients["tax"], first.clients["edu"]
    with NodeProcess(second_home) as two:
        assert handshake(two, tax.ca, tax.cert, tax.key) == 401
        # On the first server's home: the database and its own CRL file.
        assert govnode(["--home", str(first.path), "agency", "revoke", "tax"]) == 0

        def refused() -> bool:
            try:
                handshake(two, tax.ca, tax.cert, tax.key)
            except HANDSHAKE_REFUSED:
                return True
            return False

        assert wait_for(refused, 10), "the other server still accepts the revoked certificate"
        assert handshake(two, edu.ca, edu.cert, edu.key) == 401
        assert "CRL re-published with another server's revocations" in two.log_tail(200)


def test_a_stream_on_one_server_hears_of_a_letter_sent_through_the_other(
    tmp_path: Path, govnode_slapd: Slapd
) -> None:
    first, second_home = two_homes(tmp_path, govnode_slapd, ("edu", "welfare"))
    with NodeProcess(first.path) as one, NodeProcess(second_home) as two:
        welfare = client_for(first, two, "welfare")
        edu = client_for(first, one, "edu")
        try:
            assert welfare.login("welfare", "demo-welfare").status == 200
            assert edu.login("edu", "demo-edu").status == 200
            listening = Stream(first, two, "welfare", str(welfare.token))
            assert listening.response.status == 200
            letter_id = send(edu, "welfare", "از سرور دیگر")
            heard = False
            try:
                for frame in listening.frames(time.monotonic() + 10):
                    if frame.event == "letter" and frame.data and frame.data["id"] == letter_id:
                        heard = True
                        break
            except TimeoutError:
                pass  # nothing came for the stream's whole timeout
            listening.close()
        finally:
            welfare.close()
            edu.close()
    assert heard, "the stream on the other server never heard of the letter"
