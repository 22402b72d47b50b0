"""The figures of a report, computed from letters and the directory: pure, no I/O.

Everything here takes plain values (`LetterRecord`, `DirectoryEntry`, a
`Period`, the `Assumptions`, the moment the report is made) and returns plain
values, so each figure can be checked by hand against a known set of letters.
README.md says in words what each figure means; the formulas are here.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from govnode.hooks import (
    BadDate,
    DirectoryEntry,
    LetterRecord,
    RecipientRecord,
    day_start,
    parse_day,
)

TEHRAN = ZoneInfo("Asia/Tehran")
DAY = 86400.0
By = Literal["agency", "phase"]


# -- the period ----------------------------------------------------------------------


class PeriodError(ValueError):
    """A period bound that is no date, or a period that ends before it starts.

    `bound` is "from" or "to" (the option or query parameter at fault)."""

    def __init__(self, bound: str, message: str) -> None:
        super().__init__(message)
        self.bound = bound
        self.message = message


@dataclass(frozen=True, slots=True)
class Period:
    """Whole days in Tehran, `first` to `last` inclusive: [start, end) as timestamps."""

    first: date
    last: date

    @property
    def start(self) -> float:
        """The first second of `first` in Tehran."""
        return day_start(self.first)

    @property
    def end(self) -> float:
        """The first second after `last` (exclusive), so `last` counts whole."""
        return day_start(self.last + timedelta(days=1))

    def holds(self, moment: float) -> bool:
        return self.start <= moment < self.end


def parse_bound(bound: str, text: str) -> date:
    """A bound of a period, Jalali or Gregorian; PeriodError naming it ("from", "to")."""
    try:
        return parse_day(text)
    except BadDate as exc:
        raise PeriodError(bound, str(exc)) from None


def period_of(first: str, last: str) -> Period:
    """The period from day `first` to day `last`, each Jalali or Gregorian."""
    start, end = parse_bound("from", first), parse_bound("to", last)
    return checked_period(start, end)


def checked_period(first: date, last: date) -> Period:
    if first > last:
        raise PeriodError(
            "from",
            f"from ({first.isoformat()}) is after to ({last.isoformat()}): "
            "the period must start before it ends",
        )
    return Period(first, last)


def tehran_day(moment: float) -> date:
    """The calendar day of `moment` in Tehran."""
    return datetime.fromtimestamp(moment, UTC).astimezone(TEHRAN).date()


# -- the assumptions -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Assumptions:
    """What a letter would have cost on paper (`[plugins.reports]`; README.md).

    A letter sent on paper is printed once per recipient that receives it (to
    and cc) plus `archive_copies` for the sender's own files; every copy has
    `sheets_per_letter` sheets and `sheets_per_attachment` per attachment; and
    each recipient copy is carried by courier (`courier_trips_per_recipient`
    trips of `minutes_per_trip` minutes each).
    """

    sheets_per_letter: float = 1.0
    sheets_per_attachment: float = 2.0
    archive_copies: int = 1
    courier_trips_per_recipient: float = 1.0
    minutes_per_trip: float = 45.0


# -- percentiles ---------------------------------------------------------------------


def nearest_rank(values: Sequence[float], percent: int) -> float | None:
    """The nearest-rank percentile: the smallest value with at least `percent`% of the
    values at or below it, i.e. sorted(values)[ceil(percent/100 * n) - 1].

    Always one of the values (no interpolation), so it is exact to check by hand;
    the median is `percent=50` (the lower middle value when n is even).
    """
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(percent * len(ordered) / 100))
    return ordered[rank - 1]


@dataclass(frozen=True, slots=True)
class Times:
    """Durations (seconds) of a group's recipient copies: how many, median and p90."""

    count: int
    median: float | None
    p90: float | None

    @classmethod
    def of(cls, values: Sequence[float]) -> Times:
        return cls(len(values), nearest_rank(values, 50), nearest_rank(values, 90))


# -- the figures of one group ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Figures:
    """One row of a report: an agency, a phase, or all of them.

    Sending side (the group's agencies sent the letter): `sent`, `sheets_saved`,
    `courier_trips_saved`, `courier_hours_saved`.
    Receiving side (a recipient copy of the group's agencies): `received`,
    `delivery`, `reading`, `replies_due`, `answered_on_time`, `answered_late`,
    `overdue`.
    """

    sent: int = 0
    received: int = 0
    delivery: Times = Times(0, None, None)
    reading: Times = Times(0, None, None)
    replies_due: int = 0
    answered_on_time: int = 0
    answered_late: int = 0
    overdue: int = 0
    sheets_saved: float = 0.0
    courier_trips_saved: float = 0.0
    courier_hours_saved: float = 0.0


@dataclass(frozen=True, slots=True)
class Row:
    """A row and who it is about: `kind` agency (key = code), phase (key = "1"...) or total."""

    kind: Literal["agency", "phase", "total"]
    key: str
    phase: int | None
    name_fa: str
    name_en: str
    figures: Figures


@dataclass(frozen=True, slots=True)
class Summary:
    period: Period
    as_of: float  # reply deadlines before this moment count as passed
    by: By
    rows: tuple[Row, ...]
    total: Row | None
    assumptions: Assumptions
    agency: str | None = None  # the report was narrowed to this agency
    phase: int | None = None  # or to this phase's agencies


@dataclass
class _Tally:
    """What a group gathers while the letters go by (then frozen into `Figures`)."""

    sent: int = 0
    received: set[str] = field(default_factory=set)
    delivery: list[float] = field(default_factory=list)
    reading: list[float] = field(default_factory=list)
    replies_due: int = 0
    on_time: int = 0
    late: int = 0
    overdue: int = 0
    sheets: float = 0.0
    trips: float = 0.0

    def figures(self, assumptions: Assumptions) -> Figures:
        return Figures(
            sent=self.sent,
            received=len(self.received),
            delivery=Times.of(self.delivery),
            reading=Times.of(self.reading),
            replies_due=self.replies_due,
            answered_on_time=self.on_time,
            answered_late=self.late,
            overdue=self.overdue,
            sheets_saved=self.sheets,
            courier_trips_saved=self.trips,
            courier_hours_saved=self.trips * assumptions.minutes_per_trip / 60,
        )


def paper_saved(
    letter: LetterRecord, attachments: int, assumptions: Assumptions
) -> tuple[float, float]:
    """(sheets, courier trips) the letter would have cost on paper.

    Only recipient copies actually delivered count (a letter that never arrived
    replaced no paper one):
        copies = delivered recipients (to and cc) + archive_copies  (0 if none delivered)
        sheets = copies * (sheets_per_letter + sheets_per_attachment * attachments)
        trips  = delivered recipients * courier_trips_per_recipient
    """
    delivered = sum(1 for r in letter.recipients if r.delivered_at is not None)
    if delivered == 0:
        return 0.0, 0.0
    copies = delivered + assumptions.archive_copies
    per_copy = assumptions.sheets_per_letter + assumptions.sheets_per_attachment * attachments
    return copies * per_copy, delivered * assumptions.courier_trips_per_recipient


def answer_state(
    letter: LetterRecord, recipient: RecipientRecord, as_of: float
) -> Literal["none", "on_time", "late", "overdue"]:
    """Where a recipient copy stands against the letter's reply deadline at `as_of`.

    Only copies that owe an answer count: a `to` recipient (cc is for
    information), delivered, of a letter with `reply_by` that has passed
    (reply_by < as_of). Answered at or before reply_by: on time; after it:
    late; not answered by `as_of`: overdue.
    """
    deadline = letter.reply_by
    if (
        deadline is None
        or recipient.kind != "to"
        or recipient.delivered_at is None
        or deadline >= as_of
    ):
        return "none"
    answered = recipient.answered_at
    if answered is None or answered > as_of:
        return "overdue"
    return "on_time" if answered <= deadline else "late"


def _since_created(letter: LetterRecord, moment: float | None) -> float | None:
    # Clocks of two nodes may disagree by a little: never a negative duration.
    return None if moment is None else max(0.0, moment - letter.created_at)


def summarize(
    letters: Iterable[LetterRecord],
    agencies: Sequence[DirectoryEntry],
    period: Period,
    assumptions: Assumptions,
    *,
    as_of: float,
    by: By = "agency",
    agency: str | None = None,
    phase: int | None = None,
    attachments: Mapping[str, int] | None = None,
) -> Summary:
    """The report of `period`: a row per agency (with any letter) or per phase, and a total.

    Letters count when registered in the period (created_at in [start, end)).
    Only this node's agencies (`agencies`) are counted, narrowed to `agency`
    (a code) or `phase` when given. `attachments`: letter id → attachments (0
    when missing).
    """
    counted = attachments or {}
    selected = [
        a
        for a in agencies
        if (agency is None or a.code == agency) and (phase is None or a.phase == phase)
    ]
    by_address = {a.address: a for a in selected}

    def key_of(entry: DirectoryEntry) -> str:
        return entry.code if by == "agency" else str(entry.phase)

    tallies: dict[str, _Tally] = defaultdict(_Tally)
    total = _Tally()
    for letter in letters:
        if not period.holds(letter.created_at):
            continue
        sender = by_address.get(letter.sender)
        if sender is not None:
            sheets, trips = paper_saved(letter, counted.get(letter.id, 0), assumptions)
            for tally in (tallies[key_of(sender)], total):
                tally.sent += 1
                tally.sheets += sheets
                tally.trips += trips
        for recipient in letter.recipients:
            receiver = by_address.get(recipient.address)
            if receiver is None:
                continue
            delivery = _since_created(letter, recipient.delivered_at)
            reading = _since_created(letter, recipient.read_at)
            state = answer_state(letter, recipient, as_of)
            for tally in (tallies[key_of(receiver)], total):
                tally.received.add(letter.id)
                if delivery is not None:
                    tally.delivery.append(delivery)
                if reading is not None:
                    tally.reading.append(reading)
                if state != "none":
                    tally.replies_due += 1
                    tally.on_time += state == "on_time"
                    tally.late += state == "late"
                    tally.overdue += state == "overdue"

    rows: list[Row] = []
    if by == "agency":
        for entry in selected:
            if entry.code in tallies or entry.code == agency:
                rows.append(
                    Row(
                        "agency",
                        entry.code,
                        entry.phase,
                        entry.name_fa,
                        entry.name_en,
                        tallies[entry.code].figures(assumptions),
                    )
                )
    else:
        for number in sorted({a.phase for a in selected}):
            figures = tallies[str(number)].figures(assumptions)
            rows.append(Row("phase", str(number), number, "", "", figures))
    single = agency is not None or (by == "phase" and phase is not None)
    total_row = None if single else Row("total", "all", phase, "", "", total.figures(assumptions))
    return Summary(period, as_of, by, tuple(rows), total_row, assumptions, agency, phase)


# -- letters waiting for an answer -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Overdue:
    """A recipient copy whose reply deadline passed without an answer."""

    letter_id: str
    number: str
    sender: str  # address
    recipient: str  # address
    reply_by: float
    days_overdue: int  # calendar days in Tehran from the deadline's day to as_of's


def overdue_letters(
    letters: Iterable[LetterRecord], *, as_of: float, address: str | None = None
) -> list[Overdue]:
    """Every overdue copy (`answer_state` says so), most overdue first; only those sent
    or owed by `address` when given."""
    found = [
        Overdue(
            letter.id,
            letter.number,
            letter.sender,
            recipient.address,
            letter.reply_by,
            (tehran_day(as_of) - tehran_day(letter.reply_by)).days,
        )
        for letter in letters
        if letter.reply_by is not None
        for recipient in letter.recipients
        if answer_state(letter, recipient, as_of) == "overdue"
        and (address is None or address in (letter.sender, recipient.address))
    ]
    return sorted(found, key=lambda o: (o.reply_by, o.number, o.recipient))


# -- what the charts draw ----------------------------------------------------------------

TIME_BINS: tuple[tuple[float, str, str], ...] = (
    (60.0, "< 1 min", "کمتر از 1 دقیقه"),
    (600.0, "1-10 min", "1 تا 10 دقیقه"),
    (3600.0, "10-60 min", "10 تا 60 دقیقه"),
    (4 * 3600.0, "1-4 h", "1 تا 4 ساعت"),
    (DAY, "4-24 h", "4 تا 24 ساعت"),
    (3 * DAY, "1-3 days", "1 تا 3 روز"),
    (7 * DAY, "3-7 days", "3 تا 7 روز"),
    (math.inf, "> 7 days", "بیش از 7 روز"),
)
"""Upper bounds (exclusive) of the bars of the time distribution, with their labels."""


@dataclass(frozen=True, slots=True)
class ChartData:
    """What `charts.render` draws, computed here so it can be checked without pixels."""

    period: Period
    weeks: tuple[date, ...]  # the Saturday each week starts on (the Iranian week)
    week_days: tuple[int, ...]  # days of each week inside the period (7 but at its ends)
    sent_per_week: Mapping[int, tuple[int, ...]]  # phase → letters sent each week
    delivery_bins: tuple[int, ...]  # recipient copies per TIME_BINS bar
    reading_bins: tuple[int, ...]
    summary: Summary  # by phase: medians, p90, sheets and trips per phase


def week_start(day: date) -> date:
    """The Saturday on or before `day` (weeks in Iran run Saturday to Friday)."""
    return day - timedelta(days=(day.weekday() - 5) % 7)


def _bins(values: Iterable[float]) -> tuple[int, ...]:
    counts = [0] * len(TIME_BINS)
    for value in values:
        counts[next(i for i, (upper, _, _) in enumerate(TIME_BINS) if value < upper)] += 1
    return tuple(counts)


def chart_data(
    letters: Sequence[LetterRecord],
    agencies: Sequence[DirectoryEntry],
    period: Period,
    assumptions: Assumptions,
    *,
    as_of: float,
    phase: int | None = None,
    attachments: Mapping[str, int] | None = None,
) -> ChartData:
    """Letters sent per week and phase, the time distributions, and the per-phase summary."""
    selected = {a.address: a for a in agencies if phase is None or a.phase == phase}
    first = week_start(period.first)
    weeks = tuple(first + timedelta(days=7 * i) for i in range((period.last - first).days // 7 + 1))
    phases = sorted({a.phase for a in selected.values()})
    sent: dict[int, list[int]] = {p: [0] * len(weeks) for p in phases}
    delivery: list[float] = []
    reading: list[float] = []
    for letter in letters:
        if not period.holds(letter.created_at):
            continue
        sender = selected.get(letter.sender)
        if sender is not None:
            sent[sender.phase][(tehran_day(letter.created_at) - first).days // 7] += 1
        for recipient in letter.recipients:
            if recipient.address not in selected:
                continue
            if (took := _since_created(letter, recipient.delivered_at)) is not None:
                delivery.append(took)
            if (took := _since_created(letter, recipient.read_at)) is not None:
                reading.append(took)
    summary = summarize(
        letters,
        agencies,
        period,
        assumptions,
        as_of=as_of,
        by="phase",
        phase=phase,
        attachments=attachments,
    )
    inside = [
        (min(week + timedelta(days=6), period.last) - max(week, period.first)).days + 1
        for week in weeks
    ]
    return ChartData(
        period=period,
        weeks=weeks,
        week_days=tuple(inside),
        sent_per_week={p: tuple(counts) for p, counts in sent.items()},
        delivery_bins=_bins(delivery),
        reading_bins=_bins(reading),
        summary=summary,
    )
