"""Token buckets (pure, with a fake clock)."""

from __future__ import annotations

from api.security.rate_limit import RateLimiter


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=2.0, burst=3, clock=clock)
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.take("a")
    assert wait == 0.5 and limiter.retry_after(wait) == "1"
    assert limiter.take("b") == 0.0  # each client its own bucket
    clock.now += 0.5
    assert limiter.take("a") == 0.0
    assert limiter.take("a") > 0


def test_zero_rate_turns_limits_off_and_idle_clients_are_forgotten() -> None:
    assert all(RateLimiter(0, 1).take("a") == 0.0 for _ in range(100))
    clock = Clock()
    limiter = RateLimiter(rate=1.0, burst=1, clock=clock, max_clients=2)
    limiter.take("a")
    limiter.take("b")
    clock.now += 5
    limiter.take("c")  # the table is full: a and b have refilled, so they go
    assert set(limiter._buckets) == {"c"}
