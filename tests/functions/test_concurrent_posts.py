"""A user's connections are posted to together (logic/live_delivery.py): the sender's ack
waits for the slowest post, not for the sum of them, and a gone one is still forgotten."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from messenger.transport.connections import Connections
from tests.support.harness import Harness
from tests.support.identities import TestUser

pytestmark = pytest.mark.integration

POST_SECONDS = 0.3


def test_a_message_to_four_connections_is_posted_to_them_at_once(
    h: Harness, alice: TestUser, bob: TestUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given bob holds four connections, and every post takes 0.3 s (a slow @connections)
    a = h.connect(alice)
    bobs = [h.connect(bob) for _ in range(4)]
    h.send(a, h.message(a, bob, "warm", "msg-cp0000"))  # imports, first calls
    real_post = Connections.post
    in_flight, most = [0], [0]
    lock = threading.Lock()

    def slow_post(self: Connections, connection_id: str, frame: Any) -> None:
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        time.sleep(POST_SECONDS)
        with lock:
            in_flight[0] -= 1
        real_post(self, connection_id, frame)

    monkeypatch.setattr(Connections, "post", slow_post)
    # When alice sends him a message
    started = time.monotonic()
    reply = h.send(a, h.message(a, bob, "hi", "msg-cp0001"))
    took = time.monotonic() - started
    # Then her ack came after about one post's time, not four, and every connection got it
    assert reply is not None and reply["type"] == "ack", reply
    assert most[0] == 4
    assert took < 3 * POST_SECONDS, took
    for connection in bobs:
        assert len(h.posts.of_type(connection.connection_id, "message")) == 2


def test_a_gone_connection_among_several_is_forgotten_and_the_others_get_the_frame(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    a = h.connect(alice)
    phone, laptop, tablet = h.connect(bob), h.connect(bob), h.connect(bob)
    h.posts.gone.add(laptop.connection_id)
    assert h.send(a, h.message(a, bob, "hi", "msg-cp0002"))["type"] == "ack"
    profile = h.services.profiles.get_profile("bob")
    assert profile is not None and laptop.connection_id not in profile.connections
    for connection in (phone, tablet):
        assert len(h.posts.of_type(connection.connection_id, "message")) == 1
