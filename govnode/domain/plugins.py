"""The plain, frozen values that hooks and the facade give plugins (govnode.hooks exports them).

They are copies: a plugin cannot change the node's state by changing them.
Times are POSIX timestamps (seconds, UTC); addresses are `code@node`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

LETTER_EVENTS = ("registered", "relayed", "delivered", "read", "answered", "failed", "expired")
"""The kinds of `LetterEvent`, in the order a letter usually meets them."""


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    """An agency of this node as the directory cache holds it."""

    code: str
    address: str
    name_fa: str
    name_en: str
    kind: str
    phase: int
    parent: str | None
    county: str | None
    status: str  # active (enrolled), pending, suspended


@dataclass(frozen=True, slots=True)
class Caller:
    """Who made an API request: the agency (from its certificate and token) and user."""

    agency: str
    user: str
    address: str


@dataclass(frozen=True, slots=True)
class DraftAttachment:
    filename: str
    content_type: str
    size: int


@dataclass(frozen=True, slots=True)
class Draft:
    """A letter about to be registered, as `govnode_letter_policy` sees it."""

    sender: str  # address of the sending agency
    user: str  # who inside it; `plugin:<name>` for letters a plugin sends
    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str
    body: str
    priority: str
    classification: str
    in_reply_to: str | None
    reply_by: float | None
    attachments: tuple[DraftAttachment, ...]
    # Where each of `recipients` was named in the request (`to[2]`), for a
    # refusal's `field`: an address named twice is one recipient.
    fields: tuple[str, ...] = ()

    @property
    def recipients(self) -> tuple[str, ...]:
        return self.to + self.cc

    def field_of(self, index: int) -> str:
        """The request's field for `recipients[index]`."""
        if index < len(self.fields):
            return self.fields[index]
        return f"to[{index}]" if index < len(self.to) else f"cc[{index - len(self.to)}]"


@dataclass(frozen=True, slots=True)
class LetterEvent:
    """One step of a letter, after it is committed (`govnode_letter_event`).

    `address` is the recipient the step concerns (None for `registered`).
    `id` grows with every event: a plugin may use it to skip one seen before
    (events are handed on at least once; after a crash, some again).
    """

    id: int
    kind: str  # one of LETTER_EVENTS
    letter_id: str
    number: str
    sender: str
    address: str | None
    node: str  # the node where the step happened
    at: float
    detail: str | None


@dataclass(frozen=True, slots=True)
class RecipientRecord:
    address: str
    kind: str  # to | cc
    status: str  # queued, relayed, delivered, read, answered, failed, expired
    reason: str | None
    delivered_at: float | None
    read_at: float | None
    answered_at: float | None


@dataclass(frozen=True, slots=True)
class LetterRecord:
    """What plugins may see of a letter: who, when, where it stands; not its body
    or attachments (those are for the agencies it is addressed to)."""

    id: str
    number: str
    sender: str
    user: str
    subject: str
    priority: str
    classification: str
    in_reply_to: str | None
    reply_by: float | None
    created_at: float
    recipients: tuple[RecipientRecord, ...]


@dataclass(frozen=True, slots=True)
class LetterQuery:
    """Which letters `NodeApi.letters` lists: all filters must hold.

    `sender`/`recipient` are addresses; `since`/`until` bound `created_at`
    (since inclusive, until exclusive).
    """

    sender: str | None = None
    senders: tuple[str, ...] = ()  # any of these (when given)
    recipient: str | None = None
    since: float | None = None
    until: float | None = None
    outside_node: bool = False  # only letters with a recipient at another node


@dataclass(frozen=True, slots=True)
class LetterPage:
    letters: tuple[LetterRecord, ...]
    next: str | None  # give it as `after` for the next page; None: that was all


@dataclass(frozen=True, slots=True)
class Registered:
    """A letter a plugin sent (`NodeApi.send_letter`)."""

    id: str
    number: str


@dataclass(frozen=True, slots=True)
class Enrollment:
    """A certificate `NodeApi.enroll` issued; `key_pem` only when the node made the key."""

    code: str
    cert_pem: bytes
    key_pem: bytes | None
    ca_pem: bytes
    fingerprint_sha256: str
    not_after: float


@dataclass(frozen=True, slots=True)
class PluginRequest:
    """An API request to a plugin route, after authentication."""

    caller: Caller
    method: str
    path: str  # the part after /api/v1/x/<plugin>/
    params: Mapping[str, str]  # `{name}` parts of the route's path
    query: Mapping[str, tuple[str, ...]]
    body: Any  # the JSON body (None when there was none)

    def arg(self, name: str) -> str | None:
        """The first value of query parameter `name`."""
        values = self.query.get(name)
        return values[0] if values else None


@dataclass(frozen=True, slots=True)
class Reply:
    """A plugin route's answer: JSON, or raw bytes with their type."""

    body: Any = None
    status: int = 200
    content_type: str | None = None  # set for bytes bodies (text/csv, image/png)
    headers: Mapping[str, str] = field(default_factory=dict)


Handler = Callable[[PluginRequest], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Route:
    """An extra API route: `path` under `/api/v1/x/<plugin>/`, `{name}` parts allowed.

    The handler gets a `PluginRequest` and returns a `Reply` or a JSON value
    (200); raising `Refused` answers with that error.
    """

    method: str
    path: str
    handler: Handler


@dataclass(frozen=True, slots=True)
class StatusReport:
    """A plugin's part of `govnode status`: `lines` for the terminal (under a
    heading with the plugin's name), `facts` (JSON values) for `--json`."""

    lines: Sequence[str]
    facts: Mapping[str, object]


@dataclass(frozen=True, slots=True)
class PluginInfo:
    name: str
    version: str
    distribution: str
    hooks: Sequence[str]
