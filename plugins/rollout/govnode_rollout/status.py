"""The rollout status: per phase planned, enrolled and active agencies, and who lags.

Pure: built from the directory entries and each agency's last letter, so the
command, the API route and the tests all see the same numbers. The network is
mandatory, so every agency of an open phase that is not enrolled, or sends
nothing, is listed by name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from govnode.hooks import (
    DirectoryEntry,
    LetterRecord,
    StatusReport,
    jalali_day,
    jalali_text,
    rfc3339,
)
from govnode_rollout.schedule import DAY, PHASES, Schedule, jalali_of

BAR_WIDTH = 20

REASONS = {
    "not_enrolled": "not enrolled",
    "suspended": "suspended",
    "inactive": "no letters",
}
"""Why an agency lags (JSON `reason` → the words of the text report)."""


@dataclass(frozen=True, slots=True)
class PhaseStatus:
    phase: int
    open: bool
    planned: int  # agencies of the phase in the directory
    enrolled: int  # of them, holding a valid certificate
    active: int  # of them, sent a letter in the window


@dataclass(frozen=True, slots=True)
class Laggard:
    """An agency of an open phase that is not enrolled, or sent nothing in the window."""

    entry: DirectoryEntry
    reason: str  # a key of REASONS
    last_letter_at: float | None  # its latest letter ever, if any


@dataclass(frozen=True, slots=True)
class RolloutStatus:
    node: str
    at: float
    active_days: int
    schedule: Schedule
    phases: tuple[PhaseStatus, ...]
    lagging: tuple[Laggard, ...]


def window_start(now: float, active_days: int) -> float:
    """Letters from this moment on make their sender active."""
    return now - active_days * DAY


def last_letters(letters: Iterable[LetterRecord], node_id: str) -> dict[str, float]:
    """Agency code → the time of its latest letter among `letters`, for senders of
    this node only (letters relayed from other nodes do not count)."""
    suffix = f"@{node_id}"
    latest: dict[str, float] = {}
    for letter in letters:
        if letter.sender.endswith(suffix):
            code = letter.sender.removesuffix(suffix)
            latest[code] = max(letter.created_at, latest.get(code, letter.created_at))
    return latest


def lag_reason(
    entry: DirectoryEntry, recent: Mapping[str, float], schedule: Schedule, now: float
) -> str | None:
    """Why `entry` lags (a key of REASONS), or None when it is on track or its phase
    has not opened. `recent`: code → latest letter inside the window."""
    if not schedule.is_open(entry.phase, now):
        return None
    if entry.status == "suspended":
        return "suspended"
    if entry.status != "active":
        return "not_enrolled"
    return None if entry.code in recent else "inactive"


def summarize(
    *,
    node: str,
    entries: Sequence[DirectoryEntry],
    last_sent: Mapping[str, float],
    schedule: Schedule,
    now: float,
    active_days: int,
) -> RolloutStatus:
    """The status at `now`; `last_sent`: code → its latest letter (at least for every
    agency active in the window and every laggard that ever sent one)."""
    since = window_start(now, active_days)
    recent = {code: at for code, at in last_sent.items() if at >= since}
    phases = sorted(set(PHASES) | {entry.phase for entry in entries})
    counted = []
    for phase in phases:
        members = [entry for entry in entries if entry.phase == phase]
        counted.append(
            PhaseStatus(
                phase=phase,
                open=schedule.is_open(phase, now),
                planned=len(members),
                enrolled=sum(1 for entry in members if entry.status == "active"),
                active=sum(1 for entry in members if entry.code in recent),
            )
        )
    lagging = []
    for entry in sorted(entries, key=lambda e: (e.phase, e.code)):
        reason = lag_reason(entry, recent, schedule, now)
        if reason is not None:
            lagging.append(Laggard(entry, reason, last_sent.get(entry.code)))
    return RolloutStatus(
        node=node,
        at=now,
        active_days=active_days,
        schedule=schedule,
        phases=tuple(counted),
        lagging=tuple(lagging),
    )


# -- as JSON ---------------------------------------------------------------------


def to_json(status: RolloutStatus) -> dict[str, Any]:
    """The answer of `/api/v1/x/rollout/status` and of `govnode rollout status --json`."""
    return {
        "node": status.node,
        "at": rfc3339(status.at),
        "at_jalali": jalali_text(status.at),
        "active_days": status.active_days,
        "phases": [
            {
                "phase": p.phase,
                **status.schedule.entry_facts(p.phase, status.at),
                "planned": p.planned,
                "enrolled": p.enrolled,
                "active": p.active,
            }
            for p in status.phases
        ],
        "lagging": [
            {
                "code": lag.entry.code,
                "address": lag.entry.address,
                "name": lag.entry.name_fa,
                "name_en": lag.entry.name_en,
                "phase": lag.entry.phase,
                "status": lag.entry.status,
                "reason": lag.reason,
                "last_letter_at": None
                if lag.last_letter_at is None
                else rfc3339(lag.last_letter_at),
                "last_letter_at_jalali": (
                    None if lag.last_letter_at is None else jalali_text(lag.last_letter_at)
                ),
            }
            for lag in status.lagging
        ],
    }


def _maybe(show: Callable[[float], str], moment: float | None) -> str | None:
    return None if moment is None else show(moment)


# -- as text -----------------------------------------------------------------------


def bar(part: int, whole: int, width: int = BAR_WIDTH) -> str:
    """`████████░░  80%`: how far `part` of `whole` is, for people at a terminal."""
    if whole <= 0:
        return "░" * width + "    -"
    filled = round(width * part / whole)
    # Never show a full bar before everyone is there, nor an empty one after the first.
    if part < whole:
        filled = min(filled, width - 1)
    if part > 0:
        filled = max(filled, 1)
    percent = 100 * part // whole  # floored: 100% only when everyone is there
    return "█" * filled + "░" * (width - filled) + f" {percent:3d}%"


def _opening(status: RolloutStatus, phase: PhaseStatus) -> str:
    day = status.schedule.day(phase.phase)
    if day is None:
        return "no opening date set, not open"
    when = f"{jalali_of(day)} ({day.isoformat()})"
    return f"opened {when}" if phase.open else f"opens {when}, not open yet"


def _aligned(rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns padded to their widest cell; the last (a name) is left as it is."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
        + "  "
        + row[-1]
        for row in rows
    ]


def to_text(status: RolloutStatus) -> str:
    """The report of `govnode rollout status`."""
    moment = datetime.fromtimestamp(status.at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Rollout of node {status.node} at {jalali_text(status.at)[:-3]} Tehran ({moment}); "
        f"active: sent a letter in the last {status.active_days} days",
    ]
    for phase in status.phases:
        lines += [
            "",
            f"Phase {phase.phase}: {_opening(status, phase)}",
            f"  planned   {phase.planned:4d}",
            f"  enrolled  {phase.enrolled:4d}  {bar(phase.enrolled, phase.planned)}",
            f"  active    {phase.active:4d}  {bar(phase.active, phase.planned)}",
        ]
    lines.append("")
    if not status.lagging:
        lines.append("No agency of an open phase lags.")
        return "\n".join(lines)
    lines.append(f"Lagging agencies of the open phases ({len(status.lagging)}):")
    rows = [("PHASE", "CODE", "WHY", "LAST LETTER", "NAME")]
    for lag in status.lagging:
        last = "never" if lag.last_letter_at is None else jalali_day(lag.last_letter_at)
        rows.append(
            (str(lag.entry.phase), lag.entry.code, REASONS[lag.reason], last, lag.entry.name_fa)
        )
    lines += ["  " + row for row in _aligned(rows)]
    return "\n".join(lines)


# -- on `govnode status` -------------------------------------------------------------


def status_report(status: RolloutStatus) -> StatusReport:
    """A line per phase and the laggards' count: the dashboard's short form of `to_text`."""
    lines = [
        f"phase {p.phase} {'open  ' if p.open else 'closed'}  enrolled "
        f"{bar(p.enrolled, p.planned)} {p.enrolled}/{p.planned}  active "
        f"{bar(p.active, p.planned, width=10)}"
        for p in status.phases
    ]
    lines.append(f"{len(status.lagging)} agencies of open phases lag (govnode rollout status)")
    facts = {
        "phases": [
            {
                "phase": p.phase,
                "open": p.open,
                "planned": p.planned,
                "enrolled": p.enrolled,
                "active": p.active,
            }
            for p in status.phases
        ],
        "lagging": len(status.lagging),
    }
    return StatusReport(lines=lines, facts=facts)
