"""The sender's ack goes out before any post to the recipient (handlers/send_message.py),
and a user's connections, of every device, are posted to together
(logic/live_delivery.py); a gone one is still forgotten, and a failing one leaves its
copy queued without an error for the sender."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from messenger.transport.connections import Connections
from tests.support.devices import LinkedDevice, device_list, sealed_message, set_devices_frame
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
    # Then her ack came after about two posts' time (hers, then bob's four together), not
    # five, and every connection got it
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


def test_the_ack_is_posted_to_the_sender_before_any_post_to_the_recipient(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    # Given bob holds two connections
    a = h.connect(alice)
    bobs = [h.connect(bob) for _ in range(2)]
    h.posts.attempts.clear()
    # When alice sends him a message
    reply = h.send(a, h.message(a, bob, "hi", "msg-cp0003"))
    # Then her ack is the first frame posted, before either of bob's copies
    assert reply is not None and reply["type"] == "ack", reply
    first, *rest = h.posts.attempts
    assert first == a.connection_id
    assert sorted(rest) == sorted(b.connection_id for b in bobs)
    # And a resend (nothing to deliver) is answered by the route, the same ack
    assert h.send(a, h.message(a, bob, "hi", "msg-cp0003"))["messageId"] == "msg-cp0003"
    assert h.posts.attempts[3:] == []


def test_every_device_of_the_recipient_is_posted_to_at_once(
    h: Harness, alice: TestUser, bob: TestUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given bob with three devices, each connected, and alice with one
    a, b1 = h.connect(alice), h.connect(bob)
    laptop, tablet = LinkedDevice(bob, "laptop"), LinkedDevice(bob, "tablet")
    bobs = device_list(bob, 1, laptop, tablet)
    assert h.send(b1, set_devices_frame(bobs))["type"] == "devices"
    b2, b3 = h.connect(laptop), h.connect(tablet)
    # And posts that wait until all three of bob's are in flight (a barrier that breaks
    # after 5 s: posted one device after another, it never fills)
    together = threading.Barrier(3, timeout=5)
    real_post = Connections.post
    bob_connections = {b1.connection_id, b2.connection_id, b3.connection_id}

    def post(self: Connections, connection_id: str, frame: Any) -> None:
        if connection_id in bob_connections:
            together.wait()
        real_post(self, connection_id, frame)

    monkeypatch.setattr(Connections, "post", post)
    # When alice sends one message sealed for his three devices
    frame = sealed_message(alice.box_key, bobs, device_list(alice, 0), "1", "hi", "msg-cp0004")
    reply = h.send(a, frame)
    # Then she has her ack, and every device its copy, the three posts made together
    assert reply is not None and reply["type"] == "ack", reply
    assert not together.broken
    for connection in (b1, b2, b3):
        assert len(h.posts.of_type(connection.connection_id, "message")) == 1


def test_a_post_that_fails_after_the_ack_leaves_the_copy_queued_and_no_error(
    h: Harness, alice: TestUser, bob: TestUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given bob's connection whose posts fail (API Gateway's management API throttling)
    a, b = h.connect(alice), h.connect(bob)
    real_post = Connections.post

    def post(self: Connections, connection_id: str, frame: Any) -> None:
        if connection_id == b.connection_id:
            error = {"Error": {"Code": "LimitExceededException", "Message": "slow down"}}
            raise ClientError(error, "PostToConnection")  # type: ignore[arg-type]
        real_post(self, connection_id, frame)

    monkeypatch.setattr(Connections, "post", post)
    # When alice sends him a message
    reply = h.send(a, h.message(a, bob, "hi", "msg-cp0005"))
    # Then she has her ack and nothing else: no INTERNAL for a message stored
    assert reply is not None and reply["type"] == "ack", reply
    assert h.posts.take(a.connection_id) == []
    # And the copy waits in bob's queue, and reaches him on his next sync
    assert [item["messageId"]["S"] for item in h.queue_of(bob)] == ["msg-cp0005"]
    monkeypatch.setattr(Connections, "post", real_post)
    h.send(b, {"action": "sync"})
    assert [m["messageId"] for m in h.posts.of_type(b.connection_id, "message")] == ["msg-cp0005"]


def test_one_post_or_a_push_to_make_leaves_the_ack_to_the_route(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    # Given bob with one connection
    a = h.connect(alice)
    b = h.connect(bob)
    h.posts.attempts.clear()
    # When alice sends him a message
    reply = h.send(a, h.message(a, bob, "hi", "msg-cp0006"))
    # Then the one post is bob's, and her ack is the route's answer (no post of its own)
    assert reply is not None and reply["type"] == "ack", reply
    assert h.posts.attempts == [b.connection_id]
    # When bob is offline (his device is told by a push, if it registered one)
    h.disconnect(b)
    h.posts.attempts.clear()
    reply = h.send(a, h.message(a, bob, "later", "msg-cp0007"))
    # Then her ack is the route's answer too, and nothing is posted
    assert reply is not None and reply["type"] == "ack", reply
    assert h.posts.attempts == []
    assert [item["messageId"]["S"] for item in h.queue_of(bob)] == ["msg-cp0006", "msg-cp0007"]
