"""The token bucket of the letter rate, on explicit times."""

from __future__ import annotations

from govnode.api.ratelimit import TokenBucket, retry_after


def test_a_burst_then_the_steady_rate() -> None:
    bucket = TokenBucket(per_second=0.5, burst=3, now=100.0)
    assert [bucket.take(100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(100.0) == 2.0  # one token every 2 s
    assert bucket.take(101.0) == 1.0
    assert bucket.take(102.0) == 0.0
    assert bucket.take(102.0) == 2.0


def test_a_quiet_agency_gets_its_burst_back_but_no_more() -> None:
    bucket = TokenBucket(per_second=1.0, burst=2, now=0.0)
    bucket.take(0.0)
    bucket.take(0.0)
    assert not bucket.full(1.0)
    assert bucket.full(3600.0)
    assert [bucket.take(3600.0) for _ in range(3)] == [0.0, 0.0, 1.0]


def test_a_clock_going_back_adds_nothing() -> None:
    bucket = TokenBucket(per_second=1.0, burst=1, now=10.0)
    assert bucket.take(10.0) == 0.0
    assert bucket.take(5.0) == 1.0


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert [retry_after(w) for w in (0.01, 1.0, 1.2, 4.99)] == ["1", "1", "2", "5"]
