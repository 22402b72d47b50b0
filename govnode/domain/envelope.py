"""Federation envelopes and receipts: what nodes sign, byte for byte.

The origin node signs the canonical form of a letter for one destination
node, with its attachments' SHA-256 sums (the files travel beside it and are
checked against them); every node on the way verifies that signature before
it accepts the envelope. The hop list stays outside the signature: each
relay appends itself, and the receipts that each node signs say what it did
(`relayed`, `delivered`, then `read` and `answered` from the recipient's node).

Signing and verifying are callables (`pki.signing.signer`/`verifier`): this
module does no cryptography or I/O of its own.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from govnode.domain.agency import is_node_id
from govnode.domain.ids import is_ulid

ENVELOPE_PROTOCOL = "govnode-envelope/1"
RECEIPT_PROTOCOL = "govnode-receipt/1"
MAX_HOPS = 8
RECEIPT_STATUSES = frozenset({"relayed", "delivered", "read", "answered", "failed", "expired"})

Signer = Callable[[bytes], str]
Verifier = Callable[[bytes, str], bool]


class EnvelopeInvalid(ValueError):
    """A field of an envelope or receipt is missing or wrong; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class RoutingLoop(ValueError):
    """The envelope has passed this node already, or too many nodes."""


def canonical_json(document: Mapping[str, Any]) -> bytes:
    """The one byte form of a document that signatures cover: sorted keys, no
    spaces, UTF-8 as is (Persian text is not escaped), integers for times."""
    return json.dumps(
        document, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
    ).encode("utf-8")


@dataclass(frozen=True, slots=True)
class EnvelopeAttachment:
    filename: str
    content_type: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Envelope:
    """A letter as it leaves its origin node for one destination node."""

    id: str  # the envelope's own ULID: the unit of dedup at every node
    origin: str
    destination: str
    letter_id: str
    number: str
    sender: str  # code@origin
    recipients: tuple[tuple[str, str], ...]  # (address, "to" | "cc"): the whole list
    subject: str
    body: str
    priority: str
    classification: str
    in_reply_to: str | None
    created_at_ms: int
    attachments: tuple[EnvelopeAttachment, ...] = ()

    def document(self) -> dict[str, Any]:
        return {
            "protocol": ENVELOPE_PROTOCOL,
            "id": self.id,
            "origin": self.origin,
            "destination": self.destination,
            "letter_id": self.letter_id,
            "number": self.number,
            "sender": self.sender,
            "recipients": [[address, kind] for address, kind in self.recipients],
            "subject": self.subject,
            "body": self.body,
            "priority": self.priority,
            "classification": self.classification,
            "in_reply_to": self.in_reply_to,
            "created_at_ms": self.created_at_ms,
            "attachments": [
                {
                    "filename": a.filename,
                    "content_type": a.content_type,
                    "size": a.size,
                    "sha256": a.sha256,
                }
                for a in self.attachments
            ],
        }

    def canonical(self) -> bytes:
        return canonical_json(self.document())

    def signed(self, sign: Signer) -> SignedEnvelope:
        """Signed by the origin node, which is its first hop."""
        return SignedEnvelope(self, sign(self.canonical()), hops=(self.origin,))


@dataclass(frozen=True, slots=True)
class SignedEnvelope:
    envelope: Envelope
    signature: str  # the origin node's, over `envelope.canonical()`
    hops: tuple[str, ...]  # nodes it has passed, the origin first

    def verify(self, verify: Verifier) -> bool:
        """Whether `verify` (the origin node's key) accepts the signature."""
        return verify(self.envelope.canonical(), self.signature)

    def forwarded_by(self, node: str) -> SignedEnvelope:
        """The envelope as `node` hands it on; refuses loops and overlong paths."""
        if node in self.hops:
            raise RoutingLoop(f"envelope {self.envelope.id} has passed {node} already")
        if len(self.hops) >= MAX_HOPS:
            raise RoutingLoop(f"envelope {self.envelope.id} has passed {MAX_HOPS} nodes")
        return replace(self, hops=(*self.hops, node))

    def to_json(self) -> dict[str, Any]:
        return {
            "envelope": self.envelope.document(),
            "signature": self.signature,
            "hops": list(self.hops),
        }

    @classmethod
    def from_json(cls, document: object) -> SignedEnvelope:
        """Read what a peer sent; any missing or malformed field is EnvelopeInvalid."""
        top = _mapping(document, "(body)")
        fields = _mapping(top.get("envelope"), "envelope")
        if fields.get("protocol") != ENVELOPE_PROTOCOL:
            raise EnvelopeInvalid("envelope.protocol", f"must be {ENVELOPE_PROTOCOL!r}")
        envelope = Envelope(
            id=_ulid(fields, "id"),
            origin=_node(fields, "origin"),
            destination=_node(fields, "destination"),
            letter_id=_ulid(fields, "letter_id"),
            number=_text(fields, "number"),
            sender=_text(fields, "sender"),
            recipients=_recipients(fields.get("recipients")),
            subject=_text(fields, "subject"),
            body=_text(fields, "body", empty=True),
            priority=_text(fields, "priority"),
            classification=_text(fields, "classification"),
            in_reply_to=_optional_ulid(fields, "in_reply_to"),
            created_at_ms=_integer(fields, "created_at_ms"),
            attachments=_attachments(fields.get("attachments")),
        )
        signature = _text(top, "signature", prefix="")
        hops_value = top.get("hops")
        if not isinstance(hops_value, list) or not hops_value:
            raise EnvelopeInvalid("hops", "must be a non-empty list of node ids")
        hops = tuple(hops_value)
        if not all(isinstance(hop, str) and is_node_id(hop) for hop in hops):
            raise EnvelopeInvalid("hops", "must be a non-empty list of node ids")
        if hops[0] != envelope.origin:
            raise EnvelopeInvalid("hops", "must start with the origin node")
        if len(hops) > MAX_HOPS:
            raise EnvelopeInvalid("hops", f"more than {MAX_HOPS} nodes")
        return cls(envelope, signature, hops)


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a node says it did with an envelope (or, later, with its letter)."""

    envelope_id: str
    letter_id: str
    node: str  # the node that signs
    address: str  # the recipient it concerns
    status: str
    at_ms: int
    detail: str = ""

    def document(self) -> dict[str, Any]:
        return {
            "protocol": RECEIPT_PROTOCOL,
            "envelope_id": self.envelope_id,
            "letter_id": self.letter_id,
            "node": self.node,
            "address": self.address,
            "status": self.status,
            "at_ms": self.at_ms,
            "detail": self.detail,
        }

    def canonical(self) -> bytes:
        return canonical_json(self.document())

    def signed(self, sign: Signer) -> dict[str, Any]:
        return SignedReceipt(self, sign(self.canonical())).to_json()

    @classmethod
    def verified(cls, document: object, verify_for: Callable[[str], Verifier | None]) -> Receipt:
        """Read a signed receipt and check it with the key of the node that signed it.

        `verify_for(node)` gives that node's verifier, or None for a node we do
        not know; a receipt that does not verify is EnvelopeInvalid("signature").
        """
        top = _mapping(document, "(body)")
        fields = _mapping(top.get("receipt"), "receipt")
        if fields.get("protocol") != RECEIPT_PROTOCOL:
            raise EnvelopeInvalid("receipt.protocol", f"must be {RECEIPT_PROTOCOL!r}")
        status = _text(fields, "status", prefix="receipt.")
        if status not in RECEIPT_STATUSES:
            raise EnvelopeInvalid("receipt.status", f"must be one of {sorted(RECEIPT_STATUSES)}")
        receipt = cls(
            envelope_id=_ulid(fields, "envelope_id", prefix="receipt."),
            letter_id=_ulid(fields, "letter_id", prefix="receipt."),
            node=_node(fields, "node", prefix="receipt."),
            address=_text(fields, "address", prefix="receipt."),
            status=status,
            at_ms=_integer(fields, "at_ms", prefix="receipt."),
            detail=_text(fields, "detail", prefix="receipt.", empty=True),
        )
        verify = verify_for(receipt.node)
        if verify is None:
            raise EnvelopeInvalid("receipt.node", f"no key for node {receipt.node!r}")
        if not verify(receipt.canonical(), _text(top, "signature", prefix="")):
            raise EnvelopeInvalid("signature", f"the receipt is not signed by {receipt.node}")
        return receipt


@dataclass(frozen=True, slots=True)
class SignedReceipt:
    """A verified receipt with its signature, to be handed on as it came (a notice)."""

    receipt: Receipt
    signature: str

    def to_json(self) -> dict[str, Any]:
        return {"receipt": self.receipt.document(), "signature": self.signature}

    @classmethod
    def verified(
        cls, document: object, verify_for: Callable[[str], Verifier | None]
    ) -> SignedReceipt:
        receipt = Receipt.verified(document, verify_for)
        assert isinstance(document, dict)  # Receipt.verified checked it
        return cls(receipt, document["signature"])


@dataclass(frozen=True, slots=True)
class StatusNotice:
    """A signed receipt travelling back to the letter's origin node, hop by hop."""

    destination: str
    signed: SignedReceipt
    hops: tuple[str, ...]  # the nodes it has passed, the last one the caller

    def to_json(self) -> dict[str, Any]:
        return {"destination": self.destination, **self.signed.to_json(), "hops": list(self.hops)}

    @classmethod
    def from_json(
        cls,
        document: object,
        *,
        caller: str,
        here: str,
        verify_for: Callable[[str], Verifier | None],
    ) -> StatusNotice:
        """Read one notice from `caller`; EnvelopeInvalid (`field` says what) if it is
        malformed, loops, does not come from `caller`, or does not verify."""
        fields = _mapping(document, "notice")
        destination = _node(fields, "destination", prefix="")
        hops_value = fields.get("hops")
        if (
            not isinstance(hops_value, list)
            or not hops_value
            or not all(isinstance(hop, str) and is_node_id(hop) for hop in hops_value)
        ):
            raise EnvelopeInvalid("hops", "must be a non-empty list of node ids")
        hops = tuple(hops_value)
        if hops[-1] != caller:
            raise EnvelopeInvalid("hops", f"the last hop must be the caller, {caller}")
        if here in hops or len(hops) >= MAX_HOPS:
            raise RoutingLoop(f"notice has passed {here} or {MAX_HOPS} nodes already")
        return cls(destination, SignedReceipt.verified(fields, verify_for), hops)


# -- reading peers' JSON ------------------------------------------------------


def _mapping(value: object, field: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise EnvelopeInvalid(field, "must be an object")
    return value


def _text(
    fields: Mapping[str, Any], name: str, *, prefix: str = "envelope.", empty: bool = False
) -> str:
    value = fields.get(name)
    if not isinstance(value, str) or (not empty and not value):
        raise EnvelopeInvalid(
            prefix + name, "must be a non-empty string" if not empty else "must be a string"
        )
    return value


def _integer(fields: Mapping[str, Any], name: str, *, prefix: str = "envelope.") -> int:
    value = fields.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise EnvelopeInvalid(prefix + name, "must be a whole number of milliseconds")
    return value


def _ulid(fields: Mapping[str, Any], name: str, *, prefix: str = "envelope.") -> str:
    value = _text(fields, name, prefix=prefix)
    if not is_ulid(value):
        raise EnvelopeInvalid(prefix + name, "must be a ULID")
    return value


def _optional_ulid(fields: Mapping[str, Any], name: str) -> str | None:
    return None if fields.get(name) is None else _ulid(fields, name)


def _node(fields: Mapping[str, Any], name: str, *, prefix: str = "envelope.") -> str:
    value = _text(fields, name, prefix=prefix)
    if not is_node_id(value):
        raise EnvelopeInvalid(prefix + name, "must be a node id")
    return value


def _recipients(value: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, list) or not value:
        raise EnvelopeInvalid("envelope.recipients", "must be a non-empty list")
    recipients = []
    for index, item in enumerate(value):
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not all(isinstance(part, str) for part in item)
            or item[1] not in ("to", "cc")
        ):
            raise EnvelopeInvalid(f"envelope.recipients[{index}]", 'must be [address, "to" | "cc"]')
        recipients.append((item[0], item[1]))
    return tuple(recipients)


def _attachments(value: object) -> tuple[EnvelopeAttachment, ...]:
    if not isinstance(value, list):
        raise EnvelopeInvalid("envelope.attachments", "must be a list")
    attachments = []
    for index, item in enumerate(value):
        fields = _mapping(item, f"envelope.attachments[{index}]")
        prefix = f"envelope.attachments[{index}]."
        sha256 = _text(fields, "sha256", prefix=prefix)
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise EnvelopeInvalid(prefix + "sha256", "must be 64 lowercase hex digits")
        attachments.append(
            EnvelopeAttachment(
                filename=_text(fields, "filename", prefix=prefix),
                content_type=_text(fields, "content_type", prefix=prefix),
                size=_integer(fields, "size", prefix=prefix),
                sha256=sha256,
            )
        )
    return tuple(attachments)
