"""The status machine of a recipient of a letter, and of the letter as a whole."""

from __future__ import annotations

import enum


class RecipientStatus(enum.StrEnum):
    QUEUED = "queued"  # registered, waiting for the relay worker
    RELAYED = "relayed"  # handed to the next node
    DELIVERED = "delivered"  # in the recipient's inbox
    READ = "read"
    ANSWERED = "answered"  # the recipient replied with in_reply_to
    FAILED = "failed"  # given up, with a reason
    EXPIRED = "expired"  # not delivered within its lifetime


PROGRESS = {
    RecipientStatus.QUEUED: 0,
    RecipientStatus.RELAYED: 1,
    RecipientStatus.DELIVERED: 2,
    RecipientStatus.READ: 3,
    RecipientStatus.ANSWERED: 4,
}
"""How far along each live status is; failed and expired are final, not progress."""

FINAL = frozenset({RecipientStatus.FAILED, RecipientStatus.EXPIRED})


def letter_status(recipients: list[RecipientStatus]) -> str:
    """The least advanced recipient's status; `registered` before any recipient moves.

    A failed or expired recipient counts as least advanced of all, so the
    sender sees at once that something did not get through.
    """
    if not recipients:
        return "registered"
    final = [status for status in recipients if status in FINAL]
    if final:
        return str(RecipientStatus.FAILED if RecipientStatus.FAILED in final else final[0])
    least = min(recipients, key=lambda status: PROGRESS[status])
    return "registered" if least is RecipientStatus.QUEUED else str(least)
