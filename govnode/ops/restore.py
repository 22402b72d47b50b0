"""`govnode restore`: check every member of a backup, then put the node back in one step.

Everything is extracted beside the target (`.HOME.restoring-PID`) and
checked against the manifest (size and sha256 of each member, none missing,
none extra) before anything is made final; then the folder is renamed into
place. A failure on the way leaves the target as it was and no staging
behind. Owners are not restored (the restoring user owns the files; chown
them to the service user); modes are, so keys stay 0600.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from govnode.config import CONFIG_NAME, Config, ConfigError, parse_config
from govnode.config.load import PEERS_NAME
from govnode.ops import snapshot
from govnode.ops.errors import BackupError
from govnode.ops.manifest import NAME, POSTGRES_MEMBER, SQLITE_MEMBER, Manifest, Member
from govnode.ops.sealed import MAGIC, SealedReader, SealError

BUFFER = 1024 * 1024
_ROOTS = ("home", "data", "database")


@dataclass(frozen=True, slots=True)
class Restored:
    home: Path
    config: Config
    manifest: Manifest


def check_target_empty(path: Path, what: str) -> None:
    """Refuse a target that holds anything, naming a few of its entries."""
    try:
        if path.exists() and not path.is_dir():
            raise BackupError(f"{what} {path} exists and is not a folder")
        entries = sorted(entry.name for entry in path.iterdir()) if path.exists() else []
    except OSError as exc:
        raise BackupError(f"cannot look into {path}: {exc.strerror}") from None
    if entries:
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise BackupError(
            f"{what} {path} is not empty (it holds {shown}); restore into an empty folder"
        )


def _open(archive: Path, passphrase: bytes | None) -> tuple[BinaryIO, BinaryIO]:
    """(the file, the tar stream in it); unseals when the archive is sealed."""
    try:
        raw = archive.open("rb")
    except OSError as exc:
        raise BackupError(f"{archive}: cannot read: {exc.strerror}") from None
    sealed = raw.read(len(MAGIC)) == MAGIC
    raw.seek(0)
    if not sealed:
        return raw, raw
    if passphrase is None:
        raw.close()
        raise BackupError(f"{archive} is encrypted; give its --passphrase-file")
    try:
        return raw, SealedReader(raw, passphrase)  # type: ignore[return-value]
    except SealError as exc:
        raw.close()
        raise BackupError(f"{archive}: {exc}") from None


def _target(staging: Path, name: str) -> Path:
    parts = PurePosixPath(name).parts
    if not parts or parts[0] not in _ROOTS or any(part in ("..", "") for part in parts):
        raise BackupError(f"the archive holds a member with an unsafe name: {name!r}")
    return staging.joinpath(*parts)


def _extract_file(tar: tarfile.TarFile, info: tarfile.TarInfo, member: Member, path: Path) -> None:
    source = tar.extractfile(info)
    if source is None:
        raise BackupError(f"member {member.path} is not a file in the archive")
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        while block := source.read(BUFFER):
            digest.update(block)
            size += len(block)
            out.write(block)
        os.fchmod(out.fileno(), member.mode & 0o777)
    if size != member.size or digest.hexdigest() != member.sha256:
        raise BackupError(
            f"checksum mismatch in member {member.path}: the archive was altered or damaged"
        )


def extract(archive: Path, staging: Path, passphrase: bytes | None) -> Manifest:
    """Extract and check every member of `archive` into `staging`; returns the manifest."""
    raw, stream = _open(archive, passphrase)
    manifest: Manifest | None = None
    try:
        with raw, tarfile.open(fileobj=stream, mode="r|") as tar:
            first = tar.next()
            if first is None or first.name != NAME or not first.isfile():
                raise BackupError(f"{archive} is not a govnode backup (no manifest first)")
            reader = tar.extractfile(first)
            assert reader is not None
            manifest = Manifest.from_json(reader.read(first.size))
            expected = {member.path: member for member in manifest.members}
            seen: set[str] = set()
            while (info := tar.next()) is not None:
                member = expected.get(info.name)
                if member is None or info.name in seen:
                    raise BackupError(f"the archive holds a member its manifest lacks: {info.name}")
                seen.add(info.name)
                path = _target(staging, info.name)
                if (member.kind == "dir") != info.isdir():
                    raise BackupError(f"member {info.name} is not what its manifest says")
                if member.kind == "dir":
                    path.mkdir(parents=True, exist_ok=True)
                else:
                    _extract_file(tar, info, member, path)
            # tar stops at its end marker; the rest (its padding, and in a sealed
            # archive the final chunk) must be read too, so that it is verified.
            while stream.read(1 << 16):
                pass
    except SealError as exc:
        raise BackupError(f"{archive}: {exc}") from None
    except (tarfile.TarError, EOFError) as exc:
        if manifest is None:
            raise BackupError(f"{archive} is not a govnode backup ({exc})") from None
        raise BackupError(f"{archive} is truncated or damaged: {exc}") from None
    except OSError as exc:  # tarfile reports a short archive as ReadError: this is ours
        where = exc.filename or staging
        raise BackupError(f"cannot restore into {where}: {exc.strerror or exc}") from None
    missing = [path for path in expected if path not in seen]
    if missing:
        raise BackupError(
            f"{archive} is incomplete: {len(missing)} member(s) missing, first {missing[0]} "
            "(truncated?)"
        )
    # Folders' modes last: a 0500 folder would have refused its own files.
    for member in sorted(manifest.members, key=lambda m: m.path, reverse=True):
        if member.kind == "dir":
            _target(staging, member.path).chmod(member.mode & 0o777)
    return manifest


def set_key(text: str, section: str, key: str, value: str) -> str:
    """`text` with `key = "value"` in `[section]` (replaced, or added to the section)."""
    line = f"{key} = {json.dumps(value, ensure_ascii=False)}\n"
    lines = text.splitlines(keepends=True)
    current, header = "", None
    for index, existing in enumerate(lines):
        stripped = existing.strip()
        if stripped.startswith("["):
            current = stripped.strip("[]").strip()
            if current == section:
                header = index
        elif current == section and re.match(rf"{re.escape(key)}\s*=", stripped):
            lines[index] = line
            return "".join(lines)
    if header is None:
        return text.rstrip("\n") + f"\n\n[{section}]\n{line}"
    lines.insert(header + 1, line)
    return "".join(lines)


def staged_config(
    staging: Path, home: Path, database_url: str | None, data_dir: Path | None
) -> Config:
    """The restored config, as it will read from `home`, with the overrides written in.

    A `data_dir` moves a SQLite database that lived in the old data_dir along
    with it (unless `database_url` says where it goes).
    """
    config_path = staging / "home" / CONFIG_NAME
    try:
        text = config_path.read_text(encoding="utf-8")
        peers_path = staging / "home" / PEERS_NAME
        peers = (
            (home / PEERS_NAME, tomllib.loads(peers_path.read_text(encoding="utf-8")))
            if peers_path.exists()
            else None
        )

        def parse(text: str) -> Config:
            return parse_config(
                home / CONFIG_NAME, tomllib.loads(text), read_secrets=False, peers_file=peers
            )

        backed_up = parse(text)
        if data_dir is not None:
            data_dir = Path(os.path.abspath(data_dir))
            text = set_key(text, "node", "data_dir", str(data_dir))
            old = backed_up.database.url
            if database_url is None and snapshot.kind_of(old) == "sqlite":
                database = snapshot.sqlite_path(old)
                if _inside(database, backed_up.node.data_dir):
                    moved = data_dir / database.relative_to(backed_up.node.data_dir)
                    database_url = f"sqlite:///{moved}"
        if database_url is not None:
            text = set_key(text, "database", "url", database_url)
        if text != config_path.read_text(encoding="utf-8"):
            config_path.write_text(text, encoding="utf-8")
        return parse(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BackupError(f"the backup's {CONFIG_NAME} cannot be read: {exc}") from None
    except ConfigError as exc:
        raise BackupError(f"the backup's config: {exc}") from None


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def restore(
    archive: Path,
    home: Path,
    *,
    passphrase: bytes | None = None,
    database_url: str | None = None,
    data_dir: Path | None = None,
) -> Restored:
    """Restore `archive` into the empty `home`; raises `BackupError`, leaving nothing behind."""
    home = Path(os.path.abspath(home))
    check_target_empty(home, "the home")
    if not archive.is_file():
        raise BackupError(f"{archive}: no such file")
    try:
        home.parent.mkdir(parents=True, exist_ok=True)
        staging = home.with_name(f".{home.name}.restoring-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o700)
    except OSError as exc:
        raise BackupError(f"cannot create {home}: {exc.strerror}") from None
    moved: list[tuple[Path, Path]] = []  # (staged, final) for what lives outside the home
    try:
        manifest, config = _restore_staged(
            archive, home, staging, moved, passphrase, database_url, data_dir
        )
    except OSError as exc:
        where = exc.filename or home
        raise BackupError(f"cannot restore into {home}: {where}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        for staged, _ in moved:
            shutil.rmtree(staged, ignore_errors=True)  # gone once renamed into place
    return Restored(home, config, manifest)


def _restore_staged(
    archive: Path,
    home: Path,
    staging: Path,
    moved: list[tuple[Path, Path]],
    passphrase: bytes | None,
    database_url: str | None,
    data_dir: Path | None,
) -> tuple[Manifest, Config]:
    manifest = extract(archive, staging, passphrase)
    config = staged_config(staging, home, database_url, data_dir)
    kind = snapshot.kind_of(config.database.url)
    if kind != manifest.database:
        raise BackupError(
            f"the backup holds a {manifest.database} database but database.url "
            f"is {kind}; give a --database-url of the same kind"
        )
    _place_data(staging, home, config, moved)
    if kind == "sqlite":
        _place_sqlite(staging, home, config, moved)
    else:
        snapshot.check_postgres_empty(config.database.url)
    # Into place: the folders outside the home first, the home last, and the
    # PostgreSQL database (one transaction) after them; a failure on the way
    # moves back what was placed, so the targets are as empty as they were.
    placed: list[tuple[Path, Path]] = []  # (final, staged)
    try:
        for staged, final in [*moved, (staging / "home", home)]:
            if final.exists():
                final.rmdir()  # checked empty before
            staged.rename(final)
            placed.append((final, staged))
        if kind != "sqlite":
            snapshot.restore_postgres(config.database.url, staging / POSTGRES_MEMBER)
    except BaseException:
        for final, staged in reversed(placed):
            final.rename(staged)  # removed with the staging folders
        raise
    return manifest, config


def _place_data(staging: Path, home: Path, config: Config, moved: list[tuple[Path, Path]]) -> None:
    """The data_dir, and the attachments into `node.attachments` (data_dir/attachments
    or `attachments_dir`): inside the staged home or data_dir, or staged beside
    an outside folder."""
    data_dir = config.node.data_dir
    if _inside(data_dir, home):
        target = staging / "home" / data_dir.relative_to(home)
    else:
        target = _staged_beside(data_dir, "the data_dir", moved)
    target.mkdir(parents=True, exist_ok=True, mode=0o750)
    stored = config.node.attachments
    if _inside(stored, data_dir):
        destination = target / stored.relative_to(data_dir)
    elif _inside(stored, home):
        destination = staging / "home" / stored.relative_to(home)
    else:
        destination = _staged_beside(stored, "the attachments_dir", moved)
    destination.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    if (staging / "data" / "attachments").exists():
        if destination.exists():
            destination.rmdir()  # made empty just now
        shutil.move(staging / "data" / "attachments", destination)
    else:
        destination.mkdir(exist_ok=True, mode=0o750)


def _staged_beside(folder: Path, what: str, moved: list[tuple[Path, Path]]) -> Path:
    """A staging folder next to `folder` (outside the home), renamed into place at the end."""
    check_target_empty(folder, what)
    staged = folder.with_name(f".{folder.name}.restoring-{os.getpid()}")
    shutil.rmtree(staged, ignore_errors=True)
    moved.append((staged, folder))
    return staged


def _place_sqlite(
    staging: Path, home: Path, config: Config, moved: list[tuple[Path, Path]]
) -> None:
    database = snapshot.sqlite_path(config.database.url)
    data_dir = config.node.data_dir
    if _inside(database, home):
        target = staging / "home" / database.relative_to(home)
    elif _inside(database, data_dir):
        staged_data = next(staged for staged, final in moved if final == data_dir)
        target = staged_data / database.relative_to(data_dir)
    else:
        raise BackupError(
            f"database.url names {database}, outside the home and the data_dir; "
            "give --database-url sqlite:///PATH inside one of them"
        )
    if target.exists():
        raise BackupError(f"{target} exists already")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(staging / SQLITE_MEMBER, target)
