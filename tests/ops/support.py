"""Letters to back up, and what a restored node must still answer for them."""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from govnode.config import Config
from govnode.testing.client import AgencyClient
from govnode.testing.process import NodeProcess
from govnode.testing.pytest_plugin import NodeHome, client_for

LETTERS = "/api/v1/letters"


@dataclass(frozen=True)
class Sent:
    """A letter as its sender saw it acknowledged."""

    id: str
    number: str
    subject: str
    attachment_sha256: str


def send_letter(client: AgencyClient, index: int, size: int = 3000) -> Sent:
    content = os.urandom(size)
    subject = f"نامه پشتیبان {index}"
    response = client.request(
        "POST",
        LETTERS,
        json_body={
            "to": ["welfare"],
            "subject": subject,
            "body": f"متن نامه {index}",
            "attachments": [
                {
                    "filename": f"پیوست-{index}.bin",
                    "content_type": "application/octet-stream",
                    "data": base64.b64encode(content).decode(),
                }
            ],
        },
    )
    assert response.status == 201, response.body
    answer = response.json()
    return Sent(answer["id"], answer["number"], subject, hashlib.sha256(content).hexdigest())


def logged_in(home: NodeHome, node: NodeProcess, code: str) -> AgencyClient:
    client = client_for(home, node, code)
    assert client.login(code, f"demo-{code}").status == 200
    return client


def check_served(client: AgencyClient, letter: Sent) -> None:
    """The letter answers with its number, subject and the same attachment bytes."""
    shown = client.request("GET", f"{LETTERS}/{letter.id}")
    assert shown.status == 200, shown.body
    assert (shown.json()["number"], shown.json()["subject"]) == (letter.number, letter.subject)
    attachment = client.request("GET", f"{LETTERS}/{letter.id}/attachments/0")
    assert attachment.status == 200, attachment.body
    assert hashlib.sha256(attachment.body).hexdigest() == letter.attachment_sha256


@dataclass
class BusySender:
    """Keeps sending letters from its own thread until stopped; every answer must be 201."""

    client: AgencyClient
    sent: list[Sent] = field(default_factory=list)
    failures: list[BaseException] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    first: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self.sent.append(send_letter(self.client, 1000 + len(self.sent)))
                self.first.set()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.failures.append(exc)
            self.first.set()


def drop_database(config: Config) -> None:
    """Wipe a node's database: SQLite goes with its home; PostgreSQL loses its tables."""
    url = config.database.url
    if url.startswith("sqlite"):
        return
    engine = create_engine(make_url(url).set(drivername="postgresql+psycopg"))
    try:
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


def fresh_database_args(config: Config, name: str) -> list[str]:
    """`--database-url` of a new empty PostgreSQL database beside the node's; none for SQLite
    (its database goes into the restored home)."""
    url = config.database.url
    if url.startswith("sqlite"):
        return []
    parsed = make_url(url).set(drivername="postgresql+psycopg")
    database = f"{parsed.database}_{name}"
    engine = create_engine(parsed, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{database}"'))
            conn.execute(text(f'CREATE DATABASE "{database}"'))
    finally:
        engine.dispose()
    fresh = parsed.set(drivername="postgresql", database=database)
    return ["--database-url", fresh.render_as_string(hide_password=False)]


def entries(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())
