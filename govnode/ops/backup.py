"""`govnode backup`: one tar file with the manifest, the home, the database and its attachments.

The database snapshot comes first, then the attachments it references:
every attachment file is written and synced before the commit that
references it, so all of them exist by then (files written later belong to
letters the snapshot does not hold and are left out). The archive is written
to OUT.tmp, synced and renamed, so OUT is either a whole backup or absent.
Attachments stream through, hashed on the way; none is held in memory.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import stat
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import BinaryIO

from govnode.config import CONFIG_NAME, Config, ConfigError, load_config
from govnode.ops import snapshot
from govnode.ops.errors import BackupError
from govnode.ops.manifest import POSTGRES_MEMBER, SQLITE_MEMBER, Manifest, Member
from govnode.ops.sealed import SealedWriter

BUFFER = 1024 * 1024


@dataclass(frozen=True, slots=True)
class BackupResult:
    path: Path
    manifest: Manifest
    size: int


def govnode_version() -> str:
    try:
        return version("govnode")
    except PackageNotFoundError:
        return "unknown"


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _home_members(home: Path, skip: list[Path]) -> Iterator[tuple[Member, bytes]]:
    """Folders and regular files of the home (config, pki, secrets, peers), content read."""
    for folder, dirs, files in os.walk(home):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not any(_inside(here / d, s) for s in skip))
        relative = here.relative_to(home)
        name = "home" if relative == Path(".") else f"home/{relative.as_posix()}"
        yield Member(name, "dir", stat.S_IMODE(here.stat().st_mode)), b""
        for file_name in sorted(files):
            path = here / file_name
            if any(_inside(path, s) for s in skip):
                continue
            info = path.lstat()
            if not stat.S_ISREG(info.st_mode):
                continue  # sockets, links: nothing a restored node needs
            content = path.read_bytes()
            yield (
                Member(
                    f"{name}/{file_name}",
                    "file",
                    stat.S_IMODE(info.st_mode),
                    len(content),
                    hashlib.sha256(content).hexdigest(),
                ),
                content,
            )


def _file_member(name: str, path: Path) -> Member:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(BUFFER):
            digest.update(block)
    info = path.stat()
    return Member(name, "file", 0o600, info.st_size, digest.hexdigest())


class _Hashing(io.RawIOBase):
    """Reads a file for tarfile and hashes what passes."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        block = self._handle.read(size)
        self.digest.update(block)
        return block


def _tar_info(member: Member) -> tarfile.TarInfo:
    info = tarfile.TarInfo(member.path)
    info.mode = member.mode
    info.mtime = int(time.time())
    if member.kind == "dir":
        info.type = tarfile.DIRTYPE
    else:
        info.size = member.size
    return info


def load(home: Path) -> Config:
    try:
        return load_config(home / CONFIG_NAME, read_secrets=False)
    except ConfigError as exc:
        raise BackupError(str(exc)) from None


def take_backup(home: Path, out: Path, passphrase: bytes | None = None) -> BackupResult:
    """Write the backup of the node at `home` to `out`; raises `BackupError`."""
    config = load(home)
    out = Path(os.path.abspath(out))
    if not out.parent.is_dir():
        raise BackupError(f"{out.parent}: no such folder for the backup")
    if out.is_dir():
        raise BackupError(f"{out} is a folder; give the backup file's name")
    partial = out.with_name(out.name + ".tmp")
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise BackupError(f"cannot write {partial}: {exc.strerror}") from None
    try:
        with (
            os.fdopen(fd, "wb") as raw,
            tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as work,
        ):
            try:
                manifest = _write(config, home, Path(work), raw, passphrase, skip=[out, partial])
            except OSError as exc:  # an unreadable file of the home, a full disk
                where = exc.filename or partial
                raise BackupError(f"{where}: {exc.strerror or exc}") from None
            raw.flush()
            os.fsync(raw.fileno())
            size = raw.tell()
        os.rename(partial, out)
        directory = os.open(out.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
        raise
    return BackupResult(out, manifest, size)


def _write(
    config: Config,
    home: Path,
    work: Path,
    raw: BinaryIO,
    passphrase: bytes | None,
    skip: list[Path],
) -> Manifest:
    url = config.database.url
    kind = snapshot.kind_of(url)
    data_dir = config.node.data_dir
    stored = config.node.attachments  # data_dir/attachments unless `attachments_dir`
    skip = [*skip, data_dir, stored, work]
    if kind == "sqlite":
        live = snapshot.sqlite_path(url)
        skip += [
            live.with_name(live.name + suffix) for suffix in ("", "-wal", "-shm", "-writer.lock")
        ]
        database, database_name = work / "govnode.db", SQLITE_MEMBER
        snapshot.snapshot_sqlite(url, database)
        referenced = snapshot.referenced_attachments(f"sqlite:///{database}")
        revision = snapshot.schema_revision(f"sqlite:///{database}")
    else:
        database, database_name = work / "govnode.pgdump", POSTGRES_MEMBER
        revision = snapshot.schema_revision(url)
        snapshot.dump_postgres(url, database)
        # Read after the dump: every letter in the dump is still there, so this
        # covers all its attachments (and perhaps a few of newer letters).
        referenced = snapshot.referenced_attachments(url)
    home_members = list(_home_members(home.absolute(), skip))
    attachments = []
    for sha in sorted(referenced):
        path = stored / sha[:2] / sha[2:4] / sha
        try:
            info = path.stat()
        except OSError as exc:
            raise BackupError(
                f"attachment {sha}, referenced by the database, is missing: {path}: {exc.strerror}"
            ) from None
        name = f"data/attachments/{path.relative_to(stored).as_posix()}"
        mode = stat.S_IMODE(info.st_mode)
        attachments.append((Member(name, "file", mode, info.st_size, sha), path))
    manifest = Manifest(
        node_id=config.node.id,
        govnode_version=govnode_version(),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        database=kind,
        schema_revision=revision,
        data_dir=str(data_dir),
        members=(
            *(member for member, _ in home_members),
            _file_member(database_name, database),
            *(member for member, _ in attachments),
        ),
    )
    sealed = SealedWriter(raw, passphrase) if passphrase is not None else None
    stream: BinaryIO = sealed if sealed is not None else raw  # type: ignore[assignment]
    with tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        document = manifest.to_json()
        tar.addfile(
            _tar_info(Member("manifest.json", "file", 0o600, len(document))), io.BytesIO(document)
        )
        for member, content in home_members:
            tar.addfile(_tar_info(member), io.BytesIO(content) if member.kind == "file" else None)
        with database.open("rb") as handle:
            tar.addfile(_tar_info(manifest.members[len(home_members)]), handle)
        for member, path in attachments:
            _add_attachment(tar, member, path)
    if sealed is not None:
        sealed.close()
    return manifest


def _add_attachment(tar: tarfile.TarFile, member: Member, path: Path) -> None:
    try:
        with path.open("rb") as handle:
            hashing = _Hashing(handle)
            tar.addfile(_tar_info(member), hashing)
    except OSError as exc:
        raise BackupError(f"cannot read attachment {path}: {exc.strerror or exc}") from None
    if hashing.digest.hexdigest() != member.sha256:
        raise BackupError(
            f"attachment {path} is damaged on disk: its content hashes to "
            f"{hashing.digest.hexdigest()}, not to its name"
        )
