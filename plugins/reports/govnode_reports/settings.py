"""`[plugins.reports]`: the paper-letter assumptions, checked once at start-up.

    [plugins.reports]
    sheets_per_letter = 1            # sheets in one printed copy of a letter
    sheets_per_attachment = 2        # sheets per attachment, in every copy
    archive_copies = 1               # copies the sender files, beyond one per recipient
    courier_trips_per_recipient = 1  # a paper letter to an agency is a courier trip (cc too)
    minutes_per_trip = 45            # a courier's time per trip

Every key is optional (the defaults above); errors name the key
(`govnode.toml: plugins.reports.minutes_per_trip: must be ...`).
"""

from __future__ import annotations

from govnode.hooks import PluginSettings
from govnode_reports.figures import Assumptions

_DEFAULTS = Assumptions()


def _amount(settings: PluginSettings, name: str, default: float, maximum: float) -> float:
    """A number from 0 to `maximum` (whole or not): the core's `number` speaks of seconds."""
    settings.used.add(name)
    value = settings.table.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise settings.error(name, f"must be a number, not {type(value).__name__} {value!r}")
    if not 0 <= value <= maximum:
        raise settings.error(name, f"must be between 0 and {maximum:g}, not {value}")
    return float(value)


def read_assumptions(settings: PluginSettings) -> Assumptions:
    """The section's values; `settings.error` (the key named) for a wrong one."""
    return Assumptions(
        sheets_per_letter=_amount(settings, "sheets_per_letter", _DEFAULTS.sheets_per_letter, 500),
        sheets_per_attachment=_amount(
            settings, "sheets_per_attachment", _DEFAULTS.sheets_per_attachment, 500
        ),
        archive_copies=settings.integer(
            "archive_copies", _DEFAULTS.archive_copies, minimum=0, maximum=20
        ),
        courier_trips_per_recipient=_amount(
            settings, "courier_trips_per_recipient", _DEFAULTS.courier_trips_per_recipient, 10
        ),
        minutes_per_trip=_amount(settings, "minutes_per_trip", _DEFAULTS.minutes_per_trip, 24 * 60),
    )
