"""`govnode backup OUT` and `govnode restore IN --home DIR`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from govnode.cli.errors import EXIT_PROBLEM, CliError
from govnode.config import Config
from govnode.ops.backup import take_backup
from govnode.ops.errors import BackupError
from govnode.ops.restore import restore as restore_archive
from govnode.ops.sealed import SealError, read_passphrase
from govnode.pki import signing
from govnode.pki.authority import NodeAuthority
from govnode.pki.errors import PkiError
from govnode.store import audit, schema
from govnode.store.database import Database, DatabaseUnavailable
from govnode.store.migrate import SchemaOutOfDate, check_schema

_ENCRYPT_HELP = (
    "encrypt with the passphrase in this file (one trailing newline is ignored); "
    "keep the file away from the backups"
)


def add_parser(sub: Any) -> None:
    backup = sub.add_parser(
        "backup", help="write a consistent backup of the running node (database, files, keys)"
    )
    backup.add_argument("out", type=Path, metavar="OUT", help="the backup file to write")
    backup.add_argument("--passphrase-file", type=Path, help=_ENCRYPT_HELP)
    backup.set_defaults(run=run_backup)

    restore = sub.add_parser(
        "restore", help="restore a backup into an empty home (--home), checking every sum"
    )
    restore.add_argument("archive", type=Path, metavar="IN", help="the backup file")
    restore.add_argument(
        "--home",
        type=Path,
        default=argparse.SUPPRESS,
        help="the empty folder to restore the home into (as govnode --home)",
    )
    restore.add_argument(
        "--passphrase-file", type=Path, help="the passphrase the backup was encrypted with"
    )
    restore.add_argument(
        "--database-url",
        help="restore the database here instead of the backed-up database.url "
        "(PostgreSQL: an empty database); written into the restored govnode.toml",
    )
    restore.add_argument(
        "--data-dir",
        type=Path,
        help="restore attachments and SQLite here instead of the backed-up node.data_dir; "
        "written into the restored govnode.toml",
    )
    restore.set_defaults(run=run_restore)


def _passphrase(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return read_passphrase(path)
    except OSError as exc:
        raise CliError(f"--passphrase-file {path}: cannot read: {exc.strerror}") from None
    except SealError as exc:
        raise CliError(f"--passphrase-file: {exc}") from None


def run_backup(args: argparse.Namespace) -> int:
    passphrase = _passphrase(args.passphrase_file)
    try:
        done = take_backup(args.home, args.out, passphrase)
    except BackupError as exc:
        raise CliError(f"backup failed: {exc}", EXIT_PROBLEM) from None
    files = sum(1 for member in done.manifest.members if member.kind == "file")
    attachments = sum(1 for m in done.manifest.members if m.path.startswith("data/attachments/"))
    print(
        f"backup of node {done.manifest.node_id} written to {done.path}: {done.size} bytes, "
        f"{files} files ({attachments} attachment files), {done.manifest.database} database at "
        f"revision {done.manifest.schema_revision}"
        + (", encrypted" if passphrase is not None else "")
    )
    return 0


def run_restore(args: argparse.Namespace) -> int:
    passphrase = _passphrase(args.passphrase_file)
    try:
        restored = restore_archive(
            args.archive,
            args.home,
            passphrase=passphrase,
            database_url=args.database_url,
            data_dir=args.data_dir,
        )
    except BackupError as exc:
        raise CliError(f"restore failed: {exc}", EXIT_PROBLEM) from None
    print(
        f"restored node {restored.manifest.node_id} (backup of {restored.manifest.created_at}) "
        f"into {restored.home}"
    )
    return _summary(restored.config)


def _summary(config: Config) -> int:
    """What the restored node holds, and whether its audit chain verifies."""
    db = Database(config.database.url)
    try:
        try:
            check_schema(db.engine)
        except SchemaOutOfDate as exc:
            print(f"  restored, but not ready to serve: {exc}")
            return 0
        counts = db.read_sync(_counts)
        print(
            f"  {counts[0]} letters, {counts[1]} attachments, {counts[2]} audit records "
            f"in {make_url(config.database.url).render_as_string(hide_password=True)}"
        )
        key = NodeAuthority(config.tls, config.node.id, db).signing_key()
        verdict = db.read_sync(audit.thd_verify, signing.verifier(signing.public_pem(key)))
    except (SQLAlchemyError, DatabaseUnavailable, PkiError) as exc:
        print(f"  the restored node cannot be read: {exc}")
        return EXIT_PROBLEM
    finally:
        db.stop()
    if not verdict.ok:
        print(f"  audit log BROKEN at record {verdict.broken_at}: {verdict.problem}")
        return EXIT_PROBLEM
    print(
        f"  audit log intact: {verdict.records} records, {verdict.checkpoints} signed checkpoints"
    )
    print(
        "  owners are not restored: as root, run scripts/install again (it gives the home"
        " and the data folder to the govnode user) before starting the service"
    )
    return 0


def _counts(conn: Any) -> tuple[int, int, int]:
    return tuple(  # type: ignore[return-value]
        int(conn.scalar(select(func.count()).select_from(table)) or 0)
        for table in (schema.letters, schema.attachments, schema.audit)
    )
