"""The token bucket on a fake clock: bursts, steady rate, waits, no refill past its size."""

from __future__ import annotations

import pytest

from gateway.resilience.token_bucket import TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_full_bucket_lets_a_burst_through_then_refuses_with_the_wait() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10.0, size=5, clock=clock)
    assert [bucket.take() for _ in range(5)] == [0.0] * 5
    assert bucket.take() == pytest.approx(0.1)
    clock.now += 0.05
    assert bucket.take() == pytest.approx(0.05)  # half a token back: half the wait left
    clock.now += 0.05
    assert bucket.take() == 0.0


def test_a_refused_take_costs_nothing() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1.0, size=1, clock=clock)
    assert bucket.take() == 0.0
    for _ in range(100):
        assert bucket.take() > 0
    clock.now += 1.0
    assert bucket.take() == 0.0


def test_over_time_the_rate_plus_the_burst_get_through() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=50.0, size=50, clock=clock)
    passed = 0
    for _ in range(1000):  # 200 requests/s for 5 s
        passed += bucket.take() == 0.0
        clock.now += 1 / 200
    # 50 at once, then 50/s over the 5 s (the last refill lands after the last request)
    assert passed == pytest.approx(50 + 50 * 5, abs=1)


def test_an_idle_bucket_fills_up_to_its_size_only() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=100.0, size=3, clock=clock)
    bucket.take()
    clock.now += 3600
    assert bucket.level == 3
    assert [bucket.take() for _ in range(4)][-1] > 0


def test_a_clock_going_nowhere_never_refills() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1000.0, size=2, clock=clock)
    assert [bucket.take() == 0.0 for _ in range(3)] == [True, True, False]


@pytest.mark.parametrize(("rate", "size"), [(0.0, 1), (-1.0, 1), (1.0, 0)])
def test_nonsense_limits_are_refused(rate: float, size: int) -> None:
    with pytest.raises(ValueError, match="rate > 0 and size >= 1"):
        TokenBucket(rate, size, FakeClock())
