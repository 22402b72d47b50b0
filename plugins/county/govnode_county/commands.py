"""`govnode county pending|approve|reject`: the operator's side of enrollment requests.

Each runs with a `NodeApi` of the node's home (its database and directory
cache); the running node sees the outcome at once, through the database.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from govnode.hooks import CommandError, NodeApi, operator, rfc3339
from govnode_county.csr import key_sha256
from govnode_county.records import (
    APPROVED,
    NAME,
    PENDING,
    PREFIX,
    REJECTED,
    NotPending,
    Record,
    decide,
    key_of,
)

USAGE = 2


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    county = commands.add_parser(
        NAME, help="county offices' enrollment requests from their parent agencies"
    )
    actions = county.add_subparsers(dest="county_command", required=True, metavar="ACTION")
    pending = actions.add_parser("pending", help="requests waiting for a decision")
    pending.add_argument("--json", action="store_true", help="JSON instead of a table")
    pending.set_defaults(run=pending_requests)
    approve = actions.add_parser(
        "approve", help="enroll the office for its parent's key; the parent fetches the certificate"
    )
    approve.add_argument("office", help="the county office's code")
    approve.set_defaults(run=approve_request)
    reject = actions.add_parser("reject", help="refuse a request; the parent sees the reason")
    reject.add_argument("office", help="the county office's code")
    reject.add_argument("--reason", required=True, help="why (shown to the parent agency)")
    reject.set_defaults(run=reject_request)


def _not_pending(office: str, record: Record | None) -> CommandError:
    if record is None:
        return CommandError(
            f"no enrollment request for {office} (govnode county pending lists those waiting)"
        )
    when = record.get("decided_at")
    at = f" at {rfc3339(when)}" if when is not None else ""
    return CommandError(f"the request for {office} is not pending: it was {record['status']}{at}")


async def pending_requests(api: NodeApi, args: argparse.Namespace) -> int:
    """List pending requests with what the operator checks before approving."""
    rows: list[dict[str, Any]] = []
    for _, record in await api.store(NAME).items(PREFIX):
        if record.get("status") != PENDING:
            continue
        entry = await api.agency(record["office"])
        rows.append(
            {
                "office": record["office"],
                "parent": record["parent"],
                "requested_at": rfc3339(record["requested_at"]),
                "requested_by": record.get("requested_by"),
                "note": record.get("note", ""),
                "office_status": entry.status if entry else "unknown",
                "key_sha256": key_sha256(record["csr"]),
            }
        )
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    if not rows:
        print("no enrollment requests pending")
        return 0
    header = ("OFFICE", "PARENT", "REQUESTED", "BY", "OFFICE STATUS", "KEY SHA-256", "NOTE")
    table = [header] + [
        (
            r["office"],
            r["parent"],
            r["requested_at"],
            str(r["requested_by"]),
            r["office_status"],
            r["key_sha256"][:16],
            r["note"],
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    for row in table:
        cells = "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False))
        print(f"{cells}  {row[-1]}".rstrip())
    return 0


async def approve_request(api: NodeApi, args: argparse.Namespace) -> int:
    """Enroll the office for the parent's key and keep the certificate for the parent."""
    office = args.office.strip().lower()
    store = api.store(NAME)
    record = await store.get(key_of(office))
    if record is None or record.get("status") != PENDING:
        raise _not_pending(office, record)
    entry = await api.agency(office)
    if entry is None:
        raise CommandError(
            f"{office} is no longer in the directory of node {api.node_id}; "
            f"reject the request (govnode county reject {office} --reason ...)"
        )
    if entry.parent != record["parent"]:
        raise CommandError(
            f"{office}'s parent is now {entry.parent}, not {record['parent']} who asked; "
            f"reject the request (govnode county reject {office} --reason ...)"
        )
    if entry.status == "active":
        raise CommandError(
            f"{office} is already enrolled (not through this request); reject the request "
            f"so that {record['parent']} knows (govnode county reject {office} --reason ...)"
        )
    by = operator()
    enrollment = await api.enroll(office, by=by, csr_pem=record["csr"].encode("ascii"))
    # The certificate exists now: record it even if a rejection raced in meanwhile.
    await store.update(
        key_of(office),
        decide(
            office,
            APPROVED,
            only_pending=False,
            decided_at=api.now(),
            decided_by=by,
            reason=None,
            certificate=enrollment.cert_pem.decode("ascii"),
            ca=enrollment.ca_pem.decode("ascii"),
            fingerprint_sha256=enrollment.fingerprint_sha256,
            not_after=enrollment.not_after,
        ),
    )
    await api.audit(
        "county.approved",
        actor=by,
        subject=office,
        detail={"parent": record["parent"], "sha256": enrollment.fingerprint_sha256},
    )
    print(f"enrolled {entry.address} for the key of {record['parent']}'s request")
    print(f"certificate SHA-256 {enrollment.fingerprint_sha256}")
    print(f"valid until {rfc3339(enrollment.not_after)}")
    print(
        f"{record['parent']}@{api.node_id} can fetch it now: GET /api/v1/x/{NAME}/requests/{office}"
    )
    return 0


async def reject_request(api: NodeApi, args: argparse.Namespace) -> int:
    """Refuse a pending request; the parent reads the reason and may ask again."""
    office = args.office.strip().lower()
    reason = args.reason.strip()
    if not reason:
        raise CommandError("--reason must say why: the parent agency reads it", USAGE)
    by = operator()
    try:
        record = await api.store(NAME).update(
            key_of(office),
            decide(office, REJECTED, decided_at=api.now(), decided_by=by, reason=reason),
        )
    except NotPending as exc:
        raise _not_pending(office, exc.found) from None
    await api.audit(
        "county.rejected",
        actor=by,
        subject=office,
        detail={"parent": record["parent"], "reason": reason},
    )
    print(f"rejected the request of {record['parent']} to enroll {office}: {reason}")
    return 0
