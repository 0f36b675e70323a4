"""At most 4 connections per device (docs/protocol.md §1; one device per user until
devices are linked): a fifth is accepted and the one that opened first is told REPLACED,
forgotten and closed."""

from __future__ import annotations

import pytest

from messenger.transport.connections import Connections
from messenger_protocol.limits import MAX_CONNECTIONS_PER_DEVICE
from tests.support.harness import Harness
from tests.support.identities import TestUser

pytestmark = pytest.mark.integration


def test_a_fifth_connection_replaces_the_oldest(
    h: Harness, alice: TestUser, bob: TestUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[str] = []
    monkeypatch.setattr(Connections, "close", lambda self, cid: closed.append(cid))
    # Given bob holds four connections, opened one after another
    bobs = []
    for _ in range(MAX_CONNECTIONS_PER_DEVICE):
        bobs.append(h.connect(bob))
        h.clock.advance(1)
    assert closed == []
    # When he opens a fifth
    newest = h.connect(bob)
    # Then the oldest is told why, forgotten, and closed; the others stay
    [replaced] = h.posts.of_type(bobs[0].connection_id, "error")
    assert replaced["code"] == "REPLACED"
    assert closed == [bobs[0].connection_id]
    profile = h.services.profiles.get_profile("bob")
    assert profile is not None
    assert set(profile.connections) == {c.connection_id for c in (*bobs[1:], newest)}
    # And a message reaches the four that stay, not the one replaced
    a = h.connect(alice)
    assert h.send(a, h.message(a, bob, "hi", "msg-cc0001"))["type"] == "ack"
    assert h.posts.of_type(bobs[0].connection_id, "message") == []
    for connection in (*bobs[1:], newest):
        assert len(h.posts.of_type(connection.connection_id, "message")) == 1
    # And its own $disconnect, when it comes, changes nothing more: bob stays online
    h.disconnect(bobs[0])
    assert h.send(a, {"action": "getPresence", "userIds": ["bob"]})["users"][0]["online"]


def test_two_hundred_connections_leave_four(h: Harness, bob: TestUser) -> None:
    # The finding: one user held 200 connections, and each message became 200 posts
    for _ in range(20):
        h.connect(bob)
        h.clock.advance(0.01)
    profile = h.services.profiles.get_profile("bob")
    assert profile is not None and len(profile.connections) == MAX_CONNECTIONS_PER_DEVICE
