"""Enrollment requests as the plugin keeps them: one JSON record per office.

The records live in the node's database (`api.store("county")`, key
`request:<office>`), so every API process and the operator's commands see
the same ones. The changes below run inside the store's write transaction
(`PluginStore.update`): a request is placed or decided only if the record
still says what the caller saw, whatever else runs at the same time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from govnode.hooks import rfc3339

NAME = "county"
PREFIX = "request:"

PENDING = "pending"
APPROVED = "approved"
REJECTED = "rejected"

Record = dict[str, Any]


def key_of(office: str) -> str:
    return f"{PREFIX}{office}"


class NotPending(Exception):
    """A change found the record in another state than it needs; nothing was written."""

    def __init__(self, office: str, found: Record | None) -> None:
        status = "absent" if found is None else found.get("status")
        super().__init__(f"the request for {office} is {status}")
        self.office = office
        self.found = found


class AlreadyPending(Exception):
    """A new request found one still pending for the same office; nothing was written."""

    def __init__(self, pending: Record) -> None:
        super().__init__(f"a request for {pending['office']} is pending")
        self.pending = pending


def new_request(
    *, office: str, parent: str, csr: str, note: str, requested_by: str, at: float
) -> Record:
    return {
        "office": office,
        "parent": parent,
        "status": PENDING,
        "requested_at": at,
        "requested_by": requested_by,
        "note": note,
        "csr": csr,
    }


def place(new: Record) -> Callable[[Record | None], Record]:
    """Store `new` unless a request for the office is pending (an earlier one that was
    approved or rejected is replaced: the office may be asked for again)."""

    def change(old: Record | None) -> Record:
        if old is not None and old.get("status") == PENDING:
            raise AlreadyPending(old)
        return new

    return change


def decide(
    office: str, status: str, *, only_pending: bool = True, **fields: Any
) -> Callable[[Record | None], Record]:
    """Move a pending request to `status` with `fields` (NotPending otherwise).

    `only_pending=False` is for recording what already happened (a certificate
    issued): it holds even if another decision came in meanwhile.
    """

    def change(old: Record | None) -> Record:
        if old is None or (only_pending and old.get("status") != PENDING):
            raise NotPending(office, old)
        return {**old, **fields, "status": status}

    return change


def request_json(record: Record) -> dict[str, Any]:
    """A request as its parent sees it: no CSR (it sent it), the certificate once issued."""
    answer: dict[str, Any] = {
        "office": record["office"],
        "parent": record["parent"],
        "status": record["status"],
        "requested_at": rfc3339(record["requested_at"]),
        "requested_by": record.get("requested_by"),
        "note": record.get("note", ""),
    }
    if record.get("decided_at") is not None:
        answer["decided_at"] = rfc3339(record["decided_at"])
    if record["status"] == REJECTED:
        answer["reason"] = record.get("reason", "")
    if record["status"] == APPROVED:
        answer["certificate"] = record["certificate"]
        answer["ca"] = record["ca"]
        answer["fingerprint_sha256"] = record["fingerprint_sha256"]
        answer["not_after"] = rfc3339(record["not_after"])
    return answer
