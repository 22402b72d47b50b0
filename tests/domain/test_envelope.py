"""Envelopes and receipts: canonical bytes, signatures, tampering, loops (real ECDSA keys)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from govnode.domain.envelope import (
    MAX_HOPS,
    Envelope,
    EnvelopeAttachment,
    EnvelopeInvalid,
    Receipt,
    RoutingLoop,
    SignedEnvelope,
)
from govnode.domain.ids import new_ulid
from govnode.domain.routing import NoRoute, RoutingTable
from govnode.pki import signing

KB_KEY = signing.create_signing_key()
CENTER_KEY = signing.create_signing_key()


def envelope(**changes: Any) -> Envelope:
    base = Envelope(
        id=new_ulid(1_780_000_000_000),
        origin="kb",
        destination="fars",
        letter_id=new_ulid(1_780_000_000_000),
        number="KB-1405-000123",
        sender="edu@kb",
        recipients=(("edu@fars", "to"), ("welfare@kb", "cc")),
        subject="بخشنامه آموزشی",
        body="با سلام\nمتن نامه",
        priority="normal",
        classification="normal",
        in_reply_to=None,
        created_at_ms=1_780_000_000_123,
        attachments=(EnvelopeAttachment("گزارش.pdf", "application/pdf", 1024, "a" * 64),),
    )
    return replace(base, **changes)


def through_the_wire(signed: SignedEnvelope) -> SignedEnvelope:
    """As a peer receives it: JSON text, parsed again."""
    return SignedEnvelope.from_json(json.loads(json.dumps(signed.to_json())))


def test_a_signed_envelope_verifies_after_the_wire_with_the_origin_key_only() -> None:
    signed = envelope().signed(signing.signer(KB_KEY))
    received = through_the_wire(signed)
    assert received == signed
    assert received.verify(signing.verifier(signing.public_pem(KB_KEY)))
    assert not received.verify(signing.verifier(signing.public_pem(CENTER_KEY)))


@pytest.mark.parametrize(
    "change",
    [
        {"subject": "بخشنامه آموزشی!"},
        {"body": "با سلام\nمتن نامه "},
        {"recipients": (("edu@fars", "to"),)},
        {"destination": "center"},
        {"number": "KB-1405-000124"},
        {"created_at_ms": 1_780_000_000_124},
        {"attachments": (EnvelopeAttachment("گزارش.pdf", "application/pdf", 1024, "b" * 64),)},
    ],
)
def test_any_change_to_the_letter_breaks_the_signature(change: dict[str, Any]) -> None:
    original = envelope()
    signed = original.signed(signing.signer(KB_KEY))
    tampered = SignedEnvelope(replace(original, **change), signed.signature, signed.hops)
    assert not through_the_wire(tampered).verify(signing.verifier(signing.public_pem(KB_KEY)))


def test_canonical_bytes_keep_persian_as_utf8_and_do_not_depend_on_key_order() -> None:
    one = envelope()
    canonical = one.canonical()
    assert "بخشنامه آموزشی".encode() in canonical
    assert json.loads(canonical) == one.document()
    reversed_keys = dict(reversed(list(one.document().items())))
    received = SignedEnvelope.from_json(
        {"envelope": reversed_keys, "signature": "x", "hops": ["kb"]}
    )
    assert received.envelope.canonical() == canonical


def test_relays_append_themselves_and_loops_are_refused() -> None:
    signed = envelope().signed(signing.signer(KB_KEY))
    at_center = signed.forwarded_by("center")
    assert at_center.hops == ("kb", "center")
    assert at_center.verify(signing.verifier(signing.public_pem(KB_KEY)))  # hops are unsigned
    with pytest.raises(RoutingLoop):
        at_center.forwarded_by("kb")
    long_way = signed
    for n in range(MAX_HOPS - 1):
        long_way = long_way.forwarded_by(f"n{n}")
    with pytest.raises(RoutingLoop):
        long_way.forwarded_by("one-more")


@pytest.mark.parametrize(
    ("mangle", "field"),
    [
        (lambda d: d.pop("signature"), "signature"),
        (lambda d: d["envelope"].pop("subject"), "envelope.subject"),
        (lambda d: d["envelope"].update(id="not-a-ulid"), "envelope.id"),
        (lambda d: d["envelope"].update(origin="KB!"), "envelope.origin"),
        (lambda d: d["envelope"].update(created_at_ms=1.5), "envelope.created_at_ms"),
        (
            lambda d: d["envelope"].update(recipients=[["edu@fars", "bcc"]]),
            "envelope.recipients[0]",
        ),
        (
            lambda d: d["envelope"]["attachments"][0].update(sha256="xyz"),
            "envelope.attachments[0].sha256",
        ),
        (lambda d: d["envelope"].update(protocol="smtp"), "envelope.protocol"),
        (lambda d: d.update(hops=["center"]), "hops"),
        (lambda d: d.update(hops=["kb"] * (MAX_HOPS + 1)), "hops"),
    ],
)
def test_malformed_envelopes_name_the_field(mangle: Any, field: str) -> None:
    document = json.loads(json.dumps(envelope().signed(signing.signer(KB_KEY)).to_json()))
    mangle(document)
    with pytest.raises(EnvelopeInvalid) as refused:
        SignedEnvelope.from_json(document)
    assert refused.value.field == field


def receipt(**changes: Any) -> Receipt:
    base = Receipt(
        new_ulid(1_780_000_000_000),
        new_ulid(1_780_000_000_000),
        "center",
        "presidency@center",
        "delivered",
        1_780_000_001_000,
    )
    return replace(base, **changes)


def keys(node: str) -> Any:
    known = {"kb": KB_KEY, "center": CENTER_KEY}
    return signing.verifier(signing.public_pem(known[node])) if node in known else None


def test_a_receipt_verifies_with_its_signers_key_and_tampering_is_refused() -> None:
    original = receipt()
    wire = json.loads(json.dumps(original.signed(signing.signer(CENTER_KEY))))
    assert Receipt.verified(wire, keys) == original

    wire["receipt"]["status"] = "read"
    with pytest.raises(EnvelopeInvalid) as tampered:
        Receipt.verified(wire, keys)
    assert tampered.value.field == "signature"

    claims_kb = json.loads(json.dumps(receipt(node="kb").signed(signing.signer(CENTER_KEY))))
    with pytest.raises(EnvelopeInvalid):
        Receipt.verified(claims_kb, keys)  # signed by center, says it is kb

    stranger = json.loads(json.dumps(receipt(node="mars").signed(signing.signer(CENTER_KEY))))
    with pytest.raises(EnvelopeInvalid) as unknown:
        Receipt.verified(stranger, keys)
    assert unknown.value.field == "receipt.node"


def test_routing_uses_explicit_routes_then_the_default() -> None:
    province = RoutingTable(local="kb", routes={"fars": "fars"}, default="center")
    assert province.next_hop("kb") is None
    assert province.next_hop("fars") == "fars"
    assert province.next_hop("isfahan") == "center"
    center = RoutingTable(local="center", routes={"kb": "kb", "fars": "fars"})
    assert center.next_hop("fars") == "fars"
    assert not center.routable("mars")
    with pytest.raises(NoRoute):
        center.next_hop("mars")
    assert not RoutingTable(local="center", default="center").routable("kb")
