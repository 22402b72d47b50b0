"""The lockout rule for repeated failed logins (pure: times in, decision out)."""

from __future__ import annotations

from collections.abc import Sequence


def locked_for(failures: Sequence[float], *, now: float, limit: int, window: float) -> float:
    """Seconds until `username` may try again; 0 when it may try now.

    `failures` are the times of failed logins, oldest first. The user is
    locked while `limit` failures lie inside the last `window` seconds; the
    lock lifts when the oldest of those leaves the window.
    """
    recent = [at for at in failures if now - at < window]
    if len(recent) < limit:
        return 0.0
    return max(0.0, recent[-limit] + window - now)
