"""What `govnode status` shows, gathered as JSON values (blocking: run on a thread).

The live view comes from the running node's admin listener (`/healthz`,
`/metrics`); the rest (database, queues, certificates, today's letters) is
read from the home, so a stopped node still shows what is on disk.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Connection, func, make_url, select, text
from sqlalchemy.exc import SQLAlchemyError

from govnode.config import Config
from govnode.config.model import Endpoint
from govnode.directory.errors import DirectoryUnavailable
from govnode.directory.ldap import LdapDirectory
from govnode.domain.calendar import TEHRAN, day_start, rfc3339
from govnode.domain.status import RecipientStatus
from govnode.pki import ca
from govnode.pki.errors import PkiError
from govnode.runtime import read_running
from govnode.store import queue_admin
from govnode.store.database import Database, DatabaseUnavailable, is_sqlite
from govnode.store.migrate import SchemaOutOfDate, check_schema, current_revision
from govnode.store.schema import agencies, certificates, events, letters, recipients

EXPIRY_WARNING_DAYS = 30
ADMIN_TIMEOUT = 3.0  # seconds to wait for the node's admin listener


@dataclass
class Scrape:
    """The samples of one /metrics answer, by name and labels."""

    samples: dict[str, list[tuple[dict[str, str], float]]] = field(default_factory=dict)

    @classmethod
    def parse(cls, body: str) -> Scrape:
        scrape = cls()
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                scrape.samples.setdefault(sample.name, []).append(
                    (dict(sample.labels), float(sample.value))
                )
        return scrape

    def value(self, name: str, **labels: str) -> float | None:
        """The sum of `name`'s samples that carry `labels` (None: no such sample)."""
        found = [
            value
            for have, value in self.samples.get(name, [])
            if all(have.get(key) == wanted for key, wanted in labels.items())
        ]
        return sum(found) if found else None

    def by_label(self, name: str, label: str) -> dict[str, float]:
        values: dict[str, float] = {}
        for have, value in self.samples.get(name, []):
            if label in have:
                values[have[label]] = values.get(have[label], 0.0) + value
        return values


def admin_url(where: Endpoint) -> str:
    """The admin listener as a client reaches it (a wildcard address is loopback)."""
    wildcard = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104 - a client
    host = wildcard.get(where.host, where.host)
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{where.port}"


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=ADMIN_TIMEOUT) as answer:  # noqa: S310 - http only
            return int(answer.status), bytes(answer.read())
    except urllib.error.HTTPError as exc:  # /healthz answers 503 when a check fails
        return int(exc.code), bytes(exc.read())


def live(config: Config, now: float) -> tuple[dict[str, Any], Scrape | None]:
    """Whether the node answers on its admin listener, its checks and uptime."""
    running = read_running(config.node.data_dir)
    if running is not None:
        base = str(running["admin"])
    elif config.listen.admin.port == 0:
        return {
            "running": False,
            "detail": "not running (no live govnode serve wrote its address)",
        }, None
    else:
        base = admin_url(config.listen.admin)
    facts: dict[str, Any] = {"admin_url": base, "running": False}
    try:
        status, body = _get(f"{base}/healthz")
        health = json.loads(body)
        _, metrics_body = _get(f"{base}/metrics")
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        facts["detail"] = f"not running: nothing answers at {base} ({reason})"
        return facts, None
    scrape = Scrape.parse(metrics_body.decode("utf-8", "replace"))
    started = scrape.by_label("govnode_start_time_seconds", "node")
    if config.node.id not in started:
        others = ", ".join(started) or "a node that does not say which"
        facts["detail"] = f"not running: {others} answers at {base}, not {config.node.id}"
        return facts, None
    facts.update(
        running=True,
        healthy=status == 200,
        checks=health.get("checks", {}),
        started_at=rfc3339(started[config.node.id]),
        uptime_seconds=round(max(0.0, now - started[config.node.id])),
    )
    return facts, scrape


def _safe_url(url: str) -> str:
    """The database URL without its password."""
    return make_url(url).render_as_string(hide_password=True)


def _size(conn: Connection, db: Database) -> int | None:
    if is_sqlite(db.engine):
        path = db.engine.url.database
        if not path:
            return None
        return sum(os.path.getsize(part) for part in (path, f"{path}-wal") if os.path.exists(part))
    return int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one())


def _today(conn: Connection, *, node_id: str, since: float) -> dict[str, int]:
    def events_of(status: RecipientStatus) -> int:
        query = select(func.count()).where(
            events.c.status == status.value, events.c.node == node_id, events.c.at >= since
        )
        return int(conn.scalar(query) or 0)

    registered = conn.scalar(
        select(func.count()).where(
            letters.c.created_at >= since, letters.c.sender.like(f"%@{node_id}")
        )
    )
    delivered = conn.scalar(select(func.count()).where(recipients.c.delivered_at >= since))
    return {
        "registered": int(registered or 0),
        "delivered": int(delivered or 0),
        "relayed": events_of(RecipientStatus.RELAYED),
        "failed": events_of(RecipientStatus.FAILED),
        "expired": events_of(RecipientStatus.EXPIRED),
    }


def _on_disk(conn: Connection, *, node_id: str, now: float, since: float) -> dict[str, Any]:
    """One read transaction: queues, today's letters, the directory cache, agency certs."""
    soon = now + EXPIRY_WARNING_DAYS * 86400
    expiring = conn.scalar(
        select(func.count()).where(
            certificates.c.revoked_at.is_(None),
            certificates.c.not_after > now,
            certificates.c.not_after <= soon,
        )
    )
    return {
        "queues": [
            {
                "destination": line.destination,
                "letters": line.letters,
                "recipients": line.recipients,
                "held": line.held,
                "oldest_seconds": round(max(0.0, now - line.oldest)),
                "last_error": line.last_error,
            }
            for line in queue_admin.thd_overview(conn, node_id=node_id)
        ],
        "today": _today(conn, node_id=node_id, since=since),
        "agencies": int(conn.scalar(select(func.count()).select_from(agencies)) or 0),
        "last_sync": conn.scalar(select(func.max(agencies.c.synced_at))),
        "agency_certificates_expiring": int(expiring or 0),
    }


def database(config: Config, now: float) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The database's state, and what the other sections read from it (None: unreadable)."""
    facts: dict[str, Any] = {"url": _safe_url(config.database.url), "reachable": False}
    db = Database(config.database.url, pool_size=1)
    since = day_start(datetime.fromtimestamp(now, TEHRAN).date())
    try:
        facts["revision"] = current_revision(db.engine)
        try:
            check_schema(db.engine)
            facts["schema"] = "current"
        except SchemaOutOfDate as exc:
            facts["schema"] = str(exc)
            facts["reachable"] = True
            return facts, None
        facts["size_bytes"] = db.read_sync(_size, db)
        stored = db.read_sync(_on_disk, node_id=config.node.id, now=now, since=since)
        facts["reachable"] = True
    except (SQLAlchemyError, DatabaseUnavailable) as exc:
        facts["detail"] = str(getattr(exc, "orig", None) or exc)
        return facts, None
    finally:
        db.stop()
    stored["today_since"] = rfc3339(since)
    return facts, stored


def ldap(config: Config, scrape: Scrape | None, stored: Mapping[str, Any] | None) -> dict[str, Any]:
    """A bind of the service account now (its time), and the node's own figures."""
    facts: dict[str, Any] = {"urls": list(config.ldap.urls)}
    if stored is not None:
        facts["agencies_cached"] = stored["agencies"]
        last = stored["last_sync"]
        facts["last_sync"] = rfc3339(last) if last is not None else None
    if not config.ldap.bind_password:
        facts["reachable"] = None
        facts["detail"] = "not tried: the bind password file cannot be read"
    else:
        started = time.monotonic()
        try:
            LdapDirectory(config.ldap).ping_sync()
            facts["reachable"] = True
        except DirectoryUnavailable as exc:
            facts["reachable"] = False
            facts["detail"] = str(exc)
        facts["bind_seconds"] = round(time.monotonic() - started, 3)
    if scrape is not None:
        seconds = scrape.value("govnode_ldap_request_seconds_sum")
        count = scrape.value("govnode_ldap_request_seconds_count")
        if seconds is not None and count:
            facts["node_average_seconds"] = round(seconds / count, 4)
        facts["node_errors"] = scrape.by_label("govnode_ldap_errors_total", "kind")
    return facts


def peers(config: Config, scrape: Scrape | None) -> list[dict[str, Any]]:
    """Up or down as the node's last hello found it (unknown while it does not run)."""
    up = scrape.by_label("govnode_peer_up", "peer") if scrape else {}
    hello = scrape.by_label("govnode_peer_hello_seconds", "peer") if scrape else {}
    return [
        {
            "id": peer.id,
            "url": peer.url,
            "up": None if peer.id not in up else up[peer.id] >= 1,
            "hello_seconds": hello.get(peer.id),
        }
        for peer in config.peers
    ]


def node_certificates(config: Config, now: float) -> list[dict[str, Any]]:
    moment = datetime.fromtimestamp(now, UTC)
    found: list[dict[str, Any]] = []
    paths: list[tuple[str, Path]] = [
        ("CA", config.tls.ca_cert),
        ("server", config.tls.server_cert),
        ("node", config.tls.node_cert),
    ]
    for name, path in paths:
        entry: dict[str, Any] = {"name": name, "path": str(path)}
        try:
            not_after = ca.certificate_not_after(path.read_bytes())
        except (OSError, ValueError) as exc:
            entry.update(problem=str(exc), warning=True)
        else:
            left = (not_after - moment) / timedelta(days=1)
            entry.update(
                not_after=rfc3339(not_after.timestamp()),
                days_left=int(left),
                warning=left < EXPIRY_WARNING_DAYS,
            )
        found.append(entry)
    crl: dict[str, Any] = {"name": "CRL", "path": str(config.tls.crl)}
    try:
        next_update = ca.crl_next_update(config.tls.crl.read_bytes())
    except (OSError, ValueError, PkiError) as exc:
        crl.update(problem=str(exc), warning=True)
    else:
        crl.update(next_update=rfc3339(next_update.timestamp()), warning=next_update <= moment)
    found.append(crl)
    return found


def gather(config: Config, now: float) -> dict[str, Any]:
    """Every fact of the dashboard (blocking: the admin listener, the database, LDAP)."""
    node, scrape = live(config, now)
    db_facts, stored = database(config, now)
    facts: dict[str, Any] = {
        "at": rfc3339(now),
        "node": {"id": config.node.id, "name": config.node.name, "home": str(config.home)},
        "daemon": node,
        "database": db_facts,
        "ldap": ldap(config, scrape, stored),
        "queues": stored["queues"] if stored is not None else None,
        "peers": peers(config, scrape),
        "certificates": node_certificates(config, now),
        "agency_certificates_expiring": (
            stored["agency_certificates_expiring"] if stored is not None else None
        ),
        "letters_today": (
            {"since": stored["today_since"], **stored["today"]} if stored is not None else None
        ),
    }
    return facts
