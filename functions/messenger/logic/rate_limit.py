"""How fast each user may do each thing: a leaky bucket per user and action (contract's
RATE_LIMITS, sendMessage's from the settings), one per reader and recipient for seen
receipts, and two windows per connection: all its frames, and its refused frames.
docs/limits.md lists them all."""

from __future__ import annotations

from collections.abc import Callable

from messenger.contract import MARK_SEEN_PER_RECIPIENT, FrameWindow, RateLimit
from messenger.dal.rate_limits import RateLimits
from messenger.errors import RateLimited
from messenger.logic.clock import Clock
from messenger_protocol.limits import (
    CONNECTION_FRAMES_WINDOW_SECONDS,
    MAX_CONNECTION_FRAMES,
    MAX_REFUSED_FRAMES,
    REFUSED_FRAMES_WINDOW_SECONDS,
)
from messenger_protocol.names import Action

# Frames one connection may send, whatever they are (docs/protocol.md §3: every frame
# counts), before the next meets RATE_LIMITED; counted in tenths of a second (the item
# stays under 1 KB, one write unit).
CONNECTION_FRAMES = FrameWindow(
    limit=MAX_CONNECTION_FRAMES, window_ms=CONNECTION_FRAMES_WINDOW_SECONDS * 1000, slots=50
)
FRAMES_BUCKET = "frames"
# Refused frames one connection may send (docs/protocol.md §3) before it is closed;
# counted in seconds.
REFUSED_FRAMES = FrameWindow(
    limit=MAX_REFUSED_FRAMES, window_ms=REFUSED_FRAMES_WINDOW_SECONDS * 1000, slots=60
)
REFUSED_BUCKET = "refused"


class RateLimiter:
    def __init__(
        self, buckets: RateLimits, clock: Clock, limit_of: Callable[[Action], RateLimit]
    ) -> None:
        self._buckets = buckets
        self._clock = clock
        self._limit_of = limit_of

    def take(self, user_id: str, action: Action) -> None:
        """Count one frame of `action`; RateLimited (nothing written, with how long to
        wait) when over the limit."""
        wait = self._buckets.take_or_wait(
            user_id, action.value, self._clock.now_ms(), self._limit_of(action)
        )
        if wait:
            raise RateLimited(
                f"too many {action.value} frames; slow down and resend", retry_after=wait
            )

    def take_frame(self, user_id: str, connection_id: str) -> None:
        """Count one frame of a connection, whatever it is (unknown, not JSON...);
        RateLimited once it has sent more than MAX_CONNECTION_FRAMES within the window."""
        name = f"{FRAMES_BUCKET}#{connection_id}"
        held = self._buckets.count_in_window(user_id, name, self._clock.now_ms(), CONNECTION_FRAMES)
        if held.count > CONNECTION_FRAMES.limit:
            raise RateLimited(
                "too many frames on this connection; slow down and resend",
                retry_after=held.oldest_leaves_in_ms,
            )

    def take_refused(self, user_id: str, connection_id: str) -> bool:
        """Count one refused frame of a connection; False once it has sent more than
        MAX_REFUSED_FRAMES of them within the window: it is to be closed."""
        name = f"{REFUSED_BUCKET}#{connection_id}"
        held = self._buckets.count_in_window(user_id, name, self._clock.now_ms(), REFUSED_FRAMES)
        return held.count <= REFUSED_FRAMES.limit

    def take_seen_receipt(self, reader: str, recipient: str) -> None:
        """Count one seen receipt from `reader` to `recipient` (a stranger's flood stops)."""
        name = f"{Action.MARK_SEEN.value}#{recipient}"
        wait = self._buckets.take_or_wait(
            reader, name, self._clock.now_ms(), MARK_SEEN_PER_RECIPIENT
        )
        if wait:
            raise RateLimited(
                f"too many seen receipts for {recipient!r}; slow down and resend",
                retry_after=wait,
            )
