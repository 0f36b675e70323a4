"""Presence subscriptions cannot outlive their connection or hurt the watched user.

The finding (issue 12, 1): subscribe-and-close left thousands of subscriptions behind;
the victim's next $connect cleaned them up itself, took 12 s, ended 500, and left the
victim looking online while offline.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from messenger.dal.subscriptions import Subscriptions
from messenger_protocol.limits import (
    MAX_IDS_PER_FRAME,
    MAX_REFUSED_FRAMES,
    MAX_SUBSCRIPTIONS_PER_CONNECTION,
)
from tests.support.harness import Connection, Harness, harness
from tests.support.identities import TestUser

pytestmark = pytest.mark.integration


def subscribe(h: Harness, watcher: Connection, user_ids: list[str]) -> dict[str, Any]:
    reply = h.send(watcher, {"action": "getPresence", "userIds": user_ids, "subscribe": True})
    assert reply is not None
    return reply


def watching(h: Harness, watcher: TestUser, watched: TestUser) -> Connection:
    """The watched user registered and offline, and the watcher's connection subscribed."""
    h.disconnect(h.connect(watched))
    connection = h.connect(watcher)
    subscribe(h, connection, [watched.user_id])
    return connection


def presence_items(h: Harness) -> list[dict[str, Any]]:
    """Every subscription and watch list in the Users table."""
    return [
        item for item in h.dump()["test-users"] if item["sk"]["S"].startswith(("SUB#", "WATCH#"))
    ]


def attack_frames(victim: str, frames: int) -> list[list[str]]:
    """What the attacker sent: 100 ids a frame, the victim's among them."""
    return [[victim, *(f"x{n}-{k}" for k in range(MAX_IDS_PER_FRAME - 1))] for n in range(frames)]


class CallCounter:
    """AWS calls the functions make, by operation (botocore's before-call)."""

    def __init__(self, h: Harness) -> None:
        self.calls: Counter[str] = Counter()
        h.services.dynamodb.meta.events.register("before-call", self._count)

    def _count(self, model: Any, **kwargs: Any) -> None:
        self.calls[model.name] += 1


def test_a_subscribe_after_the_connection_closed_records_nothing(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    # Given bob, and alice's frames still on their way when her connection closes
    h.disconnect(h.connect(bob))
    a = h.connect(alice)
    h.disconnect(a)
    # When API Gateway runs her subscribe after her $disconnect (the 3-frame race)
    for ids in attack_frames("bob", 3):
        subscribe(h, a, ids)
    # Then nothing is recorded for the closed connection
    assert presence_items(h) == []


def test_subscribes_racing_the_disconnect_leave_nothing_whatever_the_timing(
    alice: TestUser, bob: TestUser
) -> None:
    with harness() as h:
        h.disconnect(h.connect(bob))
        for round_ in range(8):
            # Given a connection with three subscribe frames in flight as it closes
            a = h.connect(alice)
            start = threading.Barrier(4)

            def frame(ids: list[str], a: Connection = a, start: threading.Barrier = start) -> None:
                start.wait()
                subscribe(h, a, ids)

            def close(a: Connection = a, start: threading.Barrier = start) -> None:
                start.wait()
                h.disconnect(a)

            with ThreadPoolExecutor(max_workers=4) as pool:
                jobs = [pool.submit(frame, ids) for ids in attack_frames("bob", 3)]
                jobs.append(pool.submit(close))
                for job in jobs:
                    job.result()
            # Then whichever order they ran in, nothing is left behind
            assert presence_items(h) == [], f"round {round_}"


@pytest.mark.slow  # several seconds of frames: in the full run, not the fast tier
def test_the_subscribe_and_close_attack_leaves_nothing_and_the_victim_connects_as_usual(
    h: Harness, mallory: TestUser, bob: TestUser
) -> None:
    # Given bob, with one honest watcher
    h.disconnect(h.connect(bob))
    honest = h.connect(TestUser("carol"))
    subscribe(h, honest, ["bob"])
    # When mallory sends 250 frames of 100 ids naming bob, then closes
    m = h.connect(mallory)
    frames = attack_frames("bob", 250)
    replies = [
        h.send(m, {"action": "getPresence", "userIds": ids, "subscribe": True}) for ids in frames
    ]
    # Then only as many as the cap allows were recorded; the rest were refused (past the
    # cap, and past getPresence's rate limit) and recorded nothing, until her connection
    # had sent too many refused frames and was closed (docs/protocol.md §3)
    answered = [reply for reply in replies if reply is not None]
    codes = Counter(r.get("code") for r in answered)
    assert codes[None] == MAX_SUBSCRIPTIONS_PER_CONNECTION // MAX_IDS_PER_FRAME
    assert codes["BAD_REQUEST"] > 0 and codes["RATE_LIMITED"] > 0
    assert codes["BAD_REQUEST"] + codes["RATE_LIMITED"] == MAX_REFUSED_FRAMES
    assert replies[len(answered) :] == [None] * (250 - len(answered))
    assert h.posts.of_type(m.connection_id, "error")[0]["code"] == "TOO_MANY_REFUSED"
    watched = Subscriptions(h.services.dynamodb, h.settings.users_table).watched_by(
        "mallory", m.connection_id
    )
    assert len(watched) == 1 + codes[None] * (MAX_IDS_PER_FRAME - 1)  # bob in every frame
    h.disconnect(m)
    # And her close took every subscription she had with it
    assert [i["pk"]["S"] for i in presence_items(h) if i["sk"]["S"].startswith("SUB#")] == ["U#bob"]
    # And bob's handshake makes its usual three calls (the authorizer's read of his
    # profile and its nonce, $connect's write), hands the change on, and posts to no one
    counter = CallCounter(h)
    h.run_invocations_at_once = False
    h.posts.attempts.clear()
    b = h.connect(bob)
    assert counter.calls == {"GetItem": 1, "PutItem": 1, "UpdateItem": 1}
    assert [name for name, _ in h.invokes.pending] == ["PresenceChanged"]
    assert h.posts.attempts == []
    profile = h.services.profiles.get_profile("bob")
    assert profile is not None and list(profile.connections) == [b.connection_id]
    # And the presence function tells the honest watcher (once the flap has held)
    h.run_invocations()
    h.settle_flaps()
    assert h.posts.of_type(honest.connection_id, "presence")[-1]["users"][0]["online"] is True


def test_a_connection_watches_at_most_1000_users(h: Harness, alice: TestUser) -> None:
    a = h.connect(alice)
    ids = [f"user{i:04d}" for i in range(MAX_SUBSCRIPTIONS_PER_CONNECTION + 1)]
    for start in range(0, MAX_SUBSCRIPTIONS_PER_CONNECTION, MAX_IDS_PER_FRAME):
        assert subscribe(h, a, ids[start : start + MAX_IDS_PER_FRAME])["type"] == "presence"
    # Asking again about users it watches already is no new subscription
    assert subscribe(h, a, ids[:MAX_IDS_PER_FRAME])["type"] == "presence"
    # One more is refused, records nothing, and says why
    before = h.dump()
    reply = subscribe(h, a, ids[-2:])
    assert reply["code"] == "BAD_REQUEST" and "at most 1000" in reply["message"]
    assert reply["ref"] == "getPresence"
    assert h.dump() == before
    # A plain lookup is still answered
    assert h.send(a, {"action": "getPresence", "userIds": ids[-1:]})["type"] == "presence"


def test_a_failed_connect_leaves_no_connection_recorded(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    # Given alice watches bob
    a = watching(h, alice, bob)
    h.posts.take(a.connection_id)
    # When bob's $connect fails at its write (a lasting throttle)
    h.throttle("UpdateItem", times=5)  # botocore's first attempt and its four retries
    with pytest.raises(AssertionError):
        h.connect(bob)
    # Then bob is not left looking online, and no one heard he was
    profile = h.services.profiles.get_profile("bob")
    assert profile is not None and profile.connections == {}
    assert h.send(a, {"action": "getPresence", "userIds": ["bob"]})["users"][0]["online"] is False
    assert h.posts.of_type(a.connection_id, "presence") == []


def test_a_connect_whose_presence_announcement_fails_still_succeeds(
    h: Harness, alice: TestUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    def lambda_down(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("Lambda is unreachable")

    monkeypatch.setattr(h.services.announcer, "announce", lambda_down)
    a = h.connect(alice)
    profile = h.services.profiles.get_profile("alice")
    assert profile is not None and list(profile.connections) == [a.connection_id]


def test_a_closed_watcher_costs_the_presence_function_one_subscription_and_nothing_else(
    h: Harness, alice: TestUser, bob: TestUser, carol: TestUser
) -> None:
    # Given alice watches bob and carol, and her connection died without a $disconnect
    for user in (bob, carol):
        h.disconnect(h.connect(user))
    h.settle_flaps()  # their closes, a moment after they came, told before alice watches
    a = h.connect(alice)
    subscribe(h, a, ["bob", "carol"])
    h.posts.gone.add(a.connection_id)
    # When bob comes online (and it holds)
    h.connect(bob)
    h.settle_flaps()
    # Then only alice's subscription to bob is gone; carol's waits for alice's $disconnect
    watched = sorted(i["pk"]["S"] for i in presence_items(h) if i["sk"]["S"].startswith("SUB#"))
    assert watched == ["U#carol"]
    h.disconnect(a)
    assert presence_items(h) == []


def test_the_presence_function_tells_every_watcher_the_final_state_after_a_flap(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    # Given alice watches bob
    a = watching(h, alice, bob)
    # When bob comes online and goes offline before either change is told
    h.run_invocations_at_once = False
    h.disconnect(h.connect(bob))
    invocations = h.invokes.take()
    assert len(invocations) == 2
    # And Lambda runs the second first (async invocations are not ordered)
    for name, payload in reversed(invocations):
        h.invokes.pending.append((name, payload))
        h.run_invocations()
    h.settle_flaps()
    # Then the last thing alice heard is the truth: bob is offline
    assert h.posts.of_type(a.connection_id, "presence")[-1]["users"][0]["online"] is False


def test_watch_lists_are_deleted_with_their_connection(h: Harness, alice: TestUser) -> None:
    subscriptions = Subscriptions(h.services.dynamodb, h.settings.users_table)
    a = h.connect(alice)
    subscribe(h, a, ["nobody1", "nobody2"])
    assert subscriptions.watched_by("alice", a.connection_id) == {"nobody1", "nobody2"}
    h.disconnect(a)
    assert subscriptions.watched_by("alice", a.connection_id) == set()
