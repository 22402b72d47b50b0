"""Dates as offices write them: Jalali with `/`, Gregorian with `-`, deadlines at day's end."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from govnode.domain.calendar import BadDate, day_start, jalali_day, parse_day, parse_deadline


def test_jalali_and_gregorian_name_the_same_day() -> None:
    assert parse_day("1405/09/04") == date(2026, 11, 25) == parse_day("2026-11-25")
    assert parse_day("1405/01/01") == date(2026, 3, 21)  # Nowruz


@pytest.mark.parametrize(
    "text", ["1405/13/01", "1405/12/31", "2026-02-30", "tomorrow", "1405-09-04", "2026/11/24"]
)
def test_what_is_no_date_is_refused_with_both_forms_shown(text: str) -> None:
    with pytest.raises(BadDate, match="1405/09/03"):
        parse_day(text)


def test_a_day_starts_at_midnight_in_tehran() -> None:
    start = day_start(date(2026, 11, 25))
    assert datetime.fromtimestamp(start, UTC) == datetime(2026, 11, 24, 20, 30, tzinfo=UTC)
    assert jalali_day(start) == "1405/09/04"
    assert jalali_day(start - 1) == "1405/09/03"


def test_a_deadline_day_lasts_until_its_end_and_times_keep_their_zone() -> None:
    end = parse_deadline("1405/09/20")
    assert datetime.fromtimestamp(end, UTC) == datetime(2026, 12, 11, 20, 29, 59, tzinfo=UTC)
    assert parse_deadline("2026-12-11") == end
    assert (
        parse_deadline("2026-12-01T12:00:00Z") == datetime(2026, 12, 1, 12, tzinfo=UTC).timestamp()
    )
    with pytest.raises(BadDate, match="no time zone"):
        parse_deadline("2026-12-01T12:00:00")
