"""Attachment files: content-addressed, stored once, orphans removed but never in-use ones."""

from __future__ import annotations

import base64
import hashlib
import os
import time
from pathlib import Path

import pytest

from govnode.store.blobs import ORPHAN_AGE, BadBase64, BlobStore


def encoded(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def test_the_same_content_is_stored_once_under_its_sha256(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "attachments")
    data = os.urandom(3 * 256 * 1024 + 5)  # several decoding steps
    first = store.write_base64(encoded(data))
    second = store.write_base64(encoded(data))
    assert first == second == (hashlib.sha256(data).hexdigest(), len(data))
    files = [p for p in (tmp_path / "attachments").rglob("*") if p.is_file()]
    assert sorted(files) == sorted([store.path(first[0]), store.root / ".lock"])
    assert store.path(first[0]).read_bytes() == data


def test_bad_base64_leaves_nothing_behind(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "attachments")
    with pytest.raises(BadBase64):
        store.write_base64("QUJD" * 100_000 + "!!!!")
    assert not [p for p in (tmp_path / "attachments").rglob("*") if p.is_file()]


def test_only_old_unreferenced_files_are_removed(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "attachments")
    kept, _ = store.write_base64(encoded(b"kept"))
    orphan, _ = store.write_base64(encoded(b"orphan"))
    young, _ = store.write_base64(encoded(b"young"))
    old = time.time() - ORPHAN_AGE - 60
    for sha256 in (kept, orphan):
        os.utime(store.path(sha256), (old, old))
    assert store.remove_orphans([kept]) == 1
    assert store.path(kept).exists()
    assert not store.path(orphan).exists()
    assert store.path(young).exists()  # may belong to a submission under way


def test_storing_content_again_protects_an_old_orphan_from_removal(tmp_path: Path) -> None:
    """A refused submission leaves its file; the corrected one an hour later reuses it.

    Until the new letter commits, nothing references the file: it must not
    look like an hour-old orphan to the purge that may run in between.
    """
    store = BlobStore(tmp_path / "attachments")
    sha256, _ = store.write_base64(encoded(b"scan of the contract"))
    old = time.time() - ORPHAN_AGE - 60
    os.utime(store.path(sha256), (old, old))
    assert store.write_base64(encoded(b"scan of the contract"))[0] == sha256
    assert store.remove_orphans([]) == 0
    assert store.path(sha256).read_bytes() == b"scan of the contract"
