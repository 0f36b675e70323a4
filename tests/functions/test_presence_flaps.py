"""Presence flapping (docs/protocol.md §2): a burst of online/offline changes of one user
reaches watchers as its final state within a second or two, while every change that
holds is still told. A flap waits out its settle time on the presence function's settle
queue (moto's SQS, on the harness's clock), never in a sleeping invocation."""

from __future__ import annotations

import json

import pytest

from messenger.contract import (
    PRESENCE_FLAP_WINDOW_MS,
    PRESENCE_SETTLE_MAX_RECEIVES,
    PRESENCE_SETTLE_MS,
    PRESENCE_SETTLE_VISIBILITY_SECONDS,
)
from messenger.transport.presence_events import PresenceEvent
from messenger_local.aws import DEAD_LETTERS_SUFFIX
from tests.support.harness import Connection, Harness
from tests.support.identities import TestUser

pytestmark = pytest.mark.integration

QUIET_S = PRESENCE_FLAP_WINDOW_MS / 1000 + 1


def known(h: Harness, user: TestUser) -> None:
    """The user has connected once, long ago (an unknown user cannot be watched)."""
    phone = h.connect(user)
    h.clock.advance(QUIET_S)
    h.disconnect(phone)
    h.clock.advance(QUIET_S)


def watching(h: Harness, watcher: TestUser, watched: str) -> Connection:
    connection = h.connect(watcher)
    reply = h.send(connection, {"action": "getPresence", "userIds": [watched], "subscribe": True})
    assert reply is not None and reply["type"] == "presence"
    h.posts.take(connection.connection_id)
    return connection


def heard(h: Harness, watcher: Connection) -> list[bool]:
    return [f["users"][0]["online"] for f in h.posts.of_type(watcher.connection_id, "presence")]


def flap(h: Harness, user: TestUser, online: Connection, times: int) -> Connection:
    """Close and reopen the user's only connection `times` times, 100 ms apart."""
    for _ in range(times):
        h.clock.advance(0.1)
        h.disconnect(online)
        h.clock.advance(0.1)
        online = h.connect(user)
    return online


def burst_ending_offline(h: Harness, alice: TestUser, bob: TestUser) -> Connection:
    """Bob online for a while, watched by alice, then flapping three times and staying
    offline, with the presence invocations left pending (Lambda's asynchronous queue may
    run them late); alice's connection."""
    phone = h.connect(bob)
    h.clock.advance(QUIET_S)
    a = watching(h, alice, "bob")
    h.run_invocations_at_once = False
    last = flap(h, bob, phone, 3)
    h.clock.advance(0.1)
    h.disconnect(last)
    return a


def test_burst_ending_offline_is_told_once_as_offline(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    # Given bob flapping three times and then staying offline, watched by alice
    a = burst_ending_offline(h, alice, bob)
    # When the presence invocations run
    announced = len(h.invokes.pending)
    h.run_invocations()
    # Then nothing is told yet: the flaps wait on the settle queue, no invocation waits
    assert announced == 7
    assert heard(h, a) == []
    assert h.settle_queue_depth() == 6
    assert h.clock.slept == []
    # And once they have held, alice hears one frame, offline: the online blips were
    # overtaken
    h.settle_flaps()
    assert heard(h, a) == [False]
    assert h.settle_queue_depth() == 0


def test_burst_ending_online_tells_no_offline(h: Harness, alice: TestUser, bob: TestUser) -> None:
    # Given bob online for a while, watched by alice, with late presence invocations
    phone = h.connect(bob)
    h.clock.advance(QUIET_S)
    a = watching(h, alice, "bob")
    h.run_invocations_at_once = False
    # When bob flaps three times and stays online
    flap(h, bob, phone, 3)
    h.run_invocations()
    h.settle_flaps()
    # Then alice hears no offline blip, and bob online last
    told = heard(h, a)
    assert False not in told
    assert told and told[-1] is True


def test_flap_that_holds_is_told_after_the_settle(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    # Given bob who came online a moment ago, watched by alice
    known(h, bob)
    a = watching(h, alice, "bob")
    phone = h.connect(bob)
    assert heard(h, a) == [True]
    # When he goes offline again at once, and stays offline
    h.clock.advance(0.1)
    before_ms = h.clock.now_ms()
    h.disconnect(phone)
    # Then the presence invocation returned at once, by the clock, without sleeping:
    # the change waits on the settle queue
    assert h.clock.now_ms() - before_ms < PRESENCE_SETTLE_MS / 100
    assert h.clock.slept == []
    assert heard(h, a) == [True]
    assert h.settle_queue_depth() == 1
    # And alice hears it once it has held the settle time, and not before
    h.clock.advance(PRESENCE_SETTLE_MS / 1000 - 0.2)
    h.run_invocations()
    assert heard(h, a) == [True]
    h.clock.advance(0.2)
    h.run_invocations()
    assert heard(h, a) == [True, False]
    assert h.settle_queue_depth() == 0


def test_quiet_changes_are_each_told_at_once(h: Harness, alice: TestUser, bob: TestUser) -> None:
    # Given alice watching bob
    known(h, bob)
    a = watching(h, alice, "bob")
    # When bob comes and goes with quiet spells between
    told_at_once = []
    for _ in range(3):
        h.clock.advance(QUIET_S)
        phone = h.connect(bob)
        told_at_once.append(heard(h, a)[-1:] == [True] and h.settle_queue_depth() == 0)
        h.clock.advance(QUIET_S)
        h.disconnect(phone)
        told_at_once.append(heard(h, a)[-1:] == [False] and h.settle_queue_depth() == 0)
    # Then alice heard every one of them, in order, each in its own invocation, and none
    # went through the settle queue
    assert heard(h, a) == [True, False] * 3
    assert told_at_once == [True] * 6
    assert h.clock.slept == []


def test_second_connection_closing_overtakes_nothing(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    # Given bob online on his phone, and alice watching, with late presence invocations
    known(h, bob)
    a = watching(h, alice, "bob")
    h.run_invocations_at_once = False
    h.connect(bob)
    # When his laptop comes and goes while the phone stays
    h.disconnect(h.connect(bob))
    h.run_invocations()
    h.settle_flaps()
    # Then the phone's coming online is still told: bob stayed online
    assert heard(h, a) == [True]


def test_burst_told_as_its_final_state_whatever_order_invocations_run(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    # Given bob flapping three times and then staying offline, watched by alice
    a = burst_ending_offline(h, alice, bob)
    # When Lambda runs the burst's invocations newest first (asynchronous invocations
    # keep no order), and the settle queue hands the flaps back
    h.invokes.pending.reverse()
    h.run_invocations()
    h.settle_flaps()
    # Then alice still hears one frame, offline
    assert heard(h, a) == [False]


def test_a_settled_change_close_behind_a_newer_one_is_not_held_again(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    # Given bob back online a moment ago (a flap, on the settle queue), watched by alice
    known(h, bob)
    a = watching(h, alice, "bob")
    h.connect(bob)
    h.clock.advance(0.1)
    h.disconnect(h.connect(bob))  # his laptop comes and goes: he stays online
    # When the flap comes back from the queue, his laptop's close just behind it
    h.settle_flaps()
    # Then it is told once, and nothing is left on the queue: no second deferral
    assert heard(h, a) == [True]
    assert h.settle_queue_depth() == 0


def offline_flap_held(h: Harness, alice: TestUser, bob: TestUser) -> Connection:
    """Alice watching bob, who went offline a moment after he came: his change waits on
    the settle queue. Alice's connection."""
    known(h, bob)
    a = watching(h, alice, "bob")
    phone = h.connect(bob)
    h.clock.advance(0.1)
    h.disconnect(phone)
    assert heard(h, a) == [True]
    return a


def tries_of_a_read(h: Harness) -> int:
    """The first try of a DynamoDB call and each of botocore's retries."""
    config = h.services.dynamodb.meta.config
    return int(config.retries["total_max_attempts"])  # type: ignore[attr-defined]


def test_malformed_record_is_dropped_and_a_failing_one_comes_back(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    # Given bob's offline flap on the settle queue, whose profile cannot be read when it
    # comes back
    a = offline_flap_held(h, alice, bob)
    # And records beside it that are not presence changes
    change = json.loads(PresenceEvent("bob", "https://example.com/test").to_payload())
    malformed = [
        "not json",
        json.dumps({"userId": "bob"}),
        json.dumps({**change, "online": True, "at": 1, "settleUntil": 2, "extra": 1}),
        json.dumps({**change, "online": "yes", "at": 1, "settleUntil": 2}),
        json.dumps({**change, "userId": "Not A User", "online": True, "at": 1, "settleUntil": 2}),
    ]
    sqs = h.services.sqs_client_factory()
    for body in malformed:
        sqs.send_message(QueueUrl=h.settings.presence_settle_queue, MessageBody=body)
    assert h.settle_queue_depth() == len(malformed) + 1
    tries = tries_of_a_read(h)
    throttled = h.throttle("GetItem", tries)
    # When the settle queue hands them to the presence function, in one batch
    h.settle_flaps()
    # Then the malformed records are dropped for good, and the flap is reported failed
    # (its GetItem throttled on every try) and stays on the queue, in flight
    assert len(throttled) == tries
    assert heard(h, a) == [True]
    assert h.settle_queue_depth() == 1
    # And once SQS hands it out again, it is told
    h.clock.advance(PRESENCE_SETTLE_VISIBILITY_SECONDS)
    h.run_invocations()
    assert heard(h, a) == [True, False]
    assert h.settle_queue_depth() == 0


def test_a_change_that_fails_every_time_ends_on_the_dead_letter_queue(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    # Given bob's offline flap on the settle queue, whose profile can never be read
    a = offline_flap_held(h, alice, bob)
    h.throttle("GetItem", tries_of_a_read(h) * PRESENCE_SETTLE_MAX_RECEIVES)
    # When SQS hands it out as often as the queue allows, and once more
    h.settle_flaps()
    for _ in range(PRESENCE_SETTLE_MAX_RECEIVES):
        h.clock.advance(PRESENCE_SETTLE_VISIBILITY_SECONDS)
        h.run_invocations()
    # Then it has left the settle queue for its dead-letter queue, where the alarm sees it
    assert h.settle_queue_depth() == 0
    sqs = h.services.sqs_client_factory()
    dead = sqs.get_queue_attributes(
        QueueUrl=h.settings.presence_settle_queue + DEAD_LETTERS_SUFFIX,
        AttributeNames=["ApproximateNumberOfMessages"],
    )
    assert dead["Attributes"]["ApproximateNumberOfMessages"] == "1"
    assert heard(h, a) == [True]
