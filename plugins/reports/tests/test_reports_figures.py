"""The pure parts of the reports: percentiles, periods, the paper estimate, deadlines,
the chart data, how durations and days read, and the settings' defaults and checks."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from govnode_reports import charts, figures, text
from govnode_reports.figures import Assumptions, Period, PeriodError
from govnode_reports.settings import read_assumptions

from govnode.config import ConfigError
from govnode.hooks import (
    DirectoryEntry,
    LetterRecord,
    PluginSettings,
    RecipientRecord,
    day_start,
)

H = 3600.0
DAY = 86400.0
START = day_start(date(2026, 3, 21))  # 1405/01/01 00:00 Tehran, a Saturday


def entry(code: str, phase: int) -> DirectoryEntry:
    return DirectoryEntry(
        code=code,
        address=f"{code}@kb",
        name_fa=code,
        name_en=code,
        kind="directorate",
        phase=phase,
        parent=None,
        county=None,
        status="active",
    )


def copy(
    code: str, *, kind: str = "to", delivered: float | None = None, **times: float | None
) -> RecipientRecord:
    return RecipientRecord(
        address=f"{code}@kb",
        kind=kind,
        status="delivered",
        reason=None,
        delivered_at=delivered,
        read_at=times.get("read"),
        answered_at=times.get("answered"),
    )


def letter(
    ident: str, sender: str, created: float, *copies: RecipientRecord, **more: Any
) -> LetterRecord:
    return LetterRecord(
        id=ident,
        number=f"KB-1405-{ident}",
        sender=f"{sender}@kb",
        user="u",
        subject="s",
        priority="normal",
        classification="normal",
        in_reply_to=None,
        reply_by=more.get("reply_by"),
        created_at=created,
        recipients=copies,
    )


@pytest.mark.parametrize(
    ("values", "median", "p90"),
    [
        ([], None, None),
        ([7.0], 7.0, 7.0),
        ([2.0, 1.0], 1.0, 2.0),  # even n: the lower middle value, not the mean
        ([5.0, 1.0, 3.0], 3.0, 5.0),
        ([float(v) for v in range(1, 11)], 5.0, 9.0),  # ceil(0.9 * 10) = 9th
        ([float(v) for v in range(1, 12)], 6.0, 10.0),  # ceil(9.9) = 10th
    ],
)
def test_nearest_rank(values: list[float], median: float | None, p90: float | None) -> None:
    assert figures.nearest_rank(values, 50) == median
    assert figures.nearest_rank(values, 90) == p90


def test_periods_are_whole_tehran_days() -> None:
    period = figures.period_of("1405/01/01", " 2026-03-21 ")
    assert period == Period(date(2026, 3, 21), date(2026, 3, 21))
    assert (period.start, period.end) == (START, START + DAY)
    assert period.holds(START)
    assert period.holds(START + DAY - 1)
    assert not period.holds(START + DAY)
    assert not period.holds(START - 1)


@pytest.mark.parametrize(
    ("first", "last", "bound", "message"),
    [
        ("1405/13/40", "1405/01/02", "from", "'1405/13/40' is not a date"),
        ("1405/01/01", "2026-02-30", "to", "'2026-02-30' is not a date"),
        ("1405-01-01", "1405/01/02", "from", "'1405-01-01' mixes the calendars' forms"),
        ("1405/01/01", "2026/01/01", "to", "'2026/01/01' mixes the calendars' forms"),
        ("1405/01/02", "1405/01/01", "from", "from (2026-03-22) is after to (2026-03-21)"),
    ],
)
def test_bad_periods_name_the_bound(first: str, last: str, bound: str, message: str) -> None:
    with pytest.raises(PeriodError) as raised:
        figures.period_of(first, last)
    assert raised.value.bound == bound
    assert message in raised.value.message


def test_paper_counts_only_delivered_copies() -> None:
    assumptions = Assumptions(sheets_per_letter=1.5, sheets_per_attachment=2, archive_copies=2)
    sent = letter(
        "1",
        "edu",
        START,
        copy("a", delivered=START),
        copy("b", kind="cc", delivered=START),
        copy("c"),
    )
    # (2 delivered + 2 archive) * (1.5 + 2 * 3 attachments) sheets; 2 trips
    assert figures.paper_saved(sent, 3, assumptions) == (30.0, 2.0)
    lost = letter("2", "edu", START, copy("a"))
    assert figures.paper_saved(lost, 3, assumptions) == (0.0, 0.0)


def test_answer_states_against_the_deadline() -> None:
    deadline = START + 2 * DAY

    def state(recipient: RecipientRecord, as_of: float, reply_by: float | None = deadline) -> str:
        return figures.answer_state(
            letter("1", "edu", START, recipient, reply_by=reply_by), recipient, as_of
        )

    later = deadline + DAY
    assert state(copy("a", delivered=START), later) == "overdue"
    assert state(copy("a", delivered=START, answered=deadline), later) == "on_time"
    assert state(copy("a", delivered=START, answered=deadline + 1), later) == "late"
    # As of a moment before the answer came, it was still overdue.
    assert state(copy("a", delivered=START, answered=deadline + 5), deadline + 1) == "overdue"
    assert state(copy("a", delivered=START), deadline) == "none"  # not passed yet
    assert state(copy("a", kind="cc", delivered=START), later) == "none"  # cc owes nothing
    assert state(copy("a"), later) == "none"  # never delivered
    assert state(copy("a", delivered=START), later, reply_by=None) == "none"


def test_clock_skew_never_makes_a_negative_time() -> None:
    early = letter("1", "edu", START + 10, copy("a", delivered=START, read=START + 5))
    summary = figures.summarize(
        [early],
        [entry("edu", 1), entry("a", 1)],
        Period(date(2026, 3, 21), date(2026, 3, 21)),
        Assumptions(),
        as_of=START,
    )
    (total,) = [row.figures for row in summary.rows if row.key == "a"]
    assert (total.delivery.median, total.reading.median) == (0.0, 0.0)


def test_chart_data_weeks_and_time_bars() -> None:
    agencies = [entry("edu", 1), entry("ab", 2), entry("far", 3)]
    # 1405/01/01 is a Saturday; 1405/01/10 (2026-03-30) a Monday in the second week.
    letters = [
        letter("1", "edu", START + 9 * H, copy("ab", delivered=START + 9 * H, read=START + 11 * H)),
        letter(
            "2",
            "ab",
            START + 9 * DAY,
            copy("edu", delivered=START + 9 * DAY + 120, read=START + 13 * DAY),
        ),
        letter("3", "far", START + 10 * DAY, copy("edu", delivered=START + 10 * DAY + 30)),
    ]
    period = figures.period_of("1405/01/01", "1405/01/10")
    data = figures.chart_data(letters, agencies, period, Assumptions(), as_of=START + 20 * DAY)
    assert data.weeks == (date(2026, 3, 21), date(2026, 3, 28))
    assert data.week_days == (7, 3)  # the period ends on the Monday
    assert data.sent_per_week == {1: (1, 0), 2: (0, 1), 3: (0, 0)}  # letter 3: after the period
    # delivery: 0 s (L1), 2 min (L2); reading: 2 h (L1), 4 days (L2)
    assert data.delivery_bins == (1, 1, 0, 0, 0, 0, 0, 0)
    assert data.reading_bins == (0, 0, 0, 1, 0, 0, 1, 0)
    assert [row.key for row in data.summary.rows] == ["1", "2", "3"]
    assert figures.week_start(date(2026, 3, 27)) == date(2026, 3, 21)  # Friday → Saturday before


@pytest.mark.parametrize(
    ("seconds", "en", "fa"),
    [
        (None, "-", "-"),
        (0.4, "0s", "0 ثانیه"),
        (59.6, "1m", "1 دقیقه"),
        (3599.0, "59m", "59 دقیقه"),
        (3 * H + 5 * 60, "3h 05m", "3 ساعت 05 دقیقه"),
        (2 * DAY + 4 * H + 59 * 60, "2d 4h", "2 روز 4 ساعت"),
    ],
)
def test_durations_read_in_both_languages(seconds: float | None, en: str, fa: str) -> None:
    assert text.duration_text(seconds, "en") == en
    assert text.duration_text(seconds, "fa") == fa


def test_days_read_in_both_calendars() -> None:
    assert text.day_text(date(2026, 3, 21), "en") == "2026-03-21 (1405/01/01)"
    assert text.day_text(date(2026, 3, 21), "fa") == "1405/01/01"
    assert text.moment_text(START + 9.5 * H, "en") == "2026-03-21 09:30 (1405/01/01)"
    assert text.moment_text(START + 9.5 * H, "fa") == "1405/01/01 09:30"


def test_persian_chart_labels_are_shaped_only_when_matplotlib_cannot() -> None:
    phrase = "فاز 1"
    assert charts.shaped(phrase, "fa", lays_out=True) == phrase
    shaped = charts.shaped(phrase, "fa", lays_out=False)
    # Presentation forms (joined letters), in visual order: the number comes first.
    assert shaped.startswith("1 ")
    assert all(0xFE70 <= ord(ch) <= 0xFEFF for ch in shaped[2:])
    assert charts.shaped("phase 1", "en", lays_out=False) == "phase 1"


def settings(table: dict[str, Any]) -> PluginSettings:
    return PluginSettings(Path("govnode.toml"), "plugins.reports", table)


def test_settings_default_and_checked() -> None:
    assert read_assumptions(settings({})) == Assumptions(1.0, 2.0, 1, 1.0, 45.0)
    assert read_assumptions(settings({"sheets_per_letter": 1.5, "minutes_per_trip": 20})) == (
        Assumptions(1.5, 2.0, 1, 1.0, 20.0)
    )
    for table, message in (
        ({"sheets_per_attachment": True}, "sheets_per_attachment: must be a number, not bool"),
        ({"courier_trips_per_recipient": 11}, "must be between 0 and 10, not 11"),
        ({"archive_copies": -1}, "archive_copies: must be between 0 and 20, not -1"),
    ):
        with pytest.raises(ConfigError, match=r"^govnode.toml: plugins\.reports\.") as raised:
            read_assumptions(settings(table))
        assert message in str(raised.value)
