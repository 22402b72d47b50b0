"""`govnode peer add|list|remove`: peers managed from the command line.

`peer add` copies the peer's two files (what its `govnode peer export`
wrote) into `peers/<id>/` and lists the peer in `peers.toml`, beside
`govnode.toml`; the config loader reads both files, so `[[peers]]` written
by hand keep working and routes may name either. The running node reads its
peers at start: the commands say so.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import Connection

from govnode.cli.commands import _database, _load, now
from govnode.cli.errors import EXIT_PROBLEM, CliError
from govnode.cli.output import aligned, print_json
from govnode.config import PEERS_NAME, Config, ConfigError, parse_config, read_toml
from govnode.config.model import PeerSection
from govnode.domain.agency import is_node_id
from govnode.hooks.actor import operator
from govnode.pki import ca
from govnode.pki.files import write_atomic
from govnode.store import audit, queue_admin

HEADER = """\
# Peers added with `govnode peer add`, read together with the [[peers]] of
# govnode.toml (an id may be in only one of the two). Change it with
# `govnode peer add` and `govnode peer remove`; restart the node to apply.
"""

RESTART = "the running node uses the change once restarted (systemctl restart govnode)"

_GOVNODE_CA = re.compile(r"^govnode (\S+) CA$")  # the CN `govnode init` gives a node CA


def _peers_path(config: Config) -> Path:
    return config.home / PEERS_NAME


def _tables(config: Config) -> list[dict[str, Any]]:
    """The peer tables of peers.toml as they are (the loader has checked them)."""
    path = _peers_path(config)
    if not path.exists():
        return []
    try:
        tables: list[dict[str, Any]] = list(read_toml(path).get("peers", []))
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    return tables


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value), ensure_ascii=False)  # a TOML basic string


def _render(tables: list[dict[str, Any]]) -> str:
    """peers.toml for these tables; read back to be sure it says exactly that."""
    blocks = [
        "[[peers]]\n" + "".join(f"{key} = {_toml_value(value)}\n" for key, value in table.items())
        for table in tables
    ]
    text = HEADER + "".join("\n" + block for block in blocks)
    try:
        readable = tomllib.loads(text) == ({"peers": tables} if tables else {})
    except tomllib.TOMLDecodeError:
        readable = False
    if not readable:
        raise CliError(f"these values cannot be written into {PEERS_NAME}: {tables[-1]}")
    return text


def _check(config: Config, tables: list[dict[str, Any]]) -> None:
    """The configuration with these peers must load: the node would refuse to start."""
    try:
        parse_config(
            config.path,
            read_toml(config.path),
            read_secrets=False,
            peers_file=(_peers_path(config), {"peers": tables}),
        )
    except ConfigError as exc:
        raise CliError(str(exc)) from None


def _read(path: Path, option: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CliError(f"{option}: cannot read {path}: {exc.strerror}") from None


def _ca_certificate(path: Path, peer_id: str, moment: datetime) -> tuple[bytes, x509.Certificate]:
    """The peer's node CA: a CA certificate, valid now, and not another node's."""
    data = _read(path, "--ca-cert")
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise CliError(f"--ca-cert: {path} is not a PEM certificate") from None
    for cert in certificates:
        try:
            is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            raise CliError(
                f"--ca-cert: {path} holds a certificate that is not a CA "
                f"({cert.subject.rfc4514_string()}); give the peer's node CA (ID-ca.pem)"
            )
        if cert.not_valid_after_utc <= moment:
            raise CliError(
                f"--ca-cert: {path} expired on {cert.not_valid_after_utc:%Y-%m-%d}; "
                "ask the peer's operator for its current CA"
            )
        for name in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
            named = _GOVNODE_CA.match(str(name.value))
            if named and named.group(1) != peer_id:
                raise CliError(
                    f"--ca-cert: {path} is the CA of node {named.group(1)!r}, not of {peer_id!r}"
                )
    return data, certificates[0]


def _signing_key(path: Path) -> bytes:
    """The peer's public signing key (an EC key); a private key is refused, not used."""
    data = _read(path, "--signing-key")
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        try:
            serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            raise CliError(f"--signing-key: {path} is not a PEM public key") from None
        raise CliError(
            f"--signing-key: {path} is a private key; give the public key that the peer's "
            "`govnode peer export` writes (ID-signing.pem)"
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise CliError(f"--signing-key: {path} is not an EC public key (govnode signs with P-256)")
    return data


def _routed(config: Config, peer_id: str) -> list[str]:
    """The [federation] keys that send letters through `peer_id`."""
    routes = config.federation.routes
    keys = [f"federation.routes.{dest}" for dest, hop in routes.items() if hop == peer_id]
    if config.federation.default_route == peer_id:
        keys.append("federation.default_route")
    return keys


def add(args: argparse.Namespace) -> int:
    """Make another node a peer from the files its `govnode peer export` wrote."""
    config = _load(args.home, read_secrets=False)
    peer_id: str = args.peer_id
    if not is_node_id(peer_id):
        raise CliError(f"{peer_id!r} is not a node id (short lowercase name, like center)")
    if peer_id == config.node.id:
        raise CliError(f"{peer_id!r} is this node's own id; a peer is another node")
    for peer in config.peers:
        if peer.id == peer_id:
            raise CliError(
                f"peer {peer_id} is already configured in {peer.defined_in}", EXIT_PROBLEM
            )
    url = args.url.rstrip("/")
    if not url.startswith("https://"):
        raise CliError(f"--url: must be an https:// URL, not {args.url!r}")
    if not 1 <= args.max_concurrency <= 256:
        raise CliError(f"--max-concurrency: must be between 1 and 256, not {args.max_concurrency}")
    moment = now()
    ca_pem, ca_cert = _ca_certificate(args.ca_cert, peer_id, moment)
    key_pem = _signing_key(args.signing_key)
    folder = config.home / "peers" / peer_id
    table = {
        "id": peer_id,
        "url": url,
        "ca_cert": f"peers/{peer_id}/ca.pem",
        "signing_key": f"peers/{peer_id}/signing.pem",
        "max_concurrency": args.max_concurrency,
    }
    tables = [*_tables(config), table]
    _check(config, tables)
    text = _render(tables)

    def write(conn: Connection) -> None:
        # In the audit transaction: a failed write leaves no record of an added peer.
        audit.thd_append(
            conn,
            "peer.add",
            actor=operator(),
            subject=peer_id,
            at=moment.timestamp(),
            detail={
                "url": url,
                "ca_sha256": ca.fingerprint_sha256(ca_pem),
                "ca_subject": ca_cert.subject.rfc4514_string(),
            },
        )
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(folder / "ca.pem", ca_pem)
        write_atomic(folder / "signing.pem", key_pem)
        write_atomic(_peers_path(config), text.encode("utf-8"), mode=0o640)

    _database(config).run_sync(write)
    print(
        f"peer {peer_id} added to {_peers_path(config)}: {url}, CA "
        f"{ca_cert.subject.rfc4514_string()} until {ca_cert.not_valid_after_utc:%Y-%m-%d}"
    )
    if not _routed(config, peer_id):
        print(
            f"no route leads to it yet: set default_route = {json.dumps(peer_id)} or "
            f"routes = {{ NODE = {json.dumps(peer_id)} }} in [federation] of {config.path}"
        )
    print(RESTART)
    return 0


def remove(args: argparse.Namespace) -> int:
    """Remove a peer that `peer add` added; one of govnode.toml is the file's to change."""
    config = _load(args.home, read_secrets=False)
    peer_id: str = args.peer_id
    peer = next((p for p in config.peers if p.id == peer_id), None)
    if peer is None:
        known = ", ".join(p.id for p in config.peers) or "none"
        raise CliError(f"no peer {peer_id!r} (peers: {known})", EXIT_PROBLEM)
    if peer.defined_in != _peers_path(config):
        raise CliError(
            f"peer {peer_id} is configured in {peer.defined_in} ([[peers]]); remove it there",
            EXIT_PROBLEM,
        )
    routed = _routed(config, peer_id)
    if routed:
        raise CliError(
            f"{config.path}: {', '.join(routed)} {'send' if len(routed) > 1 else 'sends'} "
            f"letters through {peer_id}; change that first",
            EXIT_PROBLEM,
        )
    tables = [table for table in _tables(config) if table.get("id") != peer_id]
    _check(config, tables)
    text = _render(tables)
    db = _database(config)
    moment = now().timestamp()

    def write(conn: Connection) -> None:
        audit.thd_append(
            conn, "peer.remove", actor=operator(), subject=peer_id, at=moment, detail={}
        )
        write_atomic(_peers_path(config), text.encode("utf-8"), mode=0o640)

    db.run_sync(write)
    shutil.rmtree(config.home / "peers" / peer_id, ignore_errors=True)
    print(f"peer {peer_id} removed from {_peers_path(config)}")
    waiting = sum(
        line.recipients
        for line in db.read_sync(queue_admin.thd_overview, node_id=config.node.id)
        if line.destination == peer_id
    )
    if waiting:
        print(
            f"{waiting} recipients still wait for {peer_id}: after the restart they take the "
            f"default route or fail (`govnode queue hold --peer {peer_id}` keeps them)"
        )
    print(RESTART)
    return 0


def _describe(peer: PeerSection, moment: datetime) -> dict[str, Any]:
    """One peer for `peer list`: its CA's subject and expiry, or what is wrong with its files."""
    row: dict[str, Any] = {
        "id": peer.id,
        "url": peer.url,
        "defined_in": str(peer.defined_in),
        "ca_cert": str(peer.ca_cert) if peer.ca_cert else None,
        "fingerprint": peer.fingerprint,
        "signing_key": str(peer.signing_key),
        "max_concurrency": peer.max_concurrency,
        "ca_subject": None,
        "ca_expires": None,
        "problem": None,
    }
    if peer.ca_cert is not None:
        try:
            cert = x509.load_pem_x509_certificates(peer.ca_cert.read_bytes())[0]
        except OSError as exc:
            row["problem"] = f"cannot read {peer.ca_cert}: {exc.strerror}"
            return row
        except ValueError:
            row["problem"] = f"{peer.ca_cert} is not a PEM certificate"
            return row
        row["ca_subject"] = cert.subject.rfc4514_string()
        row["ca_expires"] = cert.not_valid_after_utc.isoformat()
        if cert.not_valid_after_utc <= moment:
            row["problem"] = f"its CA expired on {cert.not_valid_after_utc:%Y-%m-%d}"
    try:
        serialization.load_pem_public_key(peer.signing_key.read_bytes())
    except OSError as exc:
        row["problem"] = f"cannot read {peer.signing_key}: {exc.strerror}"
    except ValueError:
        row["problem"] = f"{peer.signing_key} is not a PEM public key"
    return row


def listing(args: argparse.Namespace) -> int:
    """Every peer, from govnode.toml and peers.toml; non-zero when a peer's files are wrong."""
    config = _load(args.home, read_secrets=False)
    moment = now()
    rows = [_describe(peer, moment) for peer in config.peers]
    if args.json:
        print_json(rows)
    elif not rows:
        print(f"no peers: none in {config.path} ([[peers]]) nor in {_peers_path(config)}")
    else:
        table: list[tuple[str, ...]] = [("PEER", "URL", "DEFINED IN", "CA EXPIRES", "CA")]
        for row in rows:
            expires = "-"
            if row["ca_expires"]:
                until = datetime.fromisoformat(row["ca_expires"])
                expires = f"{until:%Y-%m-%d} ({(until - moment).days} d)"
            about = row["ca_subject"] or f"pinned sha256 {row['fingerprint']}"
            table.append(
                (
                    row["id"],
                    row["url"],
                    Path(row["defined_in"]).name,
                    expires,
                    f"PROBLEM: {row['problem']}" if row["problem"] else about,
                )
            )
        print(aligned(table))
    return EXIT_PROBLEM if any(row["problem"] for row in rows) else 0
