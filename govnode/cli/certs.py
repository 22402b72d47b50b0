"""`govnode cert ...` and `govnode agency renew`: certificates over the years.

What expires and when (`cert list`, and the lines `govnode check` prints),
renewing the node's own certificates (`cert renew server|node|crl`), and a new
certificate for an enrolled agency (`agency renew`). The CA itself is valid ten
years and is not renewed here: a new CA means re-enrolling every agency.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from govnode.cli import commands
from govnode.cli.errors import EXIT_PROBLEM, CliError
from govnode.cli.output import aligned, print_json
from govnode.cli.plugins import check_enrollment
from govnode.config import Config
from govnode.domain.agency import is_agency_code
from govnode.hooks.actor import operator
from govnode.pki import renewal
from govnode.pki.authority import NodeAuthority
from govnode.pki.ca import requested_key
from govnode.pki.errors import PkiError
from govnode.pki.expiry import EXPIRY_WARNING, Standing, describe, held_certificates
from govnode.store import certificates, directory
from govnode.store.database import Database, DatabaseUnavailable
from govnode.store.urls import shown_url

Report = Callable[[str, str], None]
"""`report(level, message)`: level is "ok", "WARN" or "FAIL"."""


def add_parsers(sub: Any, agency_sub: Any, days: Callable[[str], int]) -> None:
    """`govnode cert ...` and `govnode agency renew`; `days`: the --days parser of main."""
    cert = sub.add_parser(
        "cert",
        help="the node's own certificates: list, renew (the CA is valid 10 years; not renewed)",
    )
    cert_sub = cert.add_subparsers(dest="cert_command", required=True, metavar="ACTION")
    listing = cert_sub.add_parser(
        "list", help="every certificate the node holds, with its expiry and days left"
    )
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    listing.set_defaults(run=cert_list)
    renew = cert_sub.add_parser(
        "renew",
        help="new key and certificate from the node CA (server, node) or a fresh CRL (crl)",
        description="server: the agency API's certificate, for tls.server_names (edit them "
        "in govnode.toml first to change the names); node: the federation certificate; "
        "crl: publish the CRL now. The previous pair is kept as *.old. The CA is not renewed "
        "here: it is valid 10 years, and a new CA means re-enrolling every agency.",
    )
    renew.add_argument("which", choices=("server", "node", "crl"))
    renew.add_argument(
        "--days", type=days, default=renewal.DEFAULT_DAYS, help="validity (default 397)"
    )
    renew.set_defaults(run=cert_renew)

    again = agency_sub.add_parser(
        "renew",
        help="a new certificate for an enrolled agency (the old one stays valid until it expires)",
    )
    again.add_argument("code")
    again.add_argument(
        "--out", type=Path, required=True, help="folder for cert.pem, key.pem and ca.pem"
    )
    again.add_argument(
        "--csr",
        type=Path,
        help="the agency's certificate signing request (its key never leaves the agency)",
    )
    again.add_argument("--days", type=days, help="validity in days (default tls.agency_cert_days)")
    again.add_argument(
        "--revoke-old",
        action="store_true",
        help="revoke the agency's previous certificates at once (default: they run out)",
    )
    again.set_defaults(run=agency_renew)


def now() -> datetime:
    return datetime.now(UTC)


# -- cert list and check -----------------------------------------------------


def report_certificates(config: Config, db: Database | None, report: Report) -> None:
    """The lines of `govnode check`: each certificate and the CRL, then the agencies'
    certificates expiring within 30 days (`db` None: the database is unusable)."""
    moment = now()
    for held in held_certificates(config.tls):
        standing = held.standing(moment)
        level = {Standing.OK: "ok", Standing.WARN: "WARN", Standing.EXPIRED: "FAIL"}[standing]
        report(level, describe(held, moment))
    if db is None:
        return
    codes = db.run_sync(
        certificates.thd_agencies_expiring,
        now=moment.timestamp(),
        until=(moment + EXPIRY_WARNING).timestamp(),
    )
    if codes:
        report(
            "WARN",
            f"{len(codes)} agency certificate(s) expire within {EXPIRY_WARNING.days} days: "
            f"{', '.join(codes)}; renew: govnode agency renew CODE --out DIR",
        )
    else:
        report("ok", f"no agency certificate expires within {EXPIRY_WARNING.days} days")


def cert_list(args: argparse.Namespace) -> int:
    config = commands._load(args.home, read_secrets=False)
    moment = now()
    held = held_certificates(config.tls)
    rows: list[dict[str, Any]] = [
        {
            "certificate": h.name,
            "file": str(h.path),
            "serial": format(h.serial, "x") if h.serial is not None else None,
            "sha256": h.fingerprint_sha256,
            "not_after": h.not_after.isoformat() if h.not_after else None,
            "days_left": (h.not_after - moment).days if h.not_after else None,
            "status": str(h.standing(moment)),
            "renew": h.renew,
            "problem": h.problem,
        }
        for h in held
    ]
    if args.json:
        print_json(rows)
        return 0
    table = [("CERTIFICATE", "NOT AFTER", "DAYS LEFT", "STATUS", "FILE")]
    for row in rows:
        table.append(
            (
                row["certificate"],
                row["not_after"][:16].replace("T", " ") if row["not_after"] else "-",
                str(row["days_left"]) if row["days_left"] is not None else "-",
                row["status"],
                row["file"] + (f"  {row['problem']}" if row["problem"] else ""),
            )
        )
    print(aligned(table))
    print("(crl: NOT AFTER is its next update; agencies: govnode agency list)")
    return 0


# -- cert renew --------------------------------------------------------------


def cert_renew(args: argparse.Namespace) -> int:
    config = commands._load(args.home, read_secrets=False)
    db = commands._database(config)
    try:
        if args.which == "crl":
            NodeAuthority(config.tls, config.node.id, db).publish_crl(now=now())
            print(f"CRL published: {config.tls.crl}")
            print(f"  a running node uses it within {config.tls.reload_interval:g} s")
            return 0
        _check_server_names(config)
        renewed = renewal.renew(
            config, db, args.which, now=now(), valid_days=args.days, actor=operator()
        )
    except PkiError as exc:
        raise CliError(str(exc), EXIT_PROBLEM) from None
    except (DatabaseUnavailable, SQLAlchemyError) as exc:
        raise CliError(
            f"the {args.which} certificate was installed but not audited: database "
            f"{shown_url(config.database.url)}: {commands._database_problem(exc)}",
            EXIT_PROBLEM,
        ) from None
    issued = renewed.issued
    print(f"renewed the {args.which} certificate for {', '.join(renewed.names)}")
    print(f"  certificate {renewed.cert_path}, key {renewed.key_path} (mode 0600)")
    print(f"  serial {issued.serial:x}, valid until {issued.not_after:%Y-%m-%d}")
    print(f"  sha256 {issued.fingerprint_sha256}")
    if renewed.old_cert is not None:
        print(f"  the previous pair is kept as {renewed.old_cert} and *.key.old")
    print("next:")
    print(
        f"  - a running node picks it up within {config.tls.reload_interval:g} s, "
        "or at once with `systemctl reload govnode` (SIGHUP); connections stay open"
    )
    if args.which == "node":
        print(
            "  - peers that pin this node by fingerprint must be given the new one: "
            f"fingerprint = {issued.fingerprint_sha256!r} in their [[peers]] entry; "
            "peers that trust this node's CA need nothing"
        )
    return 0


def _check_server_names(config: Config) -> None:
    """The names the certificate will carry, checked as `init` checks --dns and --ip."""
    where = f"{config.path}: tls.server_names"
    if not config.tls.server_names:
        raise CliError(f"{where} is empty: list the DNS names and IP addresses clients use")
    dns, _ips = renewal.split_names(config.tls.server_names)
    for name in dns:
        if not commands._DNS_NAME.fullmatch(name):
            raise CliError(
                f"{where}: {name!r} is not a DNS name or IP address (ASCII letters, digits, "
                "'-' and dots; an internationalised name in its xn-- form)"
            )


# -- agency renew ------------------------------------------------------------


def agency_renew(args: argparse.Namespace) -> int:
    config = commands._load(args.home, read_secrets=False)
    db = commands._database(config)
    code: str = args.code
    if not is_agency_code(code):
        raise CliError(f"{code!r} is not an agency code (lowercase letters, digits, '-')")
    moment = now()
    held = db.run_sync(certificates.thd_for_agency, code)
    record = db.run_sync(directory.thd_get, code, now=moment.timestamp())
    if not held:
        raise CliError(
            f"agency {code!r} is not enrolled (no certificate issued); "
            "use `govnode agency enroll` first",
            EXIT_PROBLEM,
        )
    previous = [c for c in held if c.revoked_at is None]
    if not previous:
        raise CliError(
            f"agency {code!r} is revoked (every certificate it had is revoked); it is not "
            "renewed: enroll it again with `govnode agency enroll` if it should come back",
            EXIT_PROBLEM,
        )
    if record is None:
        raise CliError(
            f"agency {code!r} is no longer in the directory ({config.ldap.agencies_dn}); "
            "it is not renewed",
            EXIT_PROBLEM,
        )
    csr_pem = _read_csr(args.csr) if args.csr is not None else None
    out: Path = args.out
    for name in ("cert.pem", "key.pem"):
        if (out / name).exists():
            raise CliError(
                f"{out / name} exists; refusing to overwrite it: give a new --out folder"
            )
    check_enrollment(args.home, record)  # the plugins may refuse, as for `agency enroll`
    try:
        out.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise CliError(f"--out: cannot create {out}: {exc.strerror or exc}") from None
    authority = NodeAuthority(config.tls, config.node.id, db)
    issued = commands.issue_agency_files(
        config, authority, code, out, days=args.days, csr_pem=csr_pem
    )
    print(f"renewed {code}@{config.node.id} ({record.agency.name_fa})")
    key_note = "the key stays with the agency (CSR)" if csr_pem else f"key {out / 'key.pem'}"
    print(f"  certificate {out / 'cert.pem'}, {key_note}, CA {out / 'ca.pem'}")
    print(f"  sha256 {issued.fingerprint_sha256}, valid until {issued.not_after:%Y-%m-%d}")
    old = [c for c in previous if c.serial != format(issued.serial, "x")]
    if args.revoke_old:
        for cert in old:
            authority.revoke_serial(
                code, int(cert.serial, 16), now=now(), reason="superseded by a renewal"
            )
        print(f"  revoked the previous certificate(s): {', '.join(c.serial for c in old)}")
    elif old:
        until = max(c.not_after for c in old)
        print(
            f"  the previous certificate stays valid until "
            f"{datetime.fromtimestamp(until, UTC):%Y-%m-%d} (--revoke-old to end it now)"
        )
    return 0


def _read_csr(path: Path) -> bytes:
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise CliError(f"--csr: cannot read {path}: {exc.strerror}") from None
    try:
        requested_key(pem)  # refused before anything is issued
    except PkiError as exc:
        raise CliError(f"--csr {path}: {exc}") from None
    return pem
