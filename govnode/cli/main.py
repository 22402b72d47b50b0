"""The `govnode` command: set up, operate and serve a node."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from govnode.cli import backup, certs, client, commands, peer_admin, plugins, queue_admin, status
from govnode.cli.errors import EXIT_PROBLEM, CliError
from govnode.hooks.manager import Plugins
from govnode.pki.errors import PkiError
from govnode.store.database import DatabaseUnavailable

DEFAULT_HOME = Path("/etc/govnode")


def _days(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of days") from None
    if days < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 day, not {days}")
    return days


def _home_of(argv: Sequence[str] | None) -> Path:
    """The --home of a command line, before the whole line can be parsed."""
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--home", type=Path, default=None)
    known, _ = early.parse_known_args(argv)
    return Path(known.home or os.environ.get("GOVNODE_HOME") or DEFAULT_HOME)


def _parser(loaded: Plugins | None = None) -> argparse.ArgumentParser:
    """The command line; `loaded`: the home's plugins, which add commands of their own."""
    parser = argparse.ArgumentParser(
        prog="govnode", description="govnode: the central server of a government network"
    )
    parser.add_argument(
        "--home",
        type=Path,
        default=Path(os.environ.get("GOVNODE_HOME") or DEFAULT_HOME),
        help="the node's home (govnode.toml, pki/, data/); default $GOVNODE_HOME or /etc/govnode",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    init = sub.add_parser("init", help="create a new node home: config, CA, certificates, database")
    init.add_argument("--node", required=True, help="node id, e.g. kb")
    init.add_argument("--name", required=True, help="human name of the node")
    init.add_argument("--dns", action="append", default=[], help="server DNS name (repeatable)")
    init.add_argument("--ip", action="append", default=[], help="server IP address (repeatable)")
    init.add_argument("--api-listen", default="127.0.0.1:8443")
    init.add_argument("--admin-listen", default="127.0.0.1:8081")
    init.add_argument("--ldap-url", action="append", default=[], help="LDAP URL (repeatable)")
    init.add_argument("--ldap-base-dn")
    init.add_argument("--ldap-bind-dn")
    init.add_argument(
        "--ldap-password-file",
        type=Path,
        help="file holding the LDAP service password (copied into the home)",
    )
    init.add_argument(
        "--database-url",
        help="database.url to write (default: the SQLite file data/govnode.db); "
        "postgresql://USER@HOST/DB for an existing PostgreSQL database",
    )
    init.add_argument(
        "--data-dir",
        help="where the database and attachments live (default: data/ in the home); "
        "an empty or new folder, e.g. /var/lib/govnode",
    )
    init.set_defaults(run=commands.init)

    agency = sub.add_parser("agency", help="enroll, revoke and list agencies")
    agency_sub = agency.add_subparsers(dest="agency_command", required=True, metavar="ACTION")
    enroll = agency_sub.add_parser("enroll", help="issue an agency's client certificate")
    enroll.add_argument("code")
    enroll.add_argument(
        "--out", type=Path, required=True, help="folder for cert.pem, key.pem and ca.pem"
    )
    enroll.add_argument(
        "--days", type=_days, help="validity in days (default tls.agency_cert_days)"
    )
    enroll.add_argument(
        "--force",
        action="store_true",
        help="re-enroll an enrolled agency (revokes its current certificate)",
    )
    enroll.set_defaults(run=commands.agency_enroll)
    revoke = agency_sub.add_parser("revoke", help="revoke an agency's certificates")
    revoke.add_argument("code")
    revoke.add_argument("--reason", default="revoked by the operator")
    revoke.set_defaults(run=commands.agency_revoke)
    listing = agency_sub.add_parser("list", help="agencies with phase, status and expiry")
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    listing.set_defaults(run=commands.agency_list)

    directory = sub.add_parser("directory", help="the directory cache")
    directory_sub = directory.add_subparsers(
        dest="directory_command", required=True, metavar="ACTION"
    )
    directory_sub.add_parser("sync", help="pull agencies from LDAP now").set_defaults(
        run=commands.directory_sync
    )

    peer = sub.add_parser("peer", help="federation peers")
    peer_sub = peer.add_subparsers(dest="peer_command", required=True, metavar="ACTION")
    export = peer_sub.add_parser(
        "export", help="write what another node needs to make this node its peer"
    )
    export.add_argument("--out", type=Path, required=True, help="folder for the files")
    export.add_argument(
        "--url", required=True, help="where peers reach this node's federation port (https://...)"
    )
    export.set_defaults(run=commands.peer_export)
    add = peer_sub.add_parser(
        "add", help="make another node a peer (the files its `peer export` wrote)"
    )
    add.add_argument("peer_id", metavar="ID", help="the other node's id, e.g. center")
    add.add_argument("--url", required=True, help="its federation endpoint (https://...)")
    add.add_argument("--ca-cert", type=Path, required=True, help="its node CA (ID-ca.pem)")
    add.add_argument(
        "--signing-key", type=Path, required=True, help="its public signing key (ID-signing.pem)"
    )
    add.add_argument(
        "--max-concurrency", type=int, default=4, help="letters sent to it at a time (default 4)"
    )
    add.set_defaults(run=peer_admin.add)
    peer_list = peer_sub.add_parser("list", help="configured peers: where defined, CA expiry")
    peer_list.add_argument("--json", action="store_true", help="JSON instead of a table")
    peer_list.set_defaults(run=peer_admin.listing)
    remove = peer_sub.add_parser("remove", help="remove a peer added with `peer add`")
    remove.add_argument("peer_id", metavar="ID")
    remove.set_defaults(run=peer_admin.remove)

    queue = sub.add_parser("queue", help="letters waiting for other nodes, per destination")
    queue.add_argument("--json", action="store_true", help="JSON instead of a table")
    queue.set_defaults(run=commands.queue)
    queue_sub = queue.add_subparsers(dest="queue_command", metavar="ACTION")
    show = queue_sub.add_parser("show", help="where one letter's recipients stand")
    show.add_argument("letter_id")
    show.add_argument("--json", action="store_true", help="JSON instead of a table")
    show.set_defaults(run=commands.queue_show)
    retry = queue_sub.add_parser(
        "retry", help="make waiting letters due now: all, one peer's, or one letter"
    )
    retry.add_argument(
        "what", nargs="?", metavar="PEER|ID", help="a peer (destination or next hop) or letter id"
    )
    retry.set_defaults(run=queue_admin.retry)
    for action, run, what in (
        ("hold", queue_admin.hold, "keep letters from being sent until released"),
        ("release", queue_admin.release, "make held letters due now"),
    ):
        held = queue_sub.add_parser(action, help=what)
        held.add_argument("letter_id", nargs="?", metavar="ID", help="one letter")
        held.add_argument("--all", action="store_true", help="every waiting letter")
        held.add_argument("--peer", metavar="PEER", help="letters going to or through PEER")
        held.set_defaults(run=run)
    expire = queue_sub.add_parser(
        "expire", help="give up on a letter's waiting recipients; the sender sees the reason"
    )
    expire.add_argument("letter_id", metavar="ID")
    expire.add_argument("--reason", required=True, help="why, shown in the sender's tracking")
    expire.set_defaults(run=queue_admin.expire)

    peers = sub.add_parser("peers", help="say hello to every peer: reachable, who, expiry")
    peers.add_argument("--json", action="store_true", help="JSON instead of a table")
    peers.set_defaults(run=commands.peers)

    check = sub.add_parser(
        "check", help="validate config, reach LDAP and the database, report expiring certificates"
    )
    check.add_argument(
        "--strict",
        action="store_true",
        help="warnings (a certificate expiring within 30 days) fail too: for monitoring",
    )
    check.set_defaults(run=commands.check)
    serve = sub.add_parser("serve", help="run the node in the foreground")
    # Used by the primary process to start the others (listen.processes).
    serve.add_argument("--secondary-of", type=int, default=None, help=argparse.SUPPRESS)
    serve.set_defaults(run=commands.serve)
    audit = sub.add_parser("audit", help="the hash-chained audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    audit_sub.add_parser("verify", help="check the chain and its signed checkpoints").set_defaults(
        run=commands.audit_verify
    )

    client.add_parser(sub)
    certs.add_parsers(sub, agency_sub, _days)
    status.add_parser(sub)
    plugins.add_commands(sub, loaded)

    db = sub.add_parser("db", help="the database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_sub.add_parser("upgrade", help="apply migrations").set_defaults(run=commands.db_upgrade)
    backup.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        found = plugins.load_for_cli(_home_of(argv))
    except CliError as exc:
        print(f"govnode: {exc}", file=sys.stderr)
        return exc.exit_code
    args = _parser(found[1] if found else None).parse_args(argv)
    try:
        code: int = args.run(args)
    except CliError as exc:
        print(f"govnode: {exc}", file=sys.stderr)
        return exc.exit_code
    # Safety nets: these messages already name the file or the database at fault.
    except PkiError as exc:
        print(f"govnode: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    except DatabaseUnavailable as exc:
        print(f"govnode: database unavailable: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `govnode agency list | head`: the reader left; that is not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
