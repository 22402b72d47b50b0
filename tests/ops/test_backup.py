"""`govnode backup` of a running node, and `govnode restore` into an empty home.

The round trip is the sysadmin's: back up while agencies keep sending, stop
the node, wipe its home, restore, start it again, and every letter answers
with the same number, subject and attachment bytes; the audit chain verifies.
Damaged, altered, truncated or wrongly unlocked archives restore nothing.
"""

from __future__ import annotations

import io
import json
import shutil
import stat
import tarfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from govnode.cli.main import main
from govnode.config import CONFIG_NAME, load_config
from govnode.ops.sealed import CHUNK, HEADER_SIZE
from govnode.testing.process import NodeProcess
from govnode.testing.pytest_plugin import NodeHome, make_node_home
from govnode.testing.slapd import Slapd
from tests.cli.support import Run, run
from tests.ops.support import (
    BusySender,
    Sent,
    check_served,
    drop_database,
    entries,
    fresh_database_args,
    logged_in,
    send_letter,
)

PASSPHRASE = "اسب درست باتری منگنه"
Restore = Callable[..., Run]


def test_backup_of_a_busy_node_restores_every_letter_after_the_home_is_wiped(
    tmp_path: Path, govnode_slapd: Slapd, capsys: pytest.CaptureFixture[str]
) -> None:
    home = make_node_home(tmp_path, govnode_slapd, codes=("edu", "welfare"))
    archive = tmp_path / "backups" / "kb.govnode-backup"
    archive.parent.mkdir()
    node = NodeProcess(home.path).start()
    try:
        edu = logged_in(home, node, "edu")
        before = [send_letter(edu, index) for index in range(12)]
        busy = BusySender(logged_in(home, node, "edu"))
        sender = threading.Thread(target=busy.run)
        sender.start()
        busy.first.wait(30)
        backup = run(capsys, "--home", home.path, "backup", archive)
        busy.stop.set()
        sender.join(30)
        assert backup.code == 0, backup.err
        assert busy.failures == []  # the node kept accepting letters throughout
        edu.close()
        busy.client.close()
    finally:
        node.stop()
    # Everything acknowledged before the backup started is in it; the busy
    # sender's letters up to the first are at least in it.
    kept = [*before, busy.sent[0]]
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600  # it holds the CA key

    drop_database(home.config)
    shutil.rmtree(home.path)
    restore = run(capsys, "restore", archive, "--home", home.path)
    assert restore.code == 0, restore.err
    assert "audit log intact" in restore.out
    assert stat.S_IMODE((home.path / "pki" / "ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((home.path / "secrets").stat().st_mode) == 0o700

    with NodeProcess(home.path) as restored:
        for code in ("edu", "welfare"):  # the sender's copy and the recipient's
            client = logged_in(home, restored, code)
            for letter in kept:
                check_served(client, letter)
            client.close()
        inbox = logged_in(home, restored, "welfare")
        listed = inbox.request("GET", "/api/v1/inbox", query={"limit": "500"})
        inbox.close()
        assert listed.status == 200, listed.body
        ids = {item["id"] for item in listed.json()["letters"]}
        assert {letter.id for letter in kept} <= ids
        assert ids <= {letter.id for letter in [*before, *busy.sent]}
    verify = run(capsys, "--home", home.path, "audit", "verify")
    assert verify.code == 0, verify.out
    assert "audit log intact" in verify.out


@dataclass(frozen=True)
class Archives:
    """A stopped node with letters, its plain and its encrypted backup."""

    home: NodeHome
    letters: list[Sent]
    plain: Path
    sealed: Path
    passphrase_file: Path


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory, govnode_slapd: Slapd) -> Archives:
    root = tmp_path_factory.mktemp("backups")
    home = make_node_home(root, govnode_slapd, codes=("edu", "welfare"))
    with NodeProcess(home.path) as node:
        edu = logged_in(home, node, "edu")
        letters = [send_letter(edu, index, size=200_000) for index in range(3)]
        edu.close()
    passphrase_file = root / "passphrase"
    passphrase_file.write_text(PASSPHRASE + "\n", encoding="utf-8")  # as `echo` writes it
    plain, sealed = root / "plain.tar", root / "sealed.bin"
    assert main(["--home", str(home.path), "backup", str(plain)]) == 0
    assert (
        main(
            [
                "--home",
                str(home.path),
                "backup",
                str(sealed),
                "--passphrase-file",
                str(passphrase_file),
            ]
        )
        == 0
    )
    return Archives(home, letters, plain, sealed, passphrase_file)


@pytest.fixture
def restore_into(
    tmp_path: Path, archives: Archives, capsys: pytest.CaptureFixture[str]
) -> tuple[Path, Restore]:
    """(target, `restore(archive, *options)`): restore into tmp_path/restored (with a new
    empty database when the node's is PostgreSQL)."""
    target = tmp_path / "restored"

    def restore(archive: Path, *options: str | Path) -> Run:
        database = fresh_database_args(archives.home.config, tmp_path.name[-20:].lower())
        return run(capsys, "restore", archive, "--home", target, *database, *options)

    return target, restore


def _attachment_files(data_dir: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in (data_dir / "attachments").glob("*/*/*")}


def test_encrypted_backup_restores_with_its_passphrase(
    tmp_path: Path,
    archives: Archives,
    restore_into: tuple[Path, Restore],
    capsys: pytest.CaptureFixture[str],
) -> None:
    target, restore = restore_into
    sealed = archives.sealed.read_bytes()
    assert b"manifest.json" not in sealed
    assert b"PRIVATE KEY" not in sealed
    without_newline = tmp_path / "passphrase"
    without_newline.write_text(PASSPHRASE, encoding="utf-8")
    done = restore(archives.sealed, "--passphrase-file", without_newline)
    assert done.code == 0, done.err
    assert f"{len(archives.letters)} letters, {len(archives.letters)} attachments" in done.out
    assert "audit log intact" in done.out
    assert _attachment_files(target / "data") == _attachment_files(
        archives.home.config.node.data_dir
    )
    assert (target / "pki" / "ca.key").read_bytes() == (
        archives.home.path / "pki" / "ca.key"
    ).read_bytes()


def test_encrypted_backup_needs_its_passphrase(
    tmp_path: Path, archives: Archives, restore_into: tuple[Path, Restore]
) -> None:
    _target, restore = restore_into
    wrong = tmp_path / "wrong"
    wrong.write_text("not the passphrase\n", encoding="utf-8")
    refused = restore(archives.sealed, "--passphrase-file", wrong)
    assert refused.code != 0
    assert "wrong passphrase" in refused.err
    missing = restore(archives.sealed)
    assert missing.code != 0
    assert "is encrypted; give its --passphrase-file" in missing.err
    assert entries(tmp_path) == ["wrong"]  # nothing restored, nothing staged


def test_empty_passphrase_is_refused(
    tmp_path: Path, archives: Archives, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n", encoding="utf-8")
    refused = run(
        capsys, "--home", archives.home.path, "backup", tmp_path / "b", "--passphrase-file", empty
    )
    assert refused.code != 0
    assert "empty passphrase" in refused.err
    assert entries(tmp_path) == ["empty"]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: _flip(data, HEADER_SIZE + CHUNK // 2), "tampered"),  # first chunk
        (lambda data: _flip(data, len(data) - 5), "tampered"),  # the final chunk's tag
        (lambda data: data[: len(data) // 2], "truncated"),
        (lambda data: data[: HEADER_SIZE + CHUNK + 16], "truncated"),  # at a chunk boundary
        (lambda data: data[:HEADER_SIZE] + data[HEADER_SIZE + CHUNK + 16 :], "tampered"),  # dropped
    ],
    ids=["flipped-byte", "flipped-tag", "cut-in-half", "cut-at-chunk", "chunk-dropped"],
)
def test_altered_encrypted_backup_restores_nothing(
    tmp_path: Path,
    archives: Archives,
    restore_into: tuple[Path, Restore],
    damage: Callable[[bytes], bytes],
    message: str,
) -> None:
    _target, restore = restore_into
    altered = tmp_path / "altered.bin"
    altered.write_bytes(damage(archives.sealed.read_bytes()))
    refused = restore(altered, "--passphrase-file", archives.passphrase_file)
    assert refused.code != 0
    assert message in refused.err
    assert len(refused.err.strip().splitlines()) == 1
    assert entries(tmp_path) == ["altered.bin"]


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def _rewrite(
    source: Path,
    out: Path,
    change_manifest: Callable[[dict[str, Any]], object] | None = None,
    change: Callable[[str, bytes], bytes] | None = None,
) -> None:
    """Copy a plain backup member by member, changing its manifest or one member's content."""
    with tarfile.open(source) as tar, tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as copy:
        for info in tar.getmembers():
            content = tar.extractfile(info).read() if info.isfile() else b""  # type: ignore[union-attr]
            if info.name == "manifest.json" and change_manifest is not None:
                document = json.loads(content)
                change_manifest(document)
                content = json.dumps(document).encode()
            elif change is not None:
                content = change(info.name, content)
            info.size = len(content)
            copy.addfile(info, io.BytesIO(content) if info.isfile() else None)


def _set_sum(member: str, sha256: str) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        for entry in document["members"]:
            if entry["path"] == member:
                entry["sha256"] = sha256

    return change


def test_manifest_checksum_mismatch_restores_nothing(
    tmp_path: Path, archives: Archives, restore_into: tuple[Path, Restore]
) -> None:
    _target, restore = restore_into
    altered = tmp_path / "altered.tar"
    _rewrite(archives.plain, altered, change_manifest=_set_sum("home/pki/ca.key", "0" * 64))
    refused = restore(altered)
    assert refused.code != 0
    assert "checksum mismatch in member home/pki/ca.key" in refused.err
    assert entries(tmp_path) == ["altered.tar"]


def test_altered_attachment_in_a_plain_backup_is_named(
    tmp_path: Path, archives: Archives, restore_into: tuple[Path, Restore]
) -> None:
    _target, restore = restore_into
    sha = archives.letters[1].attachment_sha256
    member = f"data/attachments/{sha[:2]}/{sha[2:4]}/{sha}"
    altered = tmp_path / "altered.tar"
    _rewrite(
        archives.plain,
        altered,
        change=lambda name, content: _flip(content, 1000) if name == member else content,
    )
    refused = restore(altered)
    assert refused.code != 0
    assert f"checksum mismatch in member {member}" in refused.err
    assert entries(tmp_path) == ["altered.tar"]


def test_plain_backup_cut_short_restores_nothing(
    tmp_path: Path, archives: Archives, restore_into: tuple[Path, Restore]
) -> None:
    _target, restore = restore_into
    cut = tmp_path / "cut.tar"
    data = archives.plain.read_bytes()
    cut.write_bytes(data[: len(data) - 150_000])  # inside the last attachment
    refused = restore(cut)
    assert refused.code != 0
    assert "truncated" in refused.err
    assert entries(tmp_path) == ["cut.tar"]


def test_not_a_backup_and_newer_formats_are_refused(
    tmp_path: Path, archives: Archives, restore_into: tuple[Path, Restore]
) -> None:
    _target, restore = restore_into
    other = tmp_path / "photo.jpg"
    other.write_bytes(b"\xff\xd8\xff\xe0" + bytes(5000))
    refused = restore(other)
    assert refused.code != 0
    assert "is not a govnode backup" in refused.err
    newer = tmp_path / "newer.tar"
    _rewrite(archives.plain, newer, change_manifest=lambda document: document.update(version=9))
    refused = restore(newer)
    assert refused.code != 0
    assert "format version 9" in refused.err
    refused = restore(tmp_path / "absent.tar")
    assert refused.code != 0
    assert "absent.tar: no such file" in refused.err
    assert entries(tmp_path) == ["newer.tar", "photo.jpg"]


def test_restore_refuses_a_home_that_holds_files(
    tmp_path: Path, archives: Archives, restore_into: tuple[Path, Restore]
) -> None:
    target, restore = restore_into
    target.mkdir()
    (target / "notes.txt").write_text("the operator's notes\n", encoding="utf-8")
    refused = restore(archives.plain)
    assert refused.code != 0
    assert f"the home {target} is not empty (it holds notes.txt)" in refused.err
    assert entries(target) == ["notes.txt"]
    assert (target / "notes.txt").read_text(encoding="utf-8") == "the operator's notes\n"


def test_backup_names_what_it_cannot_do(
    tmp_path: Path, archives: Archives, capsys: pytest.CaptureFixture[str]
) -> None:
    missing_folder = run(
        capsys, "--home", archives.home.path, "backup", tmp_path / "no-such" / "b.tar"
    )
    assert missing_folder.code != 0
    assert f"{tmp_path / 'no-such'}: no such folder" in missing_folder.err
    # An attachment the database references but the disk lost: no backup that cannot restore it.
    copy = tmp_path / "copy"
    shutil.copytree(archives.home.path, copy)
    sha = archives.letters[0].attachment_sha256
    (copy / "data" / "attachments" / sha[:2] / sha[2:4] / sha).unlink()
    lost = run(capsys, "--home", copy, "backup", tmp_path / "b.tar")
    assert lost.code != 0
    assert f"attachment {sha}, referenced by the database, is missing" in lost.err
    assert entries(tmp_path) == ["copy"]


def test_restore_with_another_data_dir_moves_attachments_and_database_there(
    tmp_path: Path,
    archives: Archives,
    restore_into: tuple[Path, Restore],
    capsys: pytest.CaptureFixture[str],
) -> None:
    target, restore = restore_into
    data_dir = tmp_path / "var-lib-govnode"
    done = restore(archives.plain, "--data-dir", data_dir)
    assert done.code == 0, done.err
    assert f"{len(archives.letters)} letters" in done.out
    assert "audit log intact" in done.out
    restored = load_config(target / CONFIG_NAME)
    assert restored.node.data_dir == data_dir
    assert _attachment_files(data_dir) == _attachment_files(archives.home.config.node.data_dir)
    assert not (target / "data").exists()
    if restored.database.url.startswith("sqlite"):  # PostgreSQL keeps it on its server
        assert restored.database.url == f"sqlite:///{data_dir / 'govnode.db'}"
    verify = run(capsys, "--home", target, "audit", "verify")
    assert verify.code == 0, verify.out
    again = run(
        capsys, "restore", archives.plain, "--home", tmp_path / "again", "--data-dir", data_dir
    )
    assert again.code != 0
    assert f"the data_dir {data_dir} is not empty" in again.err
    assert not (tmp_path / "again").exists()
