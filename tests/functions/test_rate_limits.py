"""Rate limits on every action (docs/protocol.md §3): honest clients never meet them, however
many frames they have in flight; a flood is refused frame by frame, writing nothing."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import pytest

from messenger.contract import (
    DEFAULT_RATE_LIMITS,
    GATEWAY_ROUTES_BY_KEY,
    MARK_SEEN_PER_RECIPIENT,
    ROUTES,
    RateLimit,
)
from messenger.dal.rate_limits import RateLimits
from messenger.errors import RateLimited
from messenger_protocol.limits import (
    CONNECTION_FRAMES_WINDOW_SECONDS,
    MAX_CONNECTION_FRAMES,
    MAX_REFUSED_FRAMES,
)
from messenger_protocol.names import Action
from tests.support.devices import device_list, set_devices_frame
from tests.support.harness import Connection, Harness, harness
from tests.support.identities import TestUser
from tests.support.v12_pending import ACTIONS_NOT_ROUTED_YET

pytestmark = pytest.mark.integration


def frame_of(h: Harness, action: Action, sender: Connection, peer: TestUser) -> dict[str, Any]:
    """A well-formed frame of each action."""
    frames: dict[Action, dict[str, Any]] = {
        Action.SEND_MESSAGE: h.message(sender, peer, "hi", "msg-00000001"),
        Action.ACK: {"action": "ack", "ids": ["r#none"]},
        Action.MARK_SEEN: {"action": "markSeen", "to": peer.user_id, "messageIds": ["msg-001x"]},
        Action.SYNC: {"action": "sync"},
        Action.GET_PRESENCE: {"action": "getPresence", "userIds": [peer.user_id]},
        Action.GET_KEYS: {"action": "getKeys", "userId": peer.user_id},
        Action.REGISTER_PUSH: {"action": "registerPush", "platform": "GCM", "token": "t" * 160},
        Action.SET_PRESENCE_VISIBILITY: {"action": "setPresenceVisibility", "visibility": "nobody"},
        Action.SET_BLOCKED: {"action": "setBlocked", "add": ["mallory"]},
        Action.GET_SETTINGS: {"action": "getSettings"},
        Action.SET_DEVICES: set_devices_frame(device_list(cast(TestUser, sender.user), 1)),
    }
    return frames[action]


def test_the_actions_left_out_below_have_no_route_yet() -> None:
    assert not {route.key for route in ROUTES} & ACTIONS_NOT_ROUTED_YET


# A frame API Gateway answers itself (`ping`) runs nothing, so nothing counts it (§3).
FUNCTION_ACTIONS = [
    a for a in Action if a not in ACTIONS_NOT_ROUTED_YET and a.value not in GATEWAY_ROUTES_BY_KEY
]


@pytest.mark.parametrize("action", FUNCTION_ACTIONS, ids=str)
def test_every_action_is_limited_per_user_and_a_refusal_writes_nothing(
    h: Harness, alice: TestUser, bob: TestUser, carol: TestUser, action: Action
) -> None:
    # Given alice has used her whole burst of this action (at one instant)
    h.disconnect(h.connect(bob))
    a, c = h.connect(alice), h.connect(carol)
    limit = h.settings.rate_limit(action)
    for _ in range(limit.burst):
        h.services.rate_limiter.take("alice", action)
    # When one more frame comes
    before = h.dump(with_limits=True)
    reply = h.send(a, frame_of(h, action, a, bob))
    # Then it is refused RATE_LIMITED, told to wait until one unit has leaked out, and
    # nothing at all is written
    assert reply is not None and reply["code"] == "RATE_LIMITED", reply
    assert reply["retryAfter"] == limit.interval_ms, reply
    assert h.dump(with_limits=True) == before
    # And someone else's frame of the same action goes through
    other = h.send(c, frame_of(h, action, c, bob))
    assert other is None or other.get("code") != "RATE_LIMITED"
    # And alice's goes through again once a unit has leaked out
    h.clock.advance(limit.interval_ms / 1000)
    again = h.send(a, frame_of(h, action, a, bob))
    assert again is None or again.get("code") != "RATE_LIMITED"


@pytest.mark.slow  # several seconds of frames: in the full run, not the fast tier
def test_sixty_sends_pipelined_from_two_devices_are_all_accepted(
    alice: TestUser, bob: TestUser
) -> None:
    # Given the default limit (burst 60) and a fresh sender with two devices
    with harness() as h:
        assert h.settings.rate_limit(Action.SEND_MESSAGE).burst == 60
        h.disconnect(h.connect(bob))
        phone, laptop = h.connect(alice), h.connect(alice)
        frames = [
            (phone if i % 2 else laptop, h.message(phone, bob, "x", f"msg-p{i:04d}"))
            for i in range(60)
        ]
        # When all 60 arrive at once, 30 on each connection, none waiting for an ack
        with ThreadPoolExecutor(max_workers=16) as pool:
            replies = list(pool.map(lambda pair: h.send(*pair), frames))
        # Then every one is stored and acked
        assert [r["type"] for r in replies] == ["ack"] * 60, replies
        assert len(h.queue_of(bob)) == 60
        # And the 61st at that moment is the first refused
        extra = h.send(phone, h.message(phone, bob, "x", "msg-p0060"))
        assert extra is not None and extra["code"] == "RATE_LIMITED"


@pytest.mark.parametrize("burst", [5, 10, 30, 60])
def test_a_bucket_taken_concurrently_lets_exactly_its_burst_through(burst: int) -> None:
    # The finding: with retries capped at three conflicts, 30 at once let only 4 through
    with harness() as h:
        buckets = RateLimits(h.services.dynamodb, h.settings.limits_table)
        limit = RateLimit(burst=burst, per_minute=1)
        now = h.clock.now_ms()
        with ThreadPoolExecutor(max_workers=16) as pool:
            taken = list(
                pool.map(lambda _: buckets.take("alice", "x", now, limit), range(burst + 20))
            )
        assert taken.count(True) == burst


def test_a_full_bucket_is_refused_with_one_call_and_refills_at_its_rate(h: Harness) -> None:
    limit = RateLimit(burst=2, per_minute=60)  # one unit a second
    buckets = RateLimits(h.services.dynamodb, h.settings.limits_table)
    now = h.clock.now_ms()
    assert [buckets.take("alice", "x", now, limit) for _ in range(3)] == [True, True, False]
    assert buckets.take("alice", "x", now + 999, limit) is False
    # A refusal says how long until the bucket has room again
    assert buckets.take_or_wait("alice", "x", now + 400, limit) == 600
    assert buckets.take("alice", "x", now + 1000, limit) is True
    # An idle bucket drains entirely: a full burst again, never more
    later = now + 60_000
    assert [buckets.take("alice", "x", later, limit) for _ in range(3)] == [True, True, False]


@pytest.mark.slow  # several seconds of frames: in the full run, not the fast tier
def test_a_stranger_cannot_fill_someone_s_queue_with_seen_receipts(
    h: Harness, alice: TestUser, mallory: TestUser
) -> None:
    # Given a stranger who never got a message from alice
    h.disconnect(h.connect(alice))
    m = h.connect(mallory)
    # When it floods her with seen receipts of 100 long ids each (the finding: 1,800)
    codes = []
    for n in range(200):
        ids = [f"{n:04d}" + "x" * 58 + f"{k:02d}" for k in range(100)]  # 64 chars
        reply = h.send(m, {"action": "markSeen", "to": "alice", "messageIds": ids})
        codes.append(None if reply is None or reply["type"] == "seenStored" else reply["code"])
    # Then only the per-recipient burst is queued, and the rest are refused until the
    # connection has sent too many refused frames: then it is closed (docs/protocol.md §3)
    queued = len(h.queue_of(alice))
    assert queued == MARK_SEEN_PER_RECIPIENT.burst
    assert codes.count("RATE_LIMITED") == MAX_REFUSED_FRAMES
    assert codes[queued + MAX_REFUSED_FRAMES :] == [None] * (200 - queued - MAX_REFUSED_FRAMES)
    assert h.posts.of_type(m.connection_id, "error")[0]["code"] == "TOO_MANY_REFUSED"


@pytest.mark.slow  # several seconds of frames: in the full run, not the fast tier
def test_a_reader_marking_each_message_seen_in_a_busy_chat_is_never_limited(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    # Given bob shows alice's messages as they come, marking each one seen (the CLI's chat)
    a, b = h.connect(alice), h.connect(bob)
    rate = MARK_SEEN_PER_RECIPIENT.per_minute
    for i in range(3 * rate):
        assert h.send(a, h.message(a, bob, "x", f"msg-b{i:04d}"))["type"] == "ack"
        reply = h.send(b, {"action": "markSeen", "to": "alice", "messageIds": [f"msg-b{i:04d}"]})
        assert reply["type"] == "seenStored", reply
        # as fast as alice may send for three minutes on end
        h.clock.advance(60 / rate)


def test_the_limiter_refuses_through_a_domain_error(h: Harness) -> None:
    limit = DEFAULT_RATE_LIMITS[Action.GET_KEYS]
    for _ in range(limit.burst):
        h.services.rate_limiter.take("alice", Action.GET_KEYS)
    with pytest.raises(RateLimited, match="too many getKeys frames"):
        h.services.rate_limiter.take("alice", Action.GET_KEYS)


@pytest.mark.parametrize(
    ("frame", "route"),
    [
        ("not json at all", "$default"),
        ('{"action": "noSuchAction"}', "$default"),
        ('{"action": "sendMessage"}', "sendMessage"),
    ],
    ids=["not-json", "unknown-action", "malformed"],
)
def test_a_connection_that_keeps_sending_refused_frames_is_closed(
    h: Harness, alice: TestUser, bob: TestUser, frame: str, route: str
) -> None:
    # Given alice's connection, and another of bob's
    a, b = h.connect(alice), h.connect(bob)
    # When she sends as many refused frames as a minute allows, each is refused as usual
    for _ in range(MAX_REFUSED_FRAMES):
        reply = h.send_raw(a, frame, route)
        assert reply is not None and reply["type"] == "error", reply
    assert h.posts.of_type(a.connection_id, "error") == []
    # Then one more closes her connection, after an error frame that says why
    assert h.send_raw(a, frame, route) is None
    [closing] = h.posts.of_type(a.connection_id, "error")
    assert closing["code"] == "TOO_MANY_REFUSED"
    profile = h.services.profiles.get_profile("alice")
    assert profile is not None and a.connection_id not in profile.connections
    # And no one else is touched
    assert h.send(b, {"action": "getKeys", "userId": "alice"})["type"] == "keys"


def test_refused_frames_leak_out_so_an_honest_client_is_never_closed(
    h: Harness, alice: TestUser
) -> None:
    a = h.connect(alice)
    # A client that makes a mistake a second for three minutes is never closed
    for _ in range(180):
        reply = h.send_raw(a, '{"action": "noSuchAction"}', "$default")
        assert reply is not None and reply["code"] == "UNKNOWN_ACTION", reply
        h.clock.advance(1)


def test_more_than_100_refused_frames_within_a_minute_close_however_they_are_spread(
    h: Harness, alice: TestUser
) -> None:
    # Given alice's client makes a mistake every 0.58 s: 100 of them within 58 s
    a = h.connect(alice)
    for _ in range(MAX_REFUSED_FRAMES):
        reply = h.send_raw(a, '{"action": "noSuchAction"}', "$default")
        assert reply is not None and reply["code"] == "UNKNOWN_ACTION", reply
        h.clock.advance(0.58)
    # When she makes one more, still within the minute (docs/protocol.md §3)
    # Then her connection is closed, after an error frame that says why
    assert h.send_raw(a, '{"action": "noSuchAction"}', "$default") is None
    [closing] = h.posts.of_type(a.connection_id, "error")
    assert closing["code"] == "TOO_MANY_REFUSED"


# Frames no route takes, or that are not JSON, or malformed: each counts all the same.
UNREAD_FRAMES = [
    ('{"action": "noSuchAction"}', "$default"),
    ("not json", "$default"),
    ('{"action": "getKeys"}', "getKeys"),
]


def test_more_than_300_frames_within_5_seconds_meet_rate_limited_whatever_they_are(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    # Given alice's phone sent 300 frames just now: 270 counted as the runtime counts each
    # frame, then 30 that no route takes, that are not JSON, or malformed
    phone, laptop = h.connect(alice), h.connect(alice)
    h.connect(bob)
    limiter = h.services.rate_limiter
    for _ in range(MAX_CONNECTION_FRAMES - 30):
        limiter.take_frame("alice", phone.connection_id)
    for frame, route in UNREAD_FRAMES * 10:
        reply = h.send_raw(phone, frame, route)
        assert reply is not None and reply["code"] != "RATE_LIMITED", reply
    # When she sends one more within the 5 seconds (docs/protocol.md §3)
    h.clock.advance(CONNECTION_FRAMES_WINDOW_SECONDS - 0.3)
    refused = h.send(phone, {"action": "getKeys", "userId": "bob"})
    # Then it is refused RATE_LIMITED, naming it, with how long to wait
    assert refused["code"] == "RATE_LIMITED" and refused["ref"] == "getKeys", refused
    assert isinstance(refused["retryAfter"], int) and 1 <= refused["retryAfter"] <= 300
    # And her laptop's frames go through: the count is the connection's
    assert h.send(laptop, {"action": "getKeys", "userId": "bob"})["type"] == "keys"
    # And once those frames are 5 seconds old, the phone's go through again
    h.clock.advance(refused["retryAfter"] / 1000)
    assert h.send(phone, {"action": "getKeys", "userId": "bob"})["type"] == "keys"
