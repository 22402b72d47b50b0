"""The phase schedule: which phase opens when, read from `[plugins.rollout]`.

Pure values and arithmetic (no node, no I/O) so the rules are unit-tested on
their own and the hooks can answer from memory.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

from govnode.hooks import PluginSettings, day_start, jalali_day

PHASES = (1, 2, 3)
"""The rollout phases of the province (the directory's `phase` of each agency)."""

DAY = 86400.0
_CODE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")  # an agency code


@dataclass(frozen=True, slots=True)
class Schedule:
    """Phase → its opening day; a phase opens at 00:00 Tehran time of that day."""

    days: Mapping[int, date] = field(default_factory=dict)

    def day(self, phase: int) -> date | None:
        return self.days.get(phase)

    def opens_at(self, phase: int) -> float | None:
        """The opening moment (a timestamp), or None when the phase has no date."""
        day = self.days.get(phase)
        return None if day is None else day_start(day)

    def is_open(self, phase: int, now: float) -> bool:
        """A phase without an opening date is not open: nobody was told it may start."""
        moment = self.opens_at(phase)
        return moment is not None and now >= moment

    def all_open(self, now: float) -> bool:
        """Every phase has opened: the letter gate has nothing left to check."""
        return all(self.is_open(phase, now) for phase in PHASES)

    def opening_text(self, phase: int) -> str:
        """`opens on 1405/07/01 (2026-09-23)`, or that it has no date yet."""
        day = self.days.get(phase)
        if day is None:
            return "has no opening date yet"
        return f"opens on {jalali_of(day)} ({day.isoformat()})"

    def refusal(self, code: str, phase: int, *, receiving: bool) -> str:
        """The message of a `phase_not_open` refusal, naming the opening day."""
        doing = "receive" if receiving else "send"
        return (
            f"{code} joins in phase {phase}, which {self.opening_text(phase)}; "
            f"it cannot {doing} letters before then"
        )

    def entry_facts(self, phase: int, now: float) -> dict[str, object]:
        """What a directory entry shows of its phase (`x.rollout`)."""
        day = self.days.get(phase)
        return {
            "opens_on": None if day is None else day.isoformat(),
            "opens_on_jalali": None if day is None else jalali_of(day),
            "open": self.is_open(phase, now),
        }


def jalali_of(day: date) -> str:
    """`1405/07/01`: the Jalali name of a (Gregorian) day."""
    return jalali_day(day_start(day))


@dataclass(frozen=True, slots=True)
class RolloutSettings:
    """`[plugins.rollout]`, checked."""

    schedule: Schedule = field(default_factory=Schedule)
    active_days: int = 30
    governorate: str = "ostandari"


def read_settings(settings: PluginSettings) -> RolloutSettings:
    """Read `[plugins.rollout]`; every error names its key (`plugins.rollout.phases.4`)."""
    phases = settings.table_of("phases")
    days: dict[int, date] = {}
    for key in phases.keys():  # noqa: SIM118 - PluginSettings is not a dict
        if key not in {str(phase) for phase in PHASES}:
            raise phases.error(key, f"is not a phase; the phases are {', '.join(map(str, PHASES))}")
        days[int(key)] = phases.day(key)
    if not days:
        # Enabled without dates, the plugin would stop every letter of the node.
        raise settings.error(
            "phases",
            'is required: the opening day of each phase, e.g. phases = { 1 = "1404/10/01" }',
        )
    governorate = settings.string("governorate", "ostandari")
    if not _CODE.fullmatch(governorate):
        raise settings.error(
            "governorate", f"must be an agency code like 'ostandari', not {governorate!r}"
        )
    return RolloutSettings(
        schedule=Schedule(days),
        active_days=settings.integer("active_days", 30, minimum=1, maximum=366),
        governorate=governorate,
    )
