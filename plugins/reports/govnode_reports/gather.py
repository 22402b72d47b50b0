"""What a report reads from the node, through `NodeApi` only: letters, the directory,
attachment counts. Everything is awaited on the node's database threads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from govnode.hooks import DirectoryEntry, LetterQuery, LetterRecord, NodeApi
from govnode_reports.figures import Assumptions, Period


@dataclass(frozen=True, slots=True)
class Material:
    """The inputs of `figures.summarize` / `chart_data` for one period."""

    letters: tuple[LetterRecord, ...]
    agencies: tuple[DirectoryEntry, ...]
    attachments: dict[str, int]  # letter id → attachments (letters sent by our agencies)
    as_of: float


async def attachment_counts(
    api: NodeApi, letters: Sequence[LetterRecord], senders: set[str]
) -> dict[str, int]:
    """Attachments of the letters `senders` (addresses) sent, as their sender sees them.

    `LetterRecord` does not carry its attachments, so each letter is read
    through `api.letter_for`, one after the other (under 1 ms a letter on
    SQLite: 5,000 letters take 3 to 4 s; reading several at once was no faster).
    Only letters that reached someone count towards paper: only those are read.
    """
    counts: dict[str, int] = {}
    for letter in letters:
        if letter.sender not in senders:
            continue
        if all(r.delivered_at is None for r in letter.recipients):
            continue
        view = await api.letter_for(letter.sender.partition("@")[0], letter.id)
        counts[letter.id] = 0 if view is None else len(view.attachments)
    return counts


async def letters_between(
    api: NodeApi, since: float | None, until: float | None, *, agency: str | None = None
) -> tuple[LetterRecord, ...]:
    """Letters registered in [since, until) (None: unbounded); only those sent by or to
    `agency` (a code of this node) when given, each once."""
    if agency is None:
        return tuple(await api.letters_all(LetterQuery(since=since, until=until)))
    address = f"{agency}@{api.node_id}"
    sent = await api.letters_all(LetterQuery(sender=address, since=since, until=until))
    received = await api.letters_all(LetterQuery(recipient=address, since=since, until=until))
    seen = {letter.id for letter in sent}
    return (*sent, *(letter for letter in received if letter.id not in seen))


async def gather(
    api: NodeApi, period: Period, assumptions: Assumptions, *, agency: str | None = None
) -> Material:
    """Letters registered in `period` (all of them, or those sent to or by `agency`),
    the directory, and attachment counts when attachments are worth paper."""
    agencies = tuple(await api.agencies())
    letters = await letters_between(api, period.start, period.end, agency=agency)
    counts: dict[str, int] = {}
    if assumptions.sheets_per_attachment:
        local = {a.address for a in agencies if agency is None or a.code == agency}
        counts = await attachment_counts(api, letters, local)
    return Material(letters, agencies, counts, api.now())
