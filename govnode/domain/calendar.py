"""The Jalali calendar as Iran's offices use it: local time in Tehran, jdatetime's arithmetic.

The registration year of a letter is the Jalali year at the moment it was
registered, in Tehran; it turns at local midnight of Farvardin 1 (Nowruz).
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
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
