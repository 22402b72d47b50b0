"""A passphrase-sealed byte stream: scrypt, then AES-256-GCM in numbered chunks.

The backup's tar stream goes through `SealedWriter` and comes back through
`SealedReader`. Each chunk's nonce holds a random prefix, the chunk's number
and a final-chunk flag, and every chunk authenticates the header: a flipped
byte, chunks swapped or dropped, or a file cut short all fail to decrypt,
and nothing is handed on from a chunk that did not verify.

Layout: MAGIC, version, log2(n), r, p, salt (16), nonce prefix (7), chunk
size (4), key check (32: HMAC of everything before it, so a wrong passphrase
is told apart from a damaged file), then the chunks, each its plaintext
length plus a 16-byte tag; the last one carries the final flag.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

MAGIC = b"GOVNODE-SEALED\n\0"
VERSION = 1
CHUNK = 64 * 1024
TAG = 16
_FIXED = struct.Struct(">BBBB16s7sI")  # version, log2 n, r, p, salt, nonce prefix, chunk size
HEADER_SIZE = len(MAGIC) + _FIXED.size + 32
SCRYPT_LOG2_N = 17  # 128 MiB, about half a second: slow for guessing, fine for a nightly job


class SealError(Exception):
    """The passphrase does not open the stream, or the stream was altered or cut short."""


def read_passphrase(path: os.PathLike[str] | str) -> bytes:
    """The passphrase in `path`, without one trailing newline (as `echo` writes it)."""
    with open(path, "rb") as handle:
        secret = handle.read()
    secret = secret.removesuffix(b"\n")
    if not secret:
        raise SealError(f"{os.fspath(path)} holds an empty passphrase")
    return secret


def _keys(passphrase: bytes, salt: bytes, log2_n: int, r: int, p: int) -> tuple[bytes, bytes]:
    derived = Scrypt(salt=salt, length=64, n=2**log2_n, r=r, p=p).derive(passphrase)
    return derived[:32], derived[32:]


def _nonce(prefix: bytes, counter: int, final: bool) -> bytes:
    return prefix + struct.pack(">I", counter) + (b"\x01" if final else b"\x00")


class SealedWriter:
    """A write-only file object that seals what is written to `out`; `close()` ends it."""

    def __init__(self, out: BinaryIO, passphrase: bytes, *, log2_n: int = SCRYPT_LOG2_N) -> None:
        salt, self._prefix = os.urandom(16), os.urandom(7)
        key, check_key = _keys(passphrase, salt, log2_n, 8, 1)
        self._aead = AESGCM(key)
        fixed = MAGIC + _FIXED.pack(VERSION, log2_n, 8, 1, salt, self._prefix, CHUNK)
        self._header = fixed + hmac.digest(check_key, fixed, hashlib.sha256)
        self._out = out
        self._out.write(self._header)
        self._buffer = bytearray()
        self._counter = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        self._buffer += data
        # Keep the last full chunk back: only close() knows which chunk is final.
        while len(self._buffer) > CHUNK:
            self._seal(bytes(self._buffer[:CHUNK]), final=False)
            del self._buffer[:CHUNK]
        return len(data)

    def _seal(self, plain: bytes, *, final: bool) -> None:
        nonce = _nonce(self._prefix, self._counter, final)
        self._out.write(self._aead.encrypt(nonce, plain, self._header))
        self._counter += 1

    def close(self) -> None:
        if not self.closed:
            self._seal(bytes(self._buffer), final=True)
            self._buffer.clear()
            self.closed = True


class SealedReader:
    """A read-only file object giving back what a `SealedWriter` sealed, chunk by verified chunk."""

    def __init__(self, source: BinaryIO, passphrase: bytes) -> None:
        header = source.read(HEADER_SIZE)
        if len(header) < HEADER_SIZE or not header.startswith(MAGIC):
            raise SealError("not a sealed govnode backup")
        fixed = header[:-32]
        version, log2_n, r, p, salt, self._prefix, self._chunk = _FIXED.unpack(fixed[len(MAGIC) :])
        if version != VERSION:
            raise SealError(f"sealed with format version {version}; this govnode reads {VERSION}")
        if not (10 <= log2_n <= 22 and 1 <= r <= 32 and 1 <= p <= 16 and 0 < self._chunk <= 2**24):
            raise SealError("the sealed header is damaged (impossible parameters)")
        key, check_key = _keys(passphrase, salt, log2_n, r, p)
        if not hmac.compare_digest(hmac.digest(check_key, fixed, hashlib.sha256), header[-32:]):
            raise SealError("wrong passphrase (or the archive's header was altered)")
        self._aead = AESGCM(key)
        self._header = header
        self._source = source
        self._counter = 0
        self._plain = b""
        self._pending = self._source.read(self._chunk + TAG)
        self._done = False

    @staticmethod
    def is_sealed(start: bytes) -> bool:
        return start.startswith(MAGIC)

    def _next_chunk(self) -> None:
        sealed = self._pending
        self._pending = self._source.read(self._chunk + TAG)
        final = not self._pending
        if len(sealed) < TAG:
            raise SealError("the archive is truncated")
        try:
            self._plain = self._aead.decrypt(
                _nonce(self._prefix, self._counter, final), sealed, self._header
            )
        except InvalidTag:
            if final:
                raise SealError("the archive was tampered with or truncated") from None
            raise SealError(f"the archive was tampered with (chunk {self._counter})") from None
        self._counter += 1
        self._done = final

    def read(self, size: int = -1) -> bytes:
        parts: list[bytes] = []
        wanted = size if size >= 0 else None
        while wanted is None or wanted > 0:
            if not self._plain:
                if self._done:
                    break
                self._next_chunk()
                continue
            take = self._plain if wanted is None else self._plain[:wanted]
            self._plain = self._plain[len(take) :]
            parts.append(take)
            if wanted is not None:
                wanted -= len(take)
        return b"".join(parts)
