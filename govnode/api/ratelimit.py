"""A token bucket: the per-agency submission rate of `[limits]`."""

from __future__ import annotations

import math


class TokenBucket:
    """Holds up to `burst` tokens, refilled at `per_second`; each letter takes one.

    A bucket rather than a count per minute: an agency that was quiet may send a
    burst at once, and one that keeps sending gets the steady rate, never a wall
    at the turn of each minute.
    """

    __slots__ = ("_at", "_burst", "_rate", "_tokens")

    def __init__(self, per_second: float, burst: int, now: float) -> None:
        self._rate = per_second
        self._burst = float(burst)
        self._tokens = float(burst)
        self._at = now

    def take(self, now: float) -> float:
        """Take a token: 0 when there was one, else the seconds until there is."""
        self._tokens = min(self._burst, self._tokens + max(0.0, now - self._at) * self._rate)
        self._at = max(self._at, now)
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / self._rate

    def full(self, now: float) -> bool:
        """Whether the bucket would be full by `now` (it can then be forgotten)."""
        return self._tokens + max(0.0, now - self._at) * self._rate >= self._burst


def retry_after(wait: float) -> str:
    """A Retry-After value: whole seconds, at least 1."""
    return str(max(1, math.ceil(wait)))
