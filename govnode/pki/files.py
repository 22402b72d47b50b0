"""Reading and writing PKI files so that a crash or a reload never sees half a file.

The TLS server re-reads its certificate, key, CA and CRL files while running
(``ServerTLS.reload_if_changed``); writers therefore replace files atomically
(temporary file in the same directory, ``fsync``, ``rename``) and readers get an
error that names the path instead of a bare ``OSError``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from govnode.pki.errors import CertificateFileError

_PEM_BEGIN = b"-----BEGIN "


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file, never a mix.

    The temporary file is created 0600 and gets ``mode`` before the rename, so a
    private key is never readable by others, not even for an instant. The
    directory is fsynced too, otherwise the rename itself may be lost on power
    failure.
    """
    directory = path.parent
    try:
        fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise CertificateFileError(f"{path}: cannot write: {exc.strerror}") from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            os.fchmod(handle.fileno(), mode)
        tmp.replace(path)
        _fsync_directory(directory)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise CertificateFileError(f"{path}: cannot write: {exc.strerror}") from exc


def write_private(path: Path, data: bytes) -> None:
    """Write a private key (or anything secret): owner read/write only."""
    write_atomic(path, data, mode=0o600)


def read_pem(path: Path, what: str) -> bytes:
    """Read a PEM file, raising ``CertificateFileError`` naming ``path`` and ``what``.

    ``what`` is a short description for the message ("CA certificate",
    "server private key", "CRL"); the caller parses the content and reports a
    malformed one with the same wording.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CertificateFileError(f"{path}: cannot read {what}: {exc.strerror}") from exc
    if _PEM_BEGIN not in data:
        raise CertificateFileError(f"{path}: expected {what} in PEM format")
    return data


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
