"""The Jalali calendar as Iran's offices use it: local time in Tehran, jdatetime's arithmetic.

The registration year of a letter is the Jalali year at the moment it was
registered, in Tehran; it turns at local midnight of Farvardin 1 (Nowruz).
"""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import jdatetime

TEHRAN = ZoneInfo("Asia/Tehran")


def _jalali(seconds: float) -> jdatetime.datetime:
    local = datetime.fromtimestamp(seconds, UTC).astimezone(TEHRAN)
    return jdatetime.datetime.fromgregorian(datetime=local)


def jalali_year(seconds: float) -> int:
    return _year_second(int(seconds))


@functools.lru_cache(maxsize=4096)
def _year_second(second: int) -> int:
    return int(_jalali(second).year)


def jalali_text(seconds: float) -> str:
    """`1405/09/03 20:35:03` (Tehran time) for `*_jalali` fields."""
    return _jalali_second(int(seconds))


def rfc3339(seconds: float) -> str:
    return _rfc3339_second(int(seconds))


# Answers name the same few seconds over and over: convert each once.
@functools.lru_cache(maxsize=4096)
def _jalali_second(second: int) -> str:
    return str(_jalali(second).strftime("%Y/%m/%d %H:%M:%S"))


@functools.lru_cache(maxsize=4096)
def _rfc3339_second(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def registration_number(node_id: str, year: int, sequence: int) -> str:
    """`KB-1405-000123`: node, Jalali year, per-node sequence restarting each year."""
    return f"{node_id.upper()}-{year}-{sequence:06d}"


class BadDate(ValueError):
    """Text that is no date of either calendar, or no time with a zone."""


def parse_day(text: str) -> date:
    """A calendar day: `1405/09/03` (Jalali, `/`) or `2026-11-24` (Gregorian, `-`).

    Offices write Jalali dates; forms and other systems send ISO dates. The
    separator says which calendar is meant, so `1405-09-03` is not guessed at.
    """
    value = text.strip()
    hint = "write 1405/09/03 (Jalali) or 2026-11-24 (Gregorian)"
    try:
        if "/" in value:
            year, month, day = (int(part) for part in value.split("/"))
            found: date = jdatetime.date(year, month, day).togregorian()
            wrong_era = year >= 1700
        else:
            found = date.fromisoformat(value)
            wrong_era = found.year < 1700
    except ValueError:
        raise BadDate(f"{text!r} is not a date: {hint}") from None
    if wrong_era:  # 1405-09-03 or 2026/11/24: the other calendar was meant
        raise BadDate(f"{text!r} mixes the calendars' forms: {hint}")
    return found


def day_start(day: date) -> float:
    """The first second of `day` in Tehran, as a timestamp."""
    return datetime.combine(day, time(0, 0), TEHRAN).timestamp()


def parse_deadline(text: str) -> float:
    """A deadline: a day (its end in Tehran) or an RFC 3339 time with its zone."""
    if "T" not in text:
        return day_start(parse_day(text) + timedelta(days=1)) - 1
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadDate(f"{text!r} is not an RFC 3339 time such as 2026-12-01T12:00:00Z") from None
    if moment.tzinfo is None:
        raise BadDate(f"{text!r} has no time zone (end it with Z or +03:30)")
    return moment.timestamp()


def jalali_day(seconds: float) -> str:
    """`1405/09/03`: the Jalali day in Tehran."""
    return str(_jalali(int(seconds)).strftime("%Y/%m/%d"))
