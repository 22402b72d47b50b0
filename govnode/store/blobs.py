"""Attachment files on disk, content-addressed by SHA-256.

A file is written to a temporary name, synced, renamed into place and its
folder synced before the transaction that references it commits, so a
committed letter never points at a missing file. Files that no letter
references (a submission that crashed or was refused after its files were
written) are removed once they are old enough not to belong to a
submission still in progress. All of this is blocking file work: callers
run it on a thread.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from govnode.locks import FileLock

CHUNK = 4 * 64 * 1024  # base64 characters per step: a multiple of 4
ORPHAN_AGE = 3600.0


class BadBase64(ValueError):
    pass


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        # Taken by uploads and by the purge, which may run in another process.
        self._lock = FileLock(root / ".lock")

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def write_base64(self, data: str) -> tuple[str, int]:
        """Decode, hash and store `data` piece by piece; returns (sha256, size)."""
        incoming = self.root / "incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        handle, temporary = tempfile.mkstemp(dir=incoming)
        try:
            with os.fdopen(handle, "wb") as out:
                for start in range(0, len(data), CHUNK):
                    try:
                        piece = base64.b64decode(data[start : start + CHUNK], validate=True)
                    except (binascii.Error, ValueError) as exc:
                        raise BadBase64(str(exc)) from None
                    digest.update(piece)
                    size += len(piece)
                    out.write(piece)
                out.flush()
                os.fsync(out.fileno())
            sha256 = digest.hexdigest()
            final = self.path(sha256)
            with self._lock:
                try:
                    # The same content may be stored already, perhaps as an old orphan
                    # that nothing references until our letter commits: make it young,
                    # under the lock the purge takes (in any process), or it could go in between.
                    os.utime(final)
                except FileNotFoundError:
                    final.parent.mkdir(parents=True, exist_ok=True)
                    os.rename(temporary, final)
                    _fsync_directory(final.parent)
                else:
                    os.unlink(temporary)
            return sha256, size
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise

    def remove_orphans(self, referenced: Iterable[str], *, now: float | None = None) -> int:
        """Delete files older than an hour that no letter references; returns the count."""
        keep = set(referenced)
        limit = (now or time.time()) - ORPHAN_AGE
        removed = 0
        for path in [*self.root.glob("*/*/*"), *(self.root / "incoming").glob("*")]:
            if path.name in keep:
                continue
            with self._lock, contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < limit:
                    path.unlink()
                    removed += 1
        return removed


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
