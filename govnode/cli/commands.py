"""What each `govnode` subcommand does. Blocking is fine here: the CLI has no reactor."""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import os
import re
import shutil
import tomllib
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from govnode.cli.errors import EXIT_PROBLEM, CliError
from govnode.cli.output import aligned, print_json
from govnode.cli.plugins import check_enrollment
from govnode.config import CONFIG_NAME, Config, ConfigError, load_config, parse_config
from govnode.config.template import InitValues, render_config
from govnode.directory.errors import DirectoryUnavailable
from govnode.directory.ldap import LdapDirectory
from govnode.domain.agency import AgencyStatus, is_agency_code, is_node_id
from govnode.domain.routing import RoutingTable
from govnode.hooks.errors import PluginError
from govnode.hooks.manager import load_plugins
from govnode.pki import ca, signing
from govnode.pki.authority import NodeAuthority
from govnode.pki.errors import PkiError
from govnode.pki.files import read_pem, write_atomic, write_private
from govnode.relay.peer_check import PeerStatus, check_peer
from govnode.store import audit, directory, outbound, queue_admin
from govnode.store.database import Database, DatabaseUnavailable
from govnode.store.migrate import (
    SchemaOutOfDate,
    check_schema,
    current_revision,
    known_revisions,
    upgrade,
)
from govnode.store.urls import shown_url


def now() -> datetime:
    return datetime.now(UTC)


def _load(home: Path, *, read_secrets: bool = True) -> Config:
    try:
        return load_config(home / CONFIG_NAME, read_secrets=read_secrets)
    except ConfigError as exc:
        raise CliError(str(exc)) from None


def _database_problem(exc: SQLAlchemyError | DatabaseUnavailable) -> str:
    """The driver's own words (`unable to open database file`), without SQLAlchemy's links."""
    original = getattr(exc, "orig", None)
    # One line: libpq puts its hints on lines of their own.
    return " ".join(str(original if original is not None else exc).split())


def _database(config: Config, *, check: bool = True) -> Database:
    db = Database(config.database.url, pool_size=config.database.pool_size)
    if check:
        try:
            check_schema(db.engine)
        except SchemaOutOfDate as exc:
            raise CliError(f"{shown_url(config.database.url)}: {exc}") from None
        except (DatabaseUnavailable, SQLAlchemyError) as exc:
            raise CliError(
                f"database {shown_url(config.database.url)} unreachable: {_database_problem(exc)}",
                EXIT_PROBLEM,
            ) from None
    return db


# -- init -------------------------------------------------------------------


_MAX_NODE_NAME = 64
"""The node name becomes the O of the CA certificate, which RFC 5280 limits to 64 characters."""

_DNS_NAME = re.compile(
    r"^(\*\.)?[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)
"""An ASCII host name (internationalised names go in their xn-- form), optionally `*.`."""

_INIT_OPTIONS = {
    "node.id": "--node",
    "node.name": "--name",
    "listen.api": "--api-listen",
    "listen.admin": "--admin-listen",
    "tls.server_names": "--dns/--ip",
    "ldap.urls": "--ldap-url",
    "ldap.base_dn": "--ldap-base-dn",
    "ldap.agencies_dn": "--ldap-base-dn",
    "ldap.bind_dn": "--ldap-bind-dn",
    "database.url": "--database-url",
}
"""Which `init` option gave each config key, to name it when its value is refused."""


def _check_home_is_new(home: Path) -> None:
    try:
        if home.exists() and not home.is_dir():
            raise CliError(f"{home} exists and is not a folder; refusing to overwrite it")
        if (home / CONFIG_NAME).exists() or (home.exists() and any(home.iterdir())):
            raise CliError(f"{home} already holds files; refusing to overwrite a node home")
    except OSError as exc:
        raise CliError(f"cannot look into {home}: {exc.strerror or exc}") from None


def _server_names(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses) for the server certificate, each checked on its own."""
    dns: list[str] = list(args.dns)
    ips: list[str] = list(args.ip)
    if not dns and not ips:
        defaults = InitValues().server_names
        return [n for n in defaults if not _is_ip(n)], [n for n in defaults if _is_ip(n)]
    for name in dns:
        if _is_ip(name):
            raise CliError(f"--dns: {name!r} is an IP address; give it with --ip")
        if not _DNS_NAME.fullmatch(name):
            raise CliError(
                f"--dns: {name!r} is not a DNS name (ASCII letters, digits, '-' and dots; "
                "an internationalised name in its xn-- form)"
            )
    for address in ips:
        if not _is_ip(address):
            raise CliError(f"--ip: {address!r} is not an IP address")
    return dns, ips


def _init_values(args: argparse.Namespace, home: Path) -> InitValues:
    """Check every option before anything is written, naming the option at fault."""
    if not is_node_id(args.node):
        raise CliError(f"--node: {args.node!r} is not a node id (short lowercase name, like kb)")
    if len(args.name) > _MAX_NODE_NAME:
        raise CliError(
            f"--name: at most {_MAX_NODE_NAME} characters (it becomes the CA certificate's "
            f"organisation name), got {len(args.name)}"
        )
    dns, ips = _server_names(args)
    base_dn = args.ldap_base_dn or f"dc={args.node},dc=gov,dc=ir"
    values = InitValues(
        node_id=args.node,
        node_name=args.name,
        api_listen=args.api_listen,
        admin_listen=args.admin_listen,
        server_names=(*dns, *ips),
        ldap_urls=tuple(args.ldap_url) or InitValues().ldap_urls,
        ldap_base_dn=base_dn,
        ldap_bind_dn=args.ldap_bind_dn or f"cn=govnode,ou=services,{base_dn}",
        database_url=args.database_url or InitValues().database_url,
    )
    values = _with_data_dir(values, args.data_dir, keep_url=args.database_url is not None)
    # The config that init would write must load: check it now, against the
    # final path, so that a refusal names the option and no staging folder.
    try:
        text = render_config(values)
        text.encode("utf-8")  # arguments that were not UTF-8 arrive as lone surrogates
        parse_config(home / CONFIG_NAME, tomllib.loads(text), read_secrets=False)
    except ConfigError as exc:
        key = (exc.key or "").split("[", 1)[0]
        option = _INIT_OPTIONS.get(key, exc.key or str(exc.path))
        raise CliError(f"{option}: {exc.message}") from None
    except (tomllib.TOMLDecodeError, UnicodeEncodeError) as exc:
        raise CliError(f"these options cannot be written into {CONFIG_NAME}: {exc}") from None
    return values


def _with_data_dir(values: InitValues, data_dir: str | None, *, keep_url: bool) -> InitValues:
    """`--data-dir`: the data folder, and the SQLite database in it (unless
    `--database-url` named another database)."""
    if data_dir is None:
        return values
    if not data_dir.strip():
        raise CliError("--data-dir: give a folder, e.g. /var/lib/govnode")
    if keep_url:
        return dataclasses.replace(values, data_dir=data_dir)
    database_url = f"sqlite:///{Path(data_dir) / 'govnode.db'}"
    return dataclasses.replace(values, data_dir=data_dir, database_url=database_url)


def _outside_data_dir(home: Path, values: InitValues) -> Path | None:
    """A `--data-dir` outside the home, checked to be missing or empty: init may
    fill it, and must not mix a new database into another node's state."""
    folder = Path(os.path.abspath(home / values.data_dir))
    if folder.is_relative_to(home):
        return None
    try:
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise CliError(f"--data-dir: {folder} already holds files; refusing to mix in a node")
    except OSError as exc:
        raise CliError(f"--data-dir: cannot look into {folder}: {exc.strerror or exc}") from None
    return folder


def _empty_data_dir(folder: Path | None, *, made: bool) -> None:
    """Undo what a failed init wrote into an outside data folder."""
    if folder is None or not folder.exists():
        return
    if made:
        shutil.rmtree(folder, ignore_errors=True)
        return
    for entry in folder.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def init(args: argparse.Namespace) -> int:
    # abspath, not absolute(): `--home x/..` must have a real name for the staging folder.
    home = Path(os.path.abspath(args.home))
    _check_home_is_new(home)
    values = _init_values(args, home)
    data_outside = _outside_data_dir(home, values)
    made_data = data_outside is not None and not data_outside.exists()
    # Build the whole home beside its final place, then rename: a failed init
    # leaves nothing half-made behind.
    try:
        home.parent.mkdir(parents=True, exist_ok=True)
        staging = home.with_name(f".{home.name}.init-{os.getpid()}")
        try:
            _build_home(staging, values, args)
            if home.exists():
                home.rmdir()
            staging.rename(home)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            _empty_data_dir(data_outside, made=made_data)
            raise
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename and exc.filename != str(home) else ""
        raise CliError(f"cannot create {home}: {where}{exc.strerror or exc}") from None
    except PkiError as exc:
        raise CliError(f"cannot create the node's certificates in {home}: {exc}") from None
    except SQLAlchemyError as exc:
        raise CliError(
            f"cannot create the database of {home}: {_database_problem(exc)}", EXIT_PROBLEM
        ) from None
    print(f"node {values.node_id} created in {home}")
    print(f"  CA certificate (give it to agencies): {home / 'pki/ca.pem'}")
    print("next steps:")
    if args.ldap_password_file is None:
        print(
            f"  - put the LDAP service account's password into {home / values.ldap_password_file}"
        )
    print(f"  - check the [ldap] section of {home / CONFIG_NAME}")
    print(f"  - govnode --home {home} check")
    print(f"  - govnode --home {home} agency enroll CODE --out DIR")
    return 0


def _build_home(staging: Path, values: InitValues, args: argparse.Namespace) -> None:
    staging.mkdir(mode=0o750)
    for folder, mode in (("pki", 0o700), ("secrets", 0o700)):
        (staging / folder).mkdir(mode=mode)
    password = b""
    if args.ldap_password_file is not None:
        try:
            password = args.ldap_password_file.read_bytes()
        except OSError as exc:
            raise CliError(
                f"--ldap-password-file: cannot read {args.ldap_password_file}: {exc.strerror}"
            ) from None
    write_private(staging / values.ldap_password_file, password)
    write_atomic(staging / CONFIG_NAME, render_config(values).encode("utf-8"), mode=0o640)
    config = _load(staging, read_secrets=False)
    config.node.data_dir.mkdir(mode=0o750, parents=True, exist_ok=True)  # data/ or --data-dir
    moment = now()
    authority_cert = ca.create_ca(values.node_id, values.node_name, now=moment)
    write_atomic(config.tls.ca_cert, authority_cert.cert_pem)
    write_private(config.tls.ca_key, authority_cert.key_pem)
    dns = [name for name in values.server_names if not _is_ip(name)]
    ips = [name for name in values.server_names if _is_ip(name)]  # init checked each one
    # The agency API's server certificate, and the node certificate for federation.
    for issue, cert_path, key_path in (
        (ca.issue_server_certificate, config.tls.server_cert, config.tls.server_key),
        (ca.issue_node_certificate, config.tls.node_cert, config.tls.node_key),
    ):
        issued = issue(
            authority_cert.cert_pem,
            authority_cert.key_pem,
            node_id=values.node_id,
            dns_names=dns,
            ip_addresses=ips,
            now=moment,
        )
        write_atomic(cert_path, issued.cert_pem)
        write_private(key_path, issued.key_pem)
    db = Database(config.database.url)
    try:
        upgrade(db.engine)
        authority = NodeAuthority(config.tls, config.node.id, db)
        authority.publish_crl(now=moment)
        authority.signing_key()
    finally:
        db.stop()


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


# -- agencies ---------------------------------------------------------------


def _sync(config: Config, db: Database) -> tuple[int, int]:
    entries = LdapDirectory(config.ldap).fetch_agencies_sync()
    return db.run_sync(directory.thd_replace_all, entries, now=now().timestamp())


def agency_enroll(args: argparse.Namespace) -> int:
    config = _load(args.home)
    db = _database(config)
    code: str = args.code
    if not is_agency_code(code):
        raise CliError(f"{code!r} is not an agency code (lowercase letters, digits, '-')")
    record = db.run_sync(directory.thd_get, code, now=now().timestamp())
    if record is None:
        try:
            _sync(config, db)
        except DirectoryUnavailable as exc:
            raise CliError(
                f"{code!r} is not in the directory cache and LDAP cannot be "
                f"reached to look again: {exc}",
                EXIT_PROBLEM,
            ) from None
        record = db.run_sync(directory.thd_get, code, now=now().timestamp())
    if record is None:
        raise CliError(
            f"agency {code!r} is not in the directory ({config.ldap.agencies_dn}); "
            "add it to LDAP first",
            EXIT_PROBLEM,
        )
    authority = NodeAuthority(config.tls, config.node.id, db)
    out: Path = args.out
    if record.status is AgencyStatus.ACTIVE and not args.force:
        raise CliError(
            f"{code} is already enrolled (certificate {record.fingerprint_sha256}); "
            "use --force to issue a new one and revoke the old",
            EXIT_PROBLEM,
        )
    check_enrollment(args.home, record)  # the plugins may refuse, with their reason
    if (out / "key.pem").exists() and not args.force:
        raise CliError(f"{out / 'key.pem'} exists; refusing to overwrite (use --force)")
    # The folder must be usable before a certificate is recorded: a certificate
    # whose key was never written would make the agency `active` for nothing.
    try:
        out.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise CliError(f"--out: cannot create {out}: {exc.strerror or exc}") from None
    if args.force and record.status is AgencyStatus.ACTIVE:
        authority.revoke(code, now=now(), reason="superseded by a new enrollment")
    issued = issue_agency_files(config, authority, code, out, days=args.days)
    print(f"enrolled {code}@{config.node.id} ({record.agency.name_fa})")
    print(
        f"  certificate {out / 'cert.pem'}, key {out / 'key.pem'} (mode 0600), CA {out / 'ca.pem'}"
    )
    print(f"  sha256 {issued.fingerprint_sha256}, valid until {issued.not_after:%Y-%m-%d}")
    return 0


def issue_agency_files(
    config: Config,
    authority: NodeAuthority,
    code: str,
    out: Path,
    *,
    days: int | None,
    csr_pem: bytes | None = None,
) -> ca.Issued:
    """Issue `code` a certificate and write cert.pem, key.pem (none for a CSR) and ca.pem
    into `out` (which exists); if the files cannot be written the certificate is
    revoked again. Shared by `agency enroll` and `agency renew`."""
    try:
        issued = authority.enroll(code, now=now(), valid_days=days, csr_pem=csr_pem)
    except PkiError as exc:
        raise CliError(str(exc)) from None
    try:
        write_atomic(out / "cert.pem", issued.cert_pem)
        if csr_pem is None:
            write_private(out / "key.pem", issued.key_pem)
        write_atomic(out / "ca.pem", read_pem(config.tls.ca_cert, "the node CA certificate"))
    except PkiError as exc:
        authority.revoke_serial(
            code, issued.serial, now=now(), reason="enrollment failed: files not written"
        )
        raise CliError(
            f"{exc}; the certificate just issued is revoked again ({code} has no new one)",
            EXIT_PROBLEM,
        ) from None
    return issued


def agency_revoke(args: argparse.Namespace) -> int:
    config = _load(args.home, read_secrets=False)
    db = _database(config)
    serials = NodeAuthority(config.tls, config.node.id, db).revoke(
        args.code, now=now(), reason=args.reason
    )
    if not serials:
        raise CliError(f"{args.code} has no unrevoked certificate", EXIT_PROBLEM)
    print(f"revoked {len(serials)} certificate(s) of {args.code}: {', '.join(serials)}")
    print(
        f"  CRL updated ({config.tls.crl}); a running node refuses them within "
        f"{config.tls.reload_interval:g} s"
    )
    return 0


def peer_export(args: argparse.Namespace) -> int:
    """Write this node's CA and public signing key, and the [[peers]] lines for them.

    The other node's operator copies the files into its home and the lines
    into its govnode.toml; nothing secret leaves this node.
    """
    config = _load(args.home, read_secrets=False)
    if not args.url.startswith("https://"):
        raise CliError(f"--url: must be an https:// URL, not {args.url!r}")
    files, lines = peer_material(config, args.url)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        write_atomic(args.out / name, content)
    names = " and ".join(str(args.out / name) for name in files)
    ca_file, key_file = (args.out / name for name in files)
    print(f"wrote {names}.")
    print("On the other node, with these files copied there, run")
    print(
        f"  govnode peer add {config.node.id} --url {args.url.rstrip('/')} "
        f"--ca-cert {ca_file} --signing-key {key_file}"
    )
    print("or copy them to peers/ in its home and add to its govnode.toml:")
    print()
    print(lines)
    return 0


def peer_material(config: Config, url: str) -> tuple[dict[str, bytes], str]:
    """What another node needs to make this one its peer: files for its `peers/`
    folder (the CA, the public signing key) and the `[[peers]]` lines naming them."""
    node_id = config.node.id
    try:
        ca_pem = config.tls.ca_cert.read_bytes()
        public = signing.public_pem(config.tls.signing_key.read_bytes())
    except OSError as exc:
        raise CliError(f"{exc.filename}: cannot read: {exc.strerror}") from None
    files = {f"{node_id}-ca.pem": ca_pem, f"{node_id}-signing.pem": public}
    lines = "\n".join(
        [
            "[[peers]]",
            f'id = "{node_id}"',
            f'url = "{url.rstrip("/")}"',
            f'ca_cert = "peers/{node_id}-ca.pem"',
            f'signing_key = "peers/{node_id}-signing.pem"',
        ]
    )
    return files, lines


def _peer_rows(
    statuses: list[PeerStatus], activity: dict[str, outbound.PeerActivity], moment: datetime
) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [
        ("PEER", "STATUS", "MS", "CERT EXPIRES", "LAST SUCCESS", "BACKOFF", "URL / DETAIL")
    ]
    at = moment.timestamp()
    for s in statuses:
        expires = "-"
        if s.certificate_expires is not None:
            days = (s.certificate_expires - moment).days
            expires = f"{s.certificate_expires:%Y-%m-%d} ({days} d)"
        seen = activity[s.peer]
        last = f"{(at - seen.last_success) / 60:.1f} min ago" if seen.last_success else "never"
        backoff = "-"
        if seen.backing_off and seen.next_attempt is not None:
            backoff = f"{seen.backing_off} wait, next in {(seen.next_attempt - at) / 60:.1f} min"
        rows.append(
            (
                s.peer,
                "ok" if s.ok else "FAILING",
                f"{s.milliseconds:.0f}" if s.milliseconds is not None else "-",
                expires,
                last,
                backoff,
                f"{s.url}  {s.detail}",
            )
        )
    return rows


def _iso(timestamp: float | None) -> str | None:
    return datetime.fromtimestamp(timestamp, UTC).isoformat() if timestamp is not None else None


def queue(args: argparse.Namespace) -> int:
    """Letters waiting for other nodes: per destination, how many, how old, how tried."""
    config = _load(args.home, read_secrets=False)
    lines = _database(config).read_sync(queue_admin.thd_overview, node_id=config.node.id)
    moment = now().timestamp()
    rows = [
        {
            "destination": line.destination,
            "letters": line.letters,
            "recipients": line.recipients,
            "held": line.held,
            "oldest_minutes": round((moment - line.oldest) / 60, 1),
            "most_attempts": line.most_attempts,
            "last_error": line.last_error,
        }
        for line in lines
    ]
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("the queue is empty")
        return 0
    header = (
        "DESTINATION",
        "LETTERS",
        "RECIPIENTS",
        "HELD",
        "OLDEST (MIN)",
        "ATTEMPTS",
        "LAST ERROR",
    )
    table = [header] + [
        (
            str(r["destination"]),
            str(r["letters"]),
            str(r["recipients"]),
            str(r["held"]),
            str(r["oldest_minutes"]),
            str(r["most_attempts"]),
            str(r["last_error"] or ""),
        )
        for r in rows
    ]
    print(aligned(table))
    return 0


def queue_show(args: argparse.Namespace) -> int:
    config = _load(args.home, read_secrets=False)
    rows = _database(config).read_sync(outbound.thd_queued_letter, args.letter_id)
    if not rows:
        raise CliError(f"no letter {args.letter_id!r} on this node")
    moment = now().timestamp()
    for row in rows:
        facts = (row["status"], row["next_attempt_at"], row["reason"])
        row["held"] = queue_admin.is_held(*facts)
        row["in_flight"] = queue_admin.is_in_flight(*facts, now=moment)
    if args.json:
        print_json(rows)
        return 0
    for row in rows:
        due = (
            datetime.fromtimestamp(row["next_attempt_at"], UTC).strftime("%Y-%m-%d %H:%M:%S")
            if row["next_attempt_at"]
            else "-"
        )
        # In flight: claimed by the relay worker, `next` is when its lease runs out.
        note = "being sent" if row["in_flight"] else row["reason"]
        print(
            f"{row['address']}  {'held' if row['held'] else row['status']}  "
            f"attempts={row['attempts']}  next={due}" + (f"  {note}" if note else "")
        )
    return 0


def peers(args: argparse.Namespace) -> int:
    """Each configured peer: reachable over mutual TLS, the right node, its certificate's
    expiry; non-zero when any peer is failing."""
    config = _load(args.home, read_secrets=False)
    if not config.peers:
        print(f"no peers configured in {config.path} ([[peers]])")
        return 0
    statuses = [
        check_peer(peer, node_cert=config.tls.node_cert, node_key=config.tls.node_key)
        for peer in config.peers
    ]
    routing = RoutingTable(
        config.node.id, config.federation.routes, config.federation.default_route
    )
    moment = now()
    activity = _database(config).read_sync(
        outbound.thd_peer_activity,
        peers=[peer.id for peer in config.peers],
        node_id=config.node.id,
        next_hop=lambda node: routing.next_hop(node) if routing.routable(node) else None,
        now=moment.timestamp(),
    )
    if args.json:
        rows = [
            {
                "peer": s.peer,
                "url": s.url,
                "ok": s.ok,
                "detail": s.detail,
                "milliseconds": s.milliseconds,
                "certificate_expires": (
                    s.certificate_expires.isoformat() if s.certificate_expires else None
                ),
                "last_success": _iso(activity[s.peer].last_success),
                "backing_off": activity[s.peer].backing_off,
                "next_attempt": _iso(activity[s.peer].next_attempt),
            }
            for s in statuses
        ]
        print_json(rows)
    else:
        print(aligned(_peer_rows(statuses, activity, moment)))
    return 0 if all(s.ok for s in statuses) else EXIT_PROBLEM


def agency_list(args: argparse.Namespace) -> int:
    config = _load(args.home, read_secrets=False)
    db = _database(config)
    records = db.run_sync(directory.thd_all, now=now().timestamp())
    rows = [
        {
            "code": r.agency.code,
            "name": r.agency.name_fa,
            "phase": r.agency.phase,
            "status": str(r.status),
            "certificate_expires": (
                datetime.fromtimestamp(r.certificate_not_after, UTC).strftime("%Y-%m-%d")
                if r.certificate_not_after
                else None
            ),
        }
        for r in records
    ]
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("the directory cache is empty: run `govnode directory sync`")
        return 0
    width = max(len(record.agency.code) for record in records)
    print(f"{'CODE':<{width}}  PHASE  {'STATUS':<9}  {'EXPIRES':<10}  NAME")
    for row in rows:
        print(
            f"{row['code']:<{width}}  {row['phase']:<5}  {row['status']:<9}  "
            f"{row['certificate_expires'] or '-':<10}  {row['name']}"
        )
    counts = {status: sum(1 for r in rows if r["status"] == status) for status in AgencyStatus}
    print(f"{len(rows)} agencies: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    return 0


# -- directory, check, db ---------------------------------------------------


def directory_sync(args: argparse.Namespace) -> int:
    config = _load(args.home)
    db = _database(config)
    try:
        kept, removed = _sync(config, db)
    except DirectoryUnavailable as exc:
        raise CliError(f"directory sync failed: {exc}", EXIT_PROBLEM) from None
    print(f"synced {kept} agencies from {', '.join(config.ldap.urls)} ({removed} removed)")
    return 0


def check(args: argparse.Namespace) -> int:
    config = _load(args.home)
    print(f"ok    config {config.path}")
    problems = 0

    def report(ok: bool, message: str) -> None:
        nonlocal problems
        problems += not ok
        print(f"{'ok ' if ok else 'FAIL'}   {message}")

    db = Database(config.database.url)
    count: int | None = None
    shown = shown_url(config.database.url)  # never its password
    try:
        check_schema(db.engine)
        count = db.run_sync(directory.thd_count)
        report(True, f"database {shown} (schema current, {count} agencies cached)")
    except SchemaOutOfDate as exc:
        report(False, f"database {shown}: {exc}")
    except (DatabaseUnavailable, SQLAlchemyError) as exc:
        report(False, f"database {shown} unreachable: {_database_problem(exc)}")
    try:
        LdapDirectory(config.ldap).ping_sync()
        report(True, f"ldap {', '.join(config.ldap.urls)} (service account binds)")
    except DirectoryUnavailable as exc:
        report(False, f"ldap: {exc}")
    from govnode.cli.certs import report_certificates

    warnings = 0

    def report_level(level: str, message: str) -> None:
        nonlocal warnings
        if level == "WARN":
            warnings += 1
            print(f"WARN   {message}")
        else:
            report(level == "ok", message)

    report_certificates(config, db if count is not None else None, report_level)
    if getattr(args, "strict", False):
        problems += warnings  # monitoring: a certificate to renew is worth a page
    if problems:
        print(f"{problems} problem(s)")
    elif warnings:
        print(f"no problems, {warnings} warning(s): renew before it is too late (--strict fails)")
    else:
        print("all checks passed")
    return 0 if not problems else EXIT_PROBLEM


def db_upgrade(args: argparse.Namespace) -> int:
    config = _load(args.home, read_secrets=False)
    db = Database(config.database.url)
    shown = shown_url(config.database.url)
    try:
        before = current_revision(db.engine)
        if before is not None and before not in known_revisions():
            raise CliError(
                f"database {shown} is at revision {before}, which this govnode "
                "does not know (made by a newer version?); refusing to touch it"
            )
        upgrade(db.engine)
        after = current_revision(db.engine)
    except SQLAlchemyError as exc:
        raise CliError(
            f"database {shown}: upgrade failed: {_database_problem(exc)}",
            EXIT_PROBLEM,
        ) from None
    finally:
        db.stop()
    print(
        f"database {shown}: {before or 'empty'} -> {after}"
        if before != after
        else f"database {shown} is current ({after})"
    )
    return 0


def serve(args: argparse.Namespace) -> int:
    from govnode.cli.serve import serve as run_node

    config = _load(args.home)
    _database(config)  # refuses an old schema before anything listens
    try:
        plugins = load_plugins(config)  # a plugin that cannot be used stops start-up
    except (PluginError, ConfigError) as exc:
        raise CliError(str(exc), EXIT_PROBLEM) from None
    return run_node(config, home=args.home, secondary_of=args.secondary_of, plugins=plugins)


def audit_verify(args: argparse.Namespace) -> int:
    """Check the hash chain and the signed checkpoints; name the first broken record."""
    config = _load(args.home, read_secrets=False)
    db = _database(config)
    key = NodeAuthority(config.tls, config.node.id, db).signing_key()
    verdict = db.read_sync(audit.thd_verify, signing.verifier(signing.public_pem(key)))
    if verdict.ok:
        print(
            f"audit log intact: {verdict.records} records, {verdict.checkpoints} signed checkpoints"
        )
        return 0
    print(f"audit log BROKEN at record {verdict.broken_at}: {verdict.problem}")
    return EXIT_PROBLEM
