"""The cache of peers' directories: other nodes' agencies and signing keys.

Replaced per serving peer in one transaction, and kept when the peer cannot
be reached: letters can still be addressed while it is away.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, delete, select

from govnode.domain.address import Address
from govnode.domain.peer_directory import NodeDirectory, RemoteAgency
from govnode.store import directory
from govnode.store.schema import peer_agencies, peer_nodes


def thd_served(
    conn: Connection,
    *,
    node_id: str,
    signing_key: str,
    caller: str,
    now: float,
    peer_keys: dict[str, str],
) -> dict[str, Any]:
    """What this node serves `caller`: itself first, then the nodes it knows of,
    except `caller` and what `caller` itself told us. `peer_keys`: the configured
    peers' keys (PEM), which are served even before their directories are here."""
    own = NodeDirectory(
        node_id,
        signing_key,
        tuple(
            RemoteAgency(
                node=node_id,
                code=r.agency.code,
                name_fa=r.agency.name_fa,
                name_en=r.agency.name_en,
                kind=r.agency.kind,
                phase=r.agency.phase,
                parent=r.agency.parent,
                county=r.agency.county,
                status=str(r.status),
            )
            for r in directory.thd_all(conn, now=now)
        ),
    )
    known = conn.execute(
        select(peer_nodes.c.node, peer_nodes.c.signing_key, peer_nodes.c.agencies)
        .where(peer_nodes.c.node != caller, peer_nodes.c.via != caller)
        .order_by(peer_nodes.c.node)
    ).all()
    others = {
        row.node: NodeDirectory(
            row.node,
            peer_keys.get(row.node, row.signing_key),
            _agencies(conn, row.node) if row.agencies is not None else None,
        )
        for row in known
    }
    for node, pem in peer_keys.items():
        if node not in others and node != caller:
            others[node] = NodeDirectory(node, pem, None)
    ordered = [others[node] for node in sorted(others)]
    return {"nodes": [own.document(), *(other.document() for other in ordered)]}


def _agencies(conn: Connection, node: str) -> tuple[RemoteAgency, ...]:
    rows = conn.execute(
        select(peer_agencies).where(peer_agencies.c.node == node).order_by(peer_agencies.c.code)
    ).all()
    return tuple(RemoteAgency(**row._mapping) for row in rows)


def thd_replace(
    conn: Connection, *, via: str, directories: Sequence[NodeDirectory], now: float
) -> None:
    """Make what we know from `via` equal to `directories` (already filtered to
    the nodes `via` may speak for). A node served with its key only keeps the
    agencies cached before: `via` has just not heard from it lately."""
    counts = {
        row.node: row.agencies
        for row in conn.execute(select(peer_nodes.c.node, peer_nodes.c.agencies))
    }
    nodes = set(conn.scalars(select(peer_nodes.c.node).where(peer_nodes.c.via == via)))
    nodes |= {entry.node for entry in directories}
    replaced = nodes - {entry.node for entry in directories if entry.agencies is None}
    conn.execute(delete(peer_agencies).where(peer_agencies.c.node.in_(replaced)))
    conn.execute(delete(peer_nodes).where(peer_nodes.c.node.in_(nodes)))
    for entry in directories:
        conn.execute(
            peer_nodes.insert().values(
                node=entry.node,
                via=via,
                signing_key=entry.signing_key,
                agencies=counts.get(entry.node) if entry.agencies is None else len(entry.agencies),
                fetched_at=now,
            )
        )
        if entry.agencies:
            conn.execute(
                peer_agencies.insert(),
                [
                    {
                        "node": a.node,
                        "code": a.code,
                        "name_fa": a.name_fa,
                        "name_en": a.name_en,
                        "kind": a.kind,
                        "phase": a.phase,
                        "parent": a.parent,
                        "county": a.county,
                        "status": a.status,
                    }
                    for a in entry.agencies
                ],
            )


def thd_agency(conn: Connection, address: Address) -> RemoteAgency | None:
    row = conn.execute(
        select(peer_agencies).where(
            peer_agencies.c.node == address.node, peer_agencies.c.code == address.code
        )
    ).first()
    return RemoteAgency(**row._mapping) if row is not None else None


def thd_unknown(conn: Connection, addresses: Iterable[Address]) -> list[Address]:
    """Those of `addresses` at a node whose directory we hold that it does not list.

    An address at a node we hold no directory of is not unknown: it is checked
    where it is delivered.
    """
    wanted = list(addresses)
    nodes = {a.node for a in wanted}
    if not nodes:
        return []
    cached = set(
        conn.scalars(
            select(peer_nodes.c.node).where(
                peer_nodes.c.node.in_(nodes), peer_nodes.c.agencies.is_not(None)
            )
        )
    )
    asked = [a for a in wanted if a.node in cached]
    if not asked:
        return []
    listed = {
        (row.node, row.code)
        for row in conn.execute(
            select(peer_agencies.c.node, peer_agencies.c.code).where(
                peer_agencies.c.node.in_({a.node for a in asked}),
                peer_agencies.c.code.in_({a.code for a in asked}),
            )
        )
    }
    return [a for a in asked if (a.node, a.code) not in listed]


def thd_keys(conn: Connection) -> dict[str, str]:
    """The signing keys peers vouched for, by node."""
    rows = conn.execute(
        select(peer_nodes.c.node, peer_nodes.c.signing_key).where(
            peer_nodes.c.signing_key.is_not(None)
        )
    ).all()
    return {row.node: row.signing_key for row in rows}
