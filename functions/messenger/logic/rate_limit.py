"""How fast each user may do each thing: a leaky bucket per user and action (contract's
RATE_LIMITS, sendMessage's from the settings), and one per reader and recipient for seen
receipts. docs/limits.md lists them all."""

from __future__ import annotations

from collections.abc import Callable

from messenger.contract import MARK_SEEN_PER_RECIPIENT, RateLimit
from messenger.dal.rate_limits import RateLimits
from messenger.errors import RateLimited
from messenger.logic.clock import Clock
from messenger_protocol.names import Action


class RateLimiter:
    def __init__(
        self, buckets: RateLimits, clock: Clock, limit_of: Callable[[Action], RateLimit]
    ) -> None:
        self._buckets = buckets
        self._clock = clock
        self._limit_of = limit_of

    def take(self, user_id: str, action: Action) -> None:
        """Count one frame of `action`; RateLimited (nothing written) when over the limit."""
        if not self._buckets.take(
            user_id, action.value, self._clock.now_ms(), self._limit_of(action)
        ):
            raise RateLimited(f"too many {action.value} frames; slow down and resend")

    def take_seen_receipt(self, reader: str, recipient: str) -> None:
        """Count one seen receipt from `reader` to `recipient` (a stranger's flood stops)."""
        name = f"{Action.MARK_SEEN.value}#{recipient}"
        if not self._buckets.take(reader, name, self._clock.now_ms(), MARK_SEEN_PER_RECIPIENT):
            raise RateLimited(f"too many seen receipts for {recipient!r}; slow down and resend")
