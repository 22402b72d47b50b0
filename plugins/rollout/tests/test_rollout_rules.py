"""The rollout's pure rules: settings, when a phase opens, the messages, the counts."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from govnode_rollout.schedule import RolloutSettings, Schedule, read_settings
from govnode_rollout.status import bar, last_letters, summarize, to_json, to_text

from govnode.config.errors import ConfigError
from govnode.hooks import DirectoryEntry, LetterRecord, PluginSettings

CONFIG = Path("/etc/govnode/govnode.toml")
DAY = 86400.0
# 1405/07/01 is 2026-09-23; Tehran is UTC+03:30, so it starts at 2026-09-22T20:30:00Z.
PHASE_3_OPENS = 1_790_109_000.0
ONE = {"phases": {"1": "1405/01/01"}}


def settings(table: dict[str, Any]) -> RolloutSettings:
    section = PluginSettings(CONFIG, "plugins.rollout", table)
    read = read_settings(section)
    section.check_unknown()
    return read


def refused(table: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        settings(table)
    return caught.value


def entry(code: str, phase: int, status: str = "active") -> DirectoryEntry:
    return DirectoryEntry(
        code, f"{code}@kb", f"اداره {code}", code, "directorate", phase, None, None, status
    )


def letter(sender: str, at: float) -> LetterRecord:
    return LetterRecord(
        "id", "KB-1405-000001", sender, "u", "s", "normal", "normal", None, None, at, ()
    )


# -- settings ----------------------------------------------------------------------


def test_settings_take_jalali_gregorian_and_toml_dates() -> None:
    read = settings(
        {
            "phases": {"1": "1404/10/01", "2": "2026-04-04", "3": date(2026, 9, 23)},
            "active_days": 14,
            "governorate": "ostandari",
        }
    )
    assert read.schedule.days == {1: date(2025, 12, 22), 2: date(2026, 4, 4), 3: date(2026, 9, 23)}
    assert (read.active_days, read.governorate) == (14, "ostandari")


def test_settings_defaults() -> None:
    read = settings({"phases": {"1": "1404/10/01"}})
    assert (read.active_days, read.governorate) == (30, "ostandari")
    assert read.schedule.day(2) is None


@pytest.mark.parametrize(
    ("table", "key", "words"),
    [
        ({"phases": {"4": "1405/01/01"}}, "plugins.rollout.phases.4", "is not a phase"),
        ({"phases": {"0": "1405/01/01"}}, "plugins.rollout.phases.0", "is not a phase"),
        ({"phases": {"2": "1405/13/01"}}, "plugins.rollout.phases.2", "is not a date"),
        ({"phases": {"2": "2026-02-30"}}, "plugins.rollout.phases.2", "is not a date"),
        ({"phases": {"1": 14050101}}, "plugins.rollout.phases.1", "must be a date"),
        ({"phases": "1405/01/01"}, "plugins.rollout.phases", "must be a table"),
        ({}, "plugins.rollout.phases", "is required"),
        ({"phases": {}}, "plugins.rollout.phases", "is required"),
        (
            {"phases": {"1": "1405/01/01"}, "active_days": 0},
            "plugins.rollout.active_days",
            "between",
        ),
        (
            {"phases": {"1": "1405/01/01"}, "governorate": "Ostandari!"},
            "plugins.rollout.governorate",
            "agency code",
        ),
        (
            {"phases": {"1": "1405/01/01"}, "phase": {}},
            "plugins.rollout.phase",
            "not a known setting",
        ),
    ],
)
def test_settings_errors_name_the_key(table: dict[str, Any], key: str, words: str) -> None:
    error = refused(table)
    assert error.key == key
    assert words in error.message
    assert str(error).startswith(f"{CONFIG}: {key}: ")


# -- when a phase opens --------------------------------------------------------------


def test_a_phase_opens_at_tehran_midnight_of_its_day() -> None:
    schedule = Schedule({3: date(2026, 9, 23)})
    assert schedule.opens_at(3) == PHASE_3_OPENS
    assert not schedule.is_open(3, PHASE_3_OPENS - 1)
    assert schedule.is_open(3, PHASE_3_OPENS)


def test_a_phase_without_a_date_never_opens() -> None:
    schedule = Schedule({1: date(2025, 12, 22)})
    assert not schedule.is_open(2, PHASE_3_OPENS + 1000 * DAY)
    assert not schedule.all_open(PHASE_3_OPENS + 1000 * DAY)
    assert "has no opening date yet" in schedule.refusal("abfa", 2, receiving=False)


def test_refusals_name_the_opening_day_in_both_calendars() -> None:
    schedule = Schedule({3: date(2026, 9, 23)})
    assert schedule.refusal("edu-dena", 3, receiving=False) == (
        "edu-dena joins in phase 3, which opens on 1405/07/01 (2026-09-23); "
        "it cannot send letters before then"
    )
    assert "cannot receive letters" in schedule.refusal("edu-dena", 3, receiving=True)


def test_directory_facts() -> None:
    schedule = Schedule({3: date(2026, 9, 23)})
    assert schedule.entry_facts(3, PHASE_3_OPENS - 1) == {
        "opens_on": "2026-09-23",
        "opens_on_jalali": "1405/07/01",
        "open": False,
    }
    assert schedule.entry_facts(3, PHASE_3_OPENS)["open"] is True
    assert schedule.entry_facts(2, PHASE_3_OPENS) == {
        "opens_on": None,
        "opens_on_jalali": None,
        "open": False,
    }


# -- the counts ---------------------------------------------------------------------


def test_last_letters_are_per_local_sender() -> None:
    found = last_letters(
        [
            letter("edu@kb", 10.0),
            letter("edu@kb", 30.0),
            letter("edu@kb", 20.0),
            letter("x@center", 40.0),
        ],
        "kb",
    )
    assert found == {"edu": 30.0}


def test_summary_counts_and_laggards() -> None:
    now = PHASE_3_OPENS - DAY
    schedule = Schedule({1: date(2025, 12, 22), 3: date(2026, 9, 23)})
    entries = [
        entry("edu", 1),
        entry("roads", 1),  # enrolled, its last letter before the window
        entry("welfare", 1),  # enrolled, never wrote
        entry("agri", 1, "pending"),
        entry("gas", 1, "suspended"),
        entry("abfa", 2, "pending"),  # phase 2 has no date: not open, not lagging
        entry("edu-dena", 3),  # phase 3 opens tomorrow: not lagging
    ]
    status = summarize(
        node="kb",
        entries=entries,
        last_sent={"edu": now - DAY, "roads": now - 31 * DAY},
        schedule=schedule,
        now=now,
        active_days=30,
    )
    counts = {p.phase: (p.open, p.planned, p.enrolled, p.active) for p in status.phases}
    assert counts == {1: (True, 5, 3, 1), 2: (False, 1, 0, 0), 3: (False, 1, 1, 0)}
    lagging = [(lag.entry.code, lag.reason, lag.last_letter_at) for lag in status.lagging]
    assert lagging == [
        ("agri", "not_enrolled", None),
        ("gas", "suspended", None),
        ("roads", "inactive", now - 31 * DAY),
        ("welfare", "inactive", None),
    ]
    answer = to_json(status)
    assert answer["phases"][0] == {
        "phase": 1,
        "opens_on": "2025-12-22",
        "opens_on_jalali": "1404/10/01",
        "open": True,
        "planned": 5,
        "enrolled": 3,
        "active": 1,
    }
    assert answer["lagging"][2]["last_letter_at"] == "2026-08-21T20:30:00Z"
    assert answer["lagging"][2]["last_letter_at_jalali"] == "1405/05/31 00:00:00"
    text = to_text(status)
    assert "Phase 2: no opening date set, not open" in text
    assert "Phase 3: opens 1405/07/01 (2026-09-23), not open yet" in text
    assert "Lagging agencies of the open phases (4):" in text
    assert any(
        line.split()[:5] == ["1", "roads", "no", "letters", "1405/05/31"]
        for line in text.splitlines()
    )


def test_bars() -> None:
    assert bar(8, 10, width=10) == "████████░░  80%"
    assert bar(0, 10, width=10) == "░░░░░░░░░░   0%"
    assert bar(10, 10, width=10) == "██████████ 100%"
    # Almost everyone is not everyone, and one is not none.
    assert bar(199, 200, width=10) == "█████████░  99%"
    assert bar(1, 200, width=10) == "█░░░░░░░░░   0%"
    assert bar(0, 0, width=10) == "░░░░░░░░░░    -"
