"""Time, injectable so tests can skew it and step past expiries."""

from __future__ import annotations

import time


class Clock:
    def now_ns(self) -> int:
        return time.time_ns()

    def now_us(self) -> int:
        return self.now_ns() // 1_000

    def now_ms(self) -> int:
        return self.now_ns() // 1_000_000

    def now_s(self) -> int:
        return self.now_ns() // 1_000_000_000

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class FixedClock(Clock):
    """A clock that only moves when told to (tests, benchmarks)."""

    def __init__(self, now_ms: int) -> None:
        self._now_ns = now_ms * 1_000_000
        self.slept: list[float] = []

    def now_ns(self) -> int:
        self._now_ns += 1_000  # every reading is a distinct microsecond, like real time
        return self._now_ns

    def sleep(self, seconds: float) -> None:
        """Recorded, not waited: the clock stays where the test put it (an invocation that
        waits must not move time for the others the harness runs after it)."""
        self.slept.append(seconds)

    def advance(self, seconds: float) -> None:
        self._now_ns += int(seconds * 1_000_000_000)
