"""The audit chain's record hash is the SHA-256 of one canonical JSON text, for good."""

from __future__ import annotations

import hashlib
import json

import pytest

from govnode.domain.audit import GENESIS, record_hash


def canonical_hash(*fields: object) -> str:
    prev_hash, id, at, kind, actor, subject, detail = fields
    text = json.dumps(
        [prev_hash, id, repr(at), kind, actor, subject, detail],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@pytest.mark.parametrize(
    "fields",
    [
        (GENESIS, 1, 1780000000.123, "letter.registered", "edu@kb", "01JD3X", '{"number":"KB"}'),
        ("a" * 64, 2**62, 0.0, "login.failure", 'x"y\\z\n\t\x00\x7f\u2028', "سلام", ""),
        ("b" * 64, 7, 1e-7, "letter.read", "\u200cگزارش‌ها", "\U0001f600", '{"r":"\\"q\\""}'),
    ],
)
def test_the_hash_is_that_of_the_canonical_json(fields: tuple[object, ...]) -> None:
    assert record_hash(*fields) == canonical_hash(*fields)  # type: ignore[arg-type]
