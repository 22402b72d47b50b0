"""A letter as submitted: checked field by field, with the API's field names in errors."""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from govnode.domain.address import Address, InvalidAddress
from govnode.domain.calendar import BadDate, parse_deadline
from govnode.domain.ids import is_ulid

MAX_RECIPIENTS = 100
MAX_SUBJECT = 500
MAX_BODY = 1_000_000
MAX_ATTACHMENTS = 20
MAX_FILENAME = 255
IDEMPOTENCY_KEY = re.compile(r"^[\x20-\x7e]{1,128}$")  # 1-128 printable ASCII
# JSON can spell what no UTF-8 text (and no database) holds: lone surrogates
# (`"\ud800"`) and NUL, which PostgreSQL refuses in text columns.
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")
_CONTENT_TYPE = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$"
)
_FIELDS = {
    "to",
    "cc",
    "subject",
    "body",
    "priority",
    "classification",
    "in_reply_to",
    "attachments",
    "reply_by",
}


class Priority(enum.StrEnum):
    NORMAL = "normal"
    URGENT = "urgent"
    IMMEDIATE = "immediate"


class Classification(enum.StrEnum):
    NORMAL = "normal"
    RESTRICTED = "restricted"
    CONFIDENTIAL = "confidential"
    SECRET = "secret"  # noqa: S105 - a classification level, not a password


class LetterInvalid(ValueError):
    """One field of a submission is wrong; `too_large` for size limits (413)."""

    def __init__(self, field: str, message: str, *, too_large: bool = False) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.too_large = too_large


@dataclass(frozen=True, slots=True)
class AttachmentInput:
    filename: str
    content_type: str
    data: str  # base64, decoded and stored by the store
    size: int  # decoded size, from the base64 length


@dataclass(frozen=True, slots=True)
class Recipient:
    address: Address
    kind: str  # "to" | "cc"
    field: str  # where it was named, for errors: to[1]


@dataclass(frozen=True, slots=True)
class Submission:
    recipients: tuple[Recipient, ...]
    subject: str
    body: str
    priority: Priority
    classification: Classification
    in_reply_to: str | None
    attachments: tuple[AttachmentInput, ...]
    request_hash: str  # for Idempotency-Key: the same key must come with the same body
    reply_by: float | None = None  # when an answer is due (reports count the overdue)


def request_hash(document: Mapping[str, Any]) -> str:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def decoded_size(data: str) -> int:
    """Bytes a base64 text decodes to (exact for valid, padded base64)."""
    padding = len(data) - len(data.rstrip("="))
    return len(data) * 3 // 4 - padding


def _text(document: Mapping[str, Any], field: str, *, required: bool, low: int, high: int) -> str:
    value = document.get(field, None if required else "")
    if not isinstance(value, str):
        raise LetterInvalid(field, f"{field} must be a string")
    if len(value) > high:
        raise LetterInvalid(field, f"{field} is longer than {high} characters")
    if len(value.strip()) < low:
        raise LetterInvalid(field, f"{field} must not be empty")
    if _unstorable(value):
        raise LetterInvalid(field, f"{field} holds a NUL character or a lone surrogate")
    return value


def _unstorable(value: str) -> bool:
    """Whether `value` holds NUL or a surrogate (`_UNSTORABLE`), a third of the
    regex's time on a 2 KB Persian body: UTF-8 has no surrogates, so encoding
    fails exactly when one is there."""
    if "\x00" in value:
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _choice(document: Mapping[str, Any], field: str, kind: type[enum.StrEnum]) -> Any:
    value = document.get(field, "normal")
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(item.value for item in kind)
        raise LetterInvalid(field, f"{field} must be one of {allowed}") from None


def _recipients(document: Mapping[str, Any], local_node: str) -> tuple[Recipient, ...]:
    found: dict[Address, Recipient] = {}
    for kind, minimum in (("to", 1), ("cc", 0)):
        names = document.get(kind, [] if kind == "cc" else None)
        if not isinstance(names, list):
            raise LetterInvalid(kind, f"{kind} must be a list of addresses")
        if not minimum <= len(names) <= MAX_RECIPIENTS:
            raise LetterInvalid(kind, f"{kind} takes {minimum} to {MAX_RECIPIENTS} addresses")
        for index, name in enumerate(names):
            field = f"{kind}[{index}]"
            if not isinstance(name, str):
                raise LetterInvalid(field, f"{field} must be an address string")
            try:
                address = Address.parse(name, local_node=local_node)
            except InvalidAddress as exc:
                raise LetterInvalid(field, str(exc)) from None
            # One delivery per recipient: named twice, or in both to and cc, counts once.
            found.setdefault(address, Recipient(address, kind, field))
    return tuple(found.values())


# ZWNJ, ZWJ, LRM, RLM: not "printable" to Python, yet part of ordinary Persian
# file names (گزارش‌ها.pdf). Bidi embeddings and overrides (U+202A-U+202E,
# U+2066-U+2069) stay refused: they disguise a file's extension.
_JOINERS_AND_MARKS = frozenset("\u200c\u200d\u200e\u200f")


def _printable_name(filename: str) -> bool:
    return all(c.isprintable() or c in _JOINERS_AND_MARKS for c in filename)


def _attachments(document: Mapping[str, Any], max_bytes: int) -> tuple[AttachmentInput, ...]:
    items = document.get("attachments", [])
    if not isinstance(items, list):
        raise LetterInvalid("attachments", "attachments must be a list")
    if len(items) > MAX_ATTACHMENTS:
        raise LetterInvalid("attachments", f"at most {MAX_ATTACHMENTS} attachments")
    found = []
    for index, item in enumerate(items):
        field = f"attachments[{index}]"
        if not isinstance(item, dict):
            raise LetterInvalid(field, f"{field} must be an object")
        filename = item.get("filename")
        if (
            not isinstance(filename, str)
            or not filename.strip()
            or len(filename) > MAX_FILENAME
            or any(c in filename for c in "/\\\x00")
            or not _printable_name(filename)
        ):
            raise LetterInvalid(
                f"{field}.filename",
                "a file name without / \\ or control "
                f"characters, at most {MAX_FILENAME} characters",
            )
        content_type = item.get("content_type", "application/octet-stream")
        if not isinstance(content_type, str) or not _CONTENT_TYPE.fullmatch(content_type):
            raise LetterInvalid(f"{field}.content_type", "a media type such as application/pdf")
        data = item.get("data")
        if not isinstance(data, str) or len(data) % 4:
            raise LetterInvalid(f"{field}.data", "data must be padded base64 text")
        size = decoded_size(data)
        if size > max_bytes:
            raise LetterInvalid(
                f"{field}.data", f"the attachment is over {max_bytes} bytes", too_large=True
            )
        found.append(AttachmentInput(filename, content_type.lower(), data, size))
    return tuple(found)


def parse_submission(
    document: Mapping[str, Any],
    *,
    local_node: str,
    max_attachment_bytes: int,
    with_hash: bool = True,
) -> Submission:
    """Check a `POST /letters` body; raises `LetterInvalid` naming the field."""
    for field in document:
        if field not in _FIELDS:
            raise LetterInvalid(field, f"{field} is not a field of a letter")
    in_reply_to = document.get("in_reply_to")
    if in_reply_to is not None and (not isinstance(in_reply_to, str) or not is_ulid(in_reply_to)):
        raise LetterInvalid("in_reply_to", "in_reply_to must be a letter id or null")
    return Submission(
        recipients=_recipients(document, local_node),
        subject=_text(document, "subject", required=True, low=1, high=MAX_SUBJECT),
        body=_text(document, "body", required=False, low=0, high=MAX_BODY),
        priority=_choice(document, "priority", Priority),
        classification=_choice(document, "classification", Classification),
        in_reply_to=in_reply_to,
        attachments=_attachments(document, max_attachment_bytes),
        request_hash=request_hash(document) if with_hash else "",
        reply_by=_deadline(document.get("reply_by")),
    )


def _deadline(value: Any) -> float | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise LetterInvalid("reply_by", "reply_by must be a date or time string, or null")
    try:
        return parse_deadline(value)
    except BadDate as exc:
        raise LetterInvalid("reply_by", f"reply_by: {exc}") from None
