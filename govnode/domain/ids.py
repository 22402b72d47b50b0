"""Letter ids: ULIDs (time-ordered, 128 bits, Crockford base32), e.g. `01JD3X...`."""

from __future__ import annotations

import hashlib
import os

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_ulid(milliseconds: int) -> str:
    """A ULID for a moment given in milliseconds since the epoch (80 random bits)."""
    value = (milliseconds & ((1 << 48) - 1)) << 80 | int.from_bytes(os.urandom(10), "big")
    return "".join(_ALPHABET[(value >> shift) & 31] for shift in range(125, -1, -5))


def is_ulid(text: str) -> bool:
    return len(text) == 26 and text[0] in "01234567" and all(c in _ALPHABET for c in text)


def derived_ulid(base: str, salt: str) -> str:
    """A ULID with `base`'s time and 80 bits from a hash of both: the same every time.

    For envelope ids: a letter's envelope for one destination keeps its id
    through every retry, so the receiving node can tell a retry from a new one.
    """
    digest = int.from_bytes(hashlib.sha256(f"{base}/{salt}".encode()).digest()[:10], "big")
    return base[:10] + "".join(_ALPHABET[(digest >> shift) & 31] for shift in range(75, -1, -5))
