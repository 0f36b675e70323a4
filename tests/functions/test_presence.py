"""Presence across several connections, subscriptions, and stale (Gone) connections."""

from __future__ import annotations

import pytest

from tests.support.harness import Harness, harness
from tests.support.identities import TestUser
from tests.support.push import emitted_metrics

pytestmark = pytest.mark.integration


def presence_of(h: Harness, asker, *user_ids: str, subscribe: bool = False) -> list[dict]:
    reply = h.send(
        asker, {"action": "getPresence", "userIds": list(user_ids), "subscribe": subscribe}
    )
    assert reply is not None and reply["type"] == "presence"
    return reply["users"]


def test_online_user_has_null_last_seen(h: Harness, alice: TestUser, bob: TestUser) -> None:
    a = h.connect(alice)
    h.connect(bob)
    assert presence_of(h, a, "bob") == [{"userId": "bob", "online": True, "lastSeen": None}]


def test_unknown_user_is_offline_with_null_last_seen(h: Harness, alice: TestUser) -> None:
    a = h.connect(alice)
    assert presence_of(h, a, "nobody") == [{"userId": "nobody", "online": False, "lastSeen": None}]


def test_user_stays_online_until_last_connection_closes(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    a = h.connect(alice)
    phone, laptop = h.connect(bob), h.connect(bob)
    h.disconnect(phone)
    assert presence_of(h, a, "bob")[0]["online"] is True
    h.clock.advance(5)
    closed_at = h.clock.now_ms()
    h.disconnect(laptop)
    [entry] = presence_of(h, a, "bob")
    assert entry["online"] is False
    assert closed_at <= entry["lastSeen"] <= closed_at + 10


def test_presence_lists_every_asked_user_in_order(
    h: Harness, alice: TestUser, bob: TestUser, carol: TestUser
) -> None:
    a = h.connect(alice)
    h.connect(bob)
    h.disconnect(h.connect(carol))
    users = presence_of(h, a, "carol", "ghost", "bob")
    assert [(u["userId"], u["online"]) for u in users] == [
        ("carol", False),
        ("ghost", False),
        ("bob", True),
    ]


def test_subscriber_hears_first_connect_and_last_disconnect_only(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    # Given alice watches bob, who is offline
    h.disconnect(h.connect(bob))
    a = h.connect(alice)
    presence_of(h, a, "bob", subscribe=True)
    h.posts.take(a.connection_id)
    # When bob's phone then laptop connect, then both close
    phone = h.connect(bob)
    h.settle_flaps()  # he went offline a moment ago: his coming back is told once it held
    laptop = h.connect(bob)
    h.disconnect(phone)
    h.disconnect(laptop)
    h.settle_flaps()
    # Then alice hears exactly: online, then offline (a second device is no change)
    changes = h.posts.of_type(a.connection_id, "presence")
    assert [c["users"][0]["online"] for c in changes] == [True, False]
    assert changes[0]["users"][0] == {"userId": "bob", "online": True, "lastSeen": None}
    assert isinstance(changes[1]["users"][0]["lastSeen"], int)


def test_subscriptions_add_up_and_end_with_the_connection(
    h: Harness, alice: TestUser, bob: TestUser, carol: TestUser
) -> None:
    h.disconnect(h.connect(bob))
    h.disconnect(h.connect(carol))
    a = h.connect(alice)
    presence_of(h, a, "bob", subscribe=True)
    presence_of(h, a, "carol", subscribe=True)
    h.connect(bob)
    h.connect(carol)
    h.settle_flaps()
    assert [c["users"][0]["userId"] for c in h.posts.of_type(a.connection_id, "presence")] == [
        "bob",
        "carol",
    ]
    # When alice's connection closes, her subscriptions go with it
    h.disconnect(a)
    subscriptions = [
        item for items in h.dump().values() for item in items if item["sk"]["S"].startswith("SUB#")
    ]
    assert subscriptions == []


def test_without_subscribe_no_changes_are_sent(h: Harness, alice: TestUser, bob: TestUser) -> None:
    a = h.connect(alice)
    presence_of(h, a, "bob")
    h.connect(bob)
    assert h.posts.of_type(a.connection_id, "presence") == []


def test_gone_connection_is_removed_and_user_goes_offline(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    # Given bob's only connection died without a $disconnect
    a, b = h.connect(alice), h.connect(bob)
    presence_of(h, a, "bob", subscribe=True)
    h.posts.gone.add(b.connection_id)
    # When alice sends to him
    reply = h.send(a, h.message(a, bob, "are you there?", "msg-0201"))
    # Then the send is still acked and the message stays queued
    assert reply is not None and reply["type"] == "ack"
    assert len(h.queue_of(bob)) == 1
    # And the stale connection is gone, bob is offline, and alice heard it
    profile = h.services.profiles.get_profile("bob")
    assert profile is not None and profile.connections == {}
    assert presence_of(h, a, "bob")[0]["online"] is False
    h.settle_flaps()  # his connection was a moment old: a flap, told once it held
    assert h.posts.of_type(a.connection_id, "presence")[-1]["users"][0]["online"] is False


def test_gone_on_one_of_three_connections_keeps_user_online(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    a = h.connect(alice)
    devices = [h.connect(bob) for _ in range(3)]
    h.posts.gone.add(devices[1].connection_id)
    h.send(a, h.message(a, bob, "hi", "msg-0202"))
    profile = h.services.profiles.get_profile("bob")
    assert profile is not None
    assert sorted(profile.connections) == sorted(
        [devices[0].connection_id, devices[2].connection_id]
    )
    for device in (devices[0], devices[2]):
        assert len(h.posts.of_type(device.connection_id, "message")) == 1
    assert presence_of(h, a, "bob")[0]["online"] is True


def test_gone_watcher_loses_its_subscription(h: Harness, alice: TestUser, bob: TestUser) -> None:
    h.disconnect(h.connect(bob))
    a = h.connect(alice)
    presence_of(h, a, "bob", subscribe=True)
    h.posts.gone.add(a.connection_id)
    h.connect(bob)
    h.settle_flaps()
    assert list(h.services.subscriptions.watchers_of("bob", h.clock.now_s())) == [[]]
    assert presence_of_fresh(h, bob_watcher=alice) is False


def presence_of_fresh(h: Harness, bob_watcher: TestUser) -> bool:
    profile = h.services.profiles.get_profile(bob_watcher.user_id)
    assert profile is not None
    return profile.is_online(h.clock.now_ms())


def test_connection_older_than_two_hours_is_not_online(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    # Given bob connected and his $disconnect was lost
    h.connect(bob)
    h.clock.advance(2 * 3600 + 600)
    a = h.connect(alice)
    assert presence_of(h, a, "bob")[0]["online"] is False
    # And a new connection prunes the stale one from his profile
    h.connect(bob)
    profile = h.services.profiles.get_profile("bob")
    assert profile is not None and len(profile.connections) == 1


def test_disconnect_twice_is_harmless(h: Harness, alice: TestUser) -> None:
    a = h.connect(alice)
    assert h.disconnect(a)["statusCode"] == 200
    assert h.disconnect(a)["statusCode"] == 200


def test_a_change_told_to_many_watchers_counts_its_frames_once(
    bob: TestUser, capsys: pytest.CaptureFixture[str]
) -> None:
    with harness(registrations_per_ip_per_hour=200) as h:
        told_to_many(h, bob, capsys)


def told_to_many(h: Harness, bob: TestUser, capsys: pytest.CaptureFixture[str]) -> None:
    # Given bob, known and offline, watched by 120 connections
    h.disconnect(h.connect(bob))
    h.clock.advance(60)
    for n in range(120):
        presence_of(h, h.connect(TestUser(f"w{n}")), "bob", subscribe=True)
    capsys.readouterr()
    # When bob comes online
    h.connect(bob)
    # Then the 120 frames are one metric value, in one EMF record: a value per post made
    # powertools print a record every 100 (50 for a change told to 5,000 watchers)
    records = [
        line for line in capsys.readouterr().out.splitlines() if "PresenceFramesSent" in line
    ]
    assert len(records) == 1
    assert emitted_metrics(records[0])["PresenceFramesSent"] == 120
