"""What the county plugin's tests share: nodes (kb with the plugin, and a second
node, center, for letters leaving the province), a parent's key and CSR, the
`govnode` command, clients and the audit log.

Real slapd, real SQLite files, real node processes over mutual TLS.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from govnode.domain.audit import AuditRecord
from govnode.store import audit
from govnode.store.database import Database
from govnode.testing.client import AgencyClient
from govnode.testing.home import (
    ClientFiles,
    add_peer,
    configure,
    enroll,
    free_port,
    init_home,
    sync_directory,
)
from govnode.testing.process import NodeProcess
from govnode.testing.pytest_plugin import NodeHome, client_for, make_plugin_node_home
from govnode.testing.slapd import Slapd

T = TypeVar("T")
API = "/api/v1/x/county"
GOVNODE = Path(sys.executable).with_name("govnode")  # .venv/bin/govnode


@dataclass
class Kb:
    """The province's node with the county plugin, running."""

    home: NodeHome
    node: NodeProcess

    def client(self, code: str) -> AgencyClient:
        """A client of `code` holding the certificate the home enrolled it with, logged in."""
        client = client_for(self.home, self.node, code)
        answer = client.login(code, f"demo-{code}")
        assert answer.status == 200, answer.body
        return client

    def client_with(self, code: str, cert: Path, key: Path) -> AgencyClient:
        """A client of `code` holding the given certificate and key, logged in."""
        client = AgencyClient(self.node.api_url, self.home.config.tls.ca_cert, cert, key)
        answer = client.login(code, f"demo-{code}")
        assert answer.status == 200, answer.body
        return client

    def govnode(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`govnode --home <kb> ...` as the operator runs it."""
        return subprocess.run(
            [str(GOVNODE), "--home", str(self.home.path), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def audit_log(self) -> list[AuditRecord]:
        db = Database(self.home.config.database.url)
        try:
            return db.read_sync(lambda conn: list(audit.thd_records(conn)))
        finally:
            db.stop()


@dataclass
class Center:
    """A second node (the national center): somewhere outside the province."""

    path: Path
    node: NodeProcess
    clients: dict[str, ClientFiles]

    def client(self, code: str) -> AgencyClient:
        files = self.clients[code]
        client = AgencyClient(self.node.api_url, files.ca, files.cert, files.key)
        answer = client.login(code, f"demo-{code}")
        assert answer.status == 200, answer.body
        return client


@contextmanager
def running_kb(
    root: Path, slapd: Slapd, settings: dict[str, object], codes: tuple[str, ...]
) -> Iterator[Kb]:
    """kb with the county plugin and `codes` enrolled, as a running node."""
    home = make_plugin_node_home(root, slapd, {"county": settings}, codes)
    node = NodeProcess(home.path).start()
    try:
        yield Kb(home, node)
    finally:
        node.stop()


@contextmanager
def running_province(
    root: Path, slapd: Slapd, settings: dict[str, object], codes: tuple[str, ...]
) -> Iterator[tuple[Kb, Center]]:
    """kb (with the plugin) and center, each the other's federation peer, running.

    Both listen for federation on fixed ports, so letters go from kb to center and
    center's status notices (delivered, read) come back to kb.
    """
    home = make_plugin_node_home(root, slapd, {"county": settings}, codes)
    center_path = root / "center"
    init_home(center_path, slapd, node_id="center", name="مرکز ملی")
    center_port, kb_port = free_port(), free_port()
    center_config = configure(center_path, processes=1, federation=f"127.0.0.1:{center_port}")
    sync_directory(center_config)
    center_clients = enroll(center_config, ["edu"], root / "center-clients")
    kb_config = configure(home.path, federation=f"127.0.0.1:{kb_port}", retry_min=1, retry_max=2)
    add_peer(center_path, kb_config, f"https://127.0.0.1:{kb_port}")
    add_peer(home.path, center_config, f"https://127.0.0.1:{center_port}")
    # A peer is a next hop only through a route: each is the other's default.
    configure(center_path, default_route="kb", retry_min=1, retry_max=2)
    home = NodeHome(home.path, configure(home.path, default_route="center"), home.clients)
    center_node = NodeProcess(center_path).start()
    try:
        kb_node = NodeProcess(home.path).start()
        try:
            yield Kb(home, kb_node), Center(center_path, center_node, center_clients)
        finally:
            kb_node.stop()
    finally:
        center_node.stop()


# -- the parent's key ------------------------------------------------------------


@dataclass(frozen=True)
class KeyAndCsr:
    key_pem: bytes
    csr_pem: str

    def public_der(self) -> bytes:
        key = serialization.load_pem_private_key(self.key_pem, password=None)
        return key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def key_and_csr(office: str) -> KeyAndCsr:
    """What the parent makes for its office (as `openssl req -new` would)."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, office)]))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return KeyAndCsr(key_pem, csr.public_bytes(serialization.Encoding.PEM).decode("ascii"))


def request_enrollment(
    client: AgencyClient, office: str, csr: str, note: str = ""
) -> tuple[int, dict[str, Any]]:
    answer = client.request(
        "POST", f"{API}/requests", json_body={"office": office, "csr": csr, "note": note}
    )
    return answer.status, answer.json()


def pending_json(kb: Kb) -> list[dict[str, Any]]:
    listed = kb.govnode("county", "pending", "--json")
    assert listed.returncode == 0, listed.stderr
    rows: list[dict[str, Any]] = json.loads(listed.stdout)
    return rows


def wait_for(check: Callable[[], T | None], seconds: float = 20.0) -> T:
    """`check()`'s first true value, polled; fails the test after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"still not true after {seconds} s"
        time.sleep(0.2)


def send(client: AgencyClient, to: list[str], subject: str, body: str = "") -> str:
    answer = client.request(
        "POST", "/api/v1/letters", json_body={"to": to, "subject": subject, "body": body}
    )
    assert answer.status == 201, answer.body
    letter_id: str = answer.json()["id"]
    return letter_id
