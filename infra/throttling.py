"""Stage throttles that the account can actually deliver.

API Gateway throttles every account per region with one token bucket shared by the
inbound frames of all its WebSocket (and REST, HTTP) APIs and by the @connections posts
the functions make (infra/regions.py cites the quota). A stage throttle is a ceiling on
inbound frames only, so a stage allowed the whole account quota would have its posts
throttled (410-free failures, messages left queued) long before its own limit applied.

    frames the stage may admit = account quota x share x frames / (frames + posts)

where frames/posts is what a message costs (`bench calls`, "message life": sendMessage,
the recipient's ack, the sender's ack of the receipt are 3 frames; the message and the
receipt are 2 posts), and share is the part of the account's quota an environment may
use (dev and prod may live in one account: their shares add up to at most 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from infra.regions import AccountQuota


@dataclass(frozen=True)
class MessageCost:
    """API Gateway requests of one message's life: inbound frames and @connections posts."""

    frames: int
    posts: int


# Measured by `./dev bench calls` ("message life") and checked against it by
# tests/infra/test_throttling.py.
MESSAGE_LIFE = MessageCost(frames=3, posts=2)


@dataclass(frozen=True)
class Throttle:
    rate: int  # frames per second, steady
    burst: int  # frames at once, above the steady rate


def stage_throttle(quota: AccountQuota, share: float, cost: MessageCost = MESSAGE_LIFE) -> Throttle:
    """The stage throttle leaving room, within `share` of the quota, for the posts it causes."""
    if not 0 < share <= 1:
        raise ValueError(f"a share of the account quota is in (0, 1], got {share}")
    frames_share = share * cost.frames / (cost.frames + cost.posts)
    return Throttle(
        rate=math.floor(quota.rate * frames_share),
        burst=max(1, math.floor(quota.burst * frames_share)),
    )


def account_requests(throttle: Throttle, cost: MessageCost = MESSAGE_LIFE) -> tuple[float, float]:
    """What a stage at `throttle` may cost the account at most: (requests/s, burst)."""
    factor = (cost.frames + cost.posts) / cost.frames
    return throttle.rate * factor, throttle.burst * factor
