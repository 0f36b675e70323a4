"""How fast one sender may send: `rate_limit_per_minute` sustained, `rate_limit_burst` at once."""

from __future__ import annotations

from messenger.dal.rate_limits import RateLimits
from messenger.logic.clock import Clock


class SendRateLimit:
    def __init__(self, buckets: RateLimits, clock: Clock, per_minute: int, burst: int) -> None:
        self._buckets = buckets
        self._clock = clock
        self._interval_ms = max(1, 60_000 // per_minute)
        self._burst = burst

    def allow(self, sender: str) -> bool:
        return self._buckets.allow(sender, self._clock.now_ms(), self._interval_ms, self._burst)
