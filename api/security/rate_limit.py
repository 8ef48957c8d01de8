"""Per-client token buckets: `rate` requests per second sustained, `burst` at once.

State is per process: a gateway of N processes gives each 1/N of the rate and the burst
(`share_of`), so that a client never gets more than the configured limit in all. A rate of
0 turns limits off.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from streams.settings import Settings


class RateLimiter:
    def __init__(
        self,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 100_000,
    ) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._clock = clock
        self._max_clients = max_clients
        self._buckets: dict[str, list[float]] = {}  # client -> [tokens, last refill time]

    @classmethod
    def share_of(cls, settings: Settings) -> RateLimiter:
        """This process's share of the gateway's limits (CARELOG_GATEWAY_WORKERS processes)."""
        processes = max(1, settings.gateway.workers)
        return cls(
            settings.gateway.rate_limit_per_second / processes,
            math.ceil(settings.gateway.rate_limit_burst / processes),
        )

    def take(self, client: str) -> float:
        """Spend one token of `client`: 0.0 when allowed, else seconds until one is available."""
        if self.rate <= 0:
            return 0.0
        now = self._clock()
        bucket = self._buckets.get(client)
        if bucket is None:
            if len(self._buckets) >= self._max_clients:
                self._forget_idle(now)
            bucket = self._buckets[client] = [float(self.burst), now]
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0.0
        bucket[0] = tokens
        return (1.0 - tokens) / self.rate

    def retry_after(self, wait: float) -> str:
        """Retry-After value (whole seconds, at least 1)."""
        return str(max(1, math.ceil(wait)))

    def _forget_idle(self, now: float) -> None:
        # A bucket that has refilled completely carries no information: drop it.
        full_after = self.burst / self.rate
        self._buckets = {k: b for k, b in self._buckets.items() if now - b[1] < full_after}
        if len(self._buckets) >= self._max_clients:  # still flooded: forget everyone
            self._buckets.clear()
