"""Presence flapping (docs/protocol.md §2): a burst of online/offline changes of one user
reaches watchers as its final state within a second or two, while every change that
holds is still told."""

from __future__ import annotations

import pytest

from messenger.contract import PRESENCE_FLAP_WINDOW_MS, PRESENCE_SETTLE_MS
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
    # Then alice hears one frame, offline: the online blips were overtaken
    assert announced == 7
    assert heard(h, a) == [False]


def test_burst_ending_online_tells_no_offline(h: Harness, alice: TestUser, bob: TestUser) -> None:
    # Given bob online for a while, watched by alice, with late presence invocations
    phone = h.connect(bob)
    h.clock.advance(QUIET_S)
    a = watching(h, alice, "bob")
    h.run_invocations_at_once = False
    # When bob flaps three times and stays online
    flap(h, bob, phone, 3)
    h.run_invocations()
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
    h.disconnect(phone)
    # Then alice hears it, once it held the settle time
    assert heard(h, a) == [True, False]
    assert h.clock.slept == [pytest.approx(PRESENCE_SETTLE_MS / 1000, abs=0.01)]


def test_quiet_changes_are_each_told_at_once(h: Harness, alice: TestUser, bob: TestUser) -> None:
    # Given alice watching bob
    known(h, bob)
    a = watching(h, alice, "bob")
    # When bob comes and goes with quiet spells between
    for _ in range(3):
        h.clock.advance(QUIET_S)
        phone = h.connect(bob)
        h.clock.advance(QUIET_S)
        h.disconnect(phone)
    # Then alice heard every one of them, in order, and none waited for a settle
    assert heard(h, a) == [True, False] * 3
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
    # Then the phone's coming online is still told: bob stayed online
    assert heard(h, a) == [True]


def test_burst_told_as_its_final_state_whatever_order_invocations_run(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    # Given bob flapping three times and then staying offline, watched by alice
    a = burst_ending_offline(h, alice, bob)
    # When Lambda runs the burst's invocations newest first (asynchronous invocations
    # keep no order)
    h.invokes.pending.reverse()
    h.run_invocations()
    # Then alice still hears one frame, offline
    assert heard(h, a) == [False]
