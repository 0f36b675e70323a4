"""sendMessage, ack, markSeen and sync: delivery, idempotency, receipts, order, expiry."""

from __future__ import annotations

from typing import Any

import pytest

from messenger.contract import DEFAULT_MESSAGE_TTL_SECONDS
from tests.support.harness import Harness
from tests.support.identities import TestUser

pytestmark = pytest.mark.integration


def test_send_to_online_recipient_acks_and_delivers_live(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    # Given alice and bob online
    a, b = h.connect(alice), h.connect(bob)
    frame = h.message(a, bob, "hello bob", "msg-0001", sent_at=1_764_190_000_123)
    # When alice sends
    reply = h.send(a, frame)
    # Then alice gets `ack sent` as the route response
    assert reply is not None
    assert reply["type"] == "ack" and reply["status"] == "sent"
    assert reply["messageId"] == "msg-0001"
    assert isinstance(reply["serverTs"], int)
    # And bob gets the message frame, from alice (per the connection), decryptable
    [message] = h.posts.of_type(b.connection_id, "message")
    assert message["from"] == "alice"
    assert message["messageId"] == "msg-0001"
    assert message["sentAt"] == 1_764_190_000_123
    assert message["serverTs"] == reply["serverTs"]
    assert message["body"] == frame["body"] and message["nonce"] == frame["nonce"]
    assert bob.decrypt_from(alice, message["body"], message["nonce"]) == "hello bob"
    # And it stays queued until bob acks it
    assert len(h.queue_of(bob)) == 1


def test_send_to_recipient_with_three_connections_reaches_each(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    a = h.connect(alice)
    devices = [h.connect(bob) for _ in range(3)]
    h.send(a, h.message(a, bob, "to all devices", "msg-0002"))
    for device in devices:
        assert [m["messageId"] for m in h.posts.of_type(device.connection_id, "message")] == [
            "msg-0002"
        ]


def test_offline_recipient_gets_it_on_sync(h: Harness, alice: TestUser, bob: TestUser) -> None:
    # Given bob registered but offline
    h.disconnect(h.connect(bob))
    a = h.connect(alice)
    reply = h.send(a, h.message(a, bob, "while you were away", "msg-0003"))
    assert reply is not None and reply["type"] == "ack"
    # When bob comes back and syncs
    b = h.connect(bob)
    assert h.send(b, {"action": "sync"}) is None
    frames = h.posts.take(b.connection_id)
    # Then the message comes, then syncDone with the count
    assert [f["type"] for f in frames] == ["message", "syncDone"]
    assert frames[0]["messageId"] == "msg-0003" and frames[0]["from"] == "alice"
    assert frames[1]["count"] == 1


def test_resend_of_the_same_frame_acks_again_and_never_delivers_twice(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    a, b = h.connect(alice), h.connect(bob)
    frame = h.message(a, bob, "once", "msg-0004")
    first = h.send(a, frame)
    second = h.send(a, frame)
    assert first == second
    assert len(h.posts.of_type(b.connection_id, "message")) == 1
    assert len(h.queue_of(bob)) == 1


def test_resend_with_other_content_keeps_the_first_copy(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    h.disconnect(h.connect(bob))
    a = h.connect(alice)
    h.send(a, h.message(a, bob, "first", "msg-0005"))
    h.send(a, h.message(a, bob, "second", "msg-0005"))
    b = h.connect(bob)
    h.send(b, {"action": "sync"})
    [message] = h.posts.of_type(b.connection_id, "message")
    assert bob.decrypt_from(alice, message["body"], message["nonce"]) == "first"


def test_same_message_id_from_two_senders_are_two_messages(
    h: Harness, alice: TestUser, bob: TestUser, carol: TestUser
) -> None:
    a, c = h.connect(alice), h.connect(carol)
    h.connect(bob)
    h.send(a, h.message(a, bob, "from alice", "same-id-1"))
    h.send(c, h.message(c, bob, "from carol", "same-id-1"))
    assert len(h.queue_of(bob)) == 2


def test_ack_deletes_and_sends_delivered_receipt_to_online_sender(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    a, b = h.connect(alice), h.connect(bob)
    h.send(a, h.message(a, bob, "one", "msg-0006"))
    h.send(a, h.message(a, bob, "two", "msg-0007"))
    ids = [m["id"] for m in h.posts.of_type(b.connection_id, "message")]
    # When bob acks both in one frame
    assert h.send(b, {"action": "ack", "ids": ids}) is None
    # Then nothing about them is left, and alice gets one receipt listing both
    assert h.queue_of(bob) == []
    [receipt] = h.posts.of_type(a.connection_id, "receipt")
    assert receipt["status"] == "delivered"
    assert receipt["messageIds"] == ["msg-0006", "msg-0007"]
    assert receipt["by"] == "bob"
    assert isinstance(receipt["at"], int)
    # And the receipt is itself a queue item alice acks
    assert len(h.queue_of(alice)) == 1
    h.send(a, {"action": "ack", "ids": [receipt["id"]]})
    assert h.queue_of(alice) == []


def test_receipt_to_offline_sender_waits_for_sync(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    a, b = h.connect(alice), h.connect(bob)
    h.send(a, h.message(a, bob, "hi", "msg-0008"))
    h.disconnect(a)
    [message] = h.posts.of_type(b.connection_id, "message")
    h.send(b, {"action": "ack", "ids": [message["id"]]})
    a2 = h.connect(alice)
    h.send(a2, {"action": "sync"})
    frames = h.posts.take(a2.connection_id)
    assert [f["type"] for f in frames] == ["receipt", "syncDone"]
    assert frames[0]["messageIds"] == ["msg-0008"] and frames[0]["status"] == "delivered"


def test_one_receipt_per_sender_per_ack_frame(
    h: Harness, alice: TestUser, bob: TestUser, carol: TestUser
) -> None:
    a, b, c = h.connect(alice), h.connect(bob), h.connect(carol)
    h.send(a, h.message(a, bob, "a1", "msg-a-001"))
    h.send(c, h.message(c, bob, "c1", "msg-c-001"))
    h.send(a, h.message(a, bob, "a2", "msg-a-002"))
    ids = [m["id"] for m in h.posts.of_type(b.connection_id, "message")]
    h.send(b, {"action": "ack", "ids": ids})
    assert [r["messageIds"] for r in h.posts.of_type(a.connection_id, "receipt")] == [
        ["msg-a-001", "msg-a-002"]
    ]
    assert [r["messageIds"] for r in h.posts.of_type(c.connection_id, "receipt")] == [["msg-c-001"]]


@pytest.mark.slow  # several seconds of frames: in the full run, not the fast tier
def test_ack_of_100_messages_from_one_sender_makes_one_receipt(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    h.disconnect(h.connect(bob))
    a = h.connect(alice)
    message_ids = [f"msg-{i:05d}" for i in range(100)]
    for message_id in message_ids:
        h.send(a, h.message(a, bob, "x", message_id))
        h.clock.advance(0.5)  # a steady sender, within the default rate limit
    b = h.connect(bob)
    h.send(b, {"action": "sync"})
    ids = [m["id"] for m in h.posts.of_type(b.connection_id, "message")]
    assert len(ids) == 100
    h.send(b, {"action": "ack", "ids": ids})
    assert h.queue_of(bob) == []
    receipts = h.posts.of_type(a.connection_id, "receipt")
    assert len(receipts) == 1
    assert receipts[0]["messageIds"] == message_ids


def test_ack_twice_sends_one_receipt(h: Harness, alice: TestUser, bob: TestUser) -> None:
    a, b = h.connect(alice), h.connect(bob)
    h.send(a, h.message(a, bob, "hi", "msg-0009"))
    [message] = h.posts.of_type(b.connection_id, "message")
    h.send(b, {"action": "ack", "ids": [message["id"]]})
    h.send(b, {"action": "ack", "ids": [message["id"]]})
    assert len(h.posts.of_type(a.connection_id, "receipt")) == 1


def test_ack_of_another_users_item_is_ignored(
    h: Harness, alice: TestUser, bob: TestUser, carol: TestUser
) -> None:
    a, b, c = h.connect(alice), h.connect(bob), h.connect(carol)
    h.send(a, h.message(a, bob, "for bob only", "msg-0010"))
    [message] = h.posts.of_type(b.connection_id, "message")
    # When carol acks bob's item id
    assert h.send(c, {"action": "ack", "ids": [message["id"]]}) is None
    # Then bob's item stays, and alice hears nothing
    assert len(h.queue_of(bob)) == 1
    assert h.posts.of_type(a.connection_id, "receipt") == []


def test_ack_of_unknown_ids_is_ignored(h: Harness, bob: TestUser) -> None:
    b = h.connect(bob)
    before = h.dump()
    assert h.send(b, {"action": "ack", "ids": ["m#nobody#msg-00000", "r#nothing", "zzz"]}) is None
    assert h.dump() == before


def test_mark_seen_sends_seen_receipt(h: Harness, alice: TestUser, bob: TestUser) -> None:
    a, b = h.connect(alice), h.connect(bob)
    h.send(a, h.message(a, bob, "look", "msg-0011"))
    # (answered seenStored once the receipt is queued, docs/protocol.md §7)
    assert h.send(b, {"action": "markSeen", "to": "alice", "messageIds": ["msg-0011"]}) == {
        "type": "seenStored",
        "to": "alice",
        "messageIds": ["msg-0011"],
        "epoch": h.services.epoch.current(),
    }
    [receipt] = h.posts.of_type(a.connection_id, "receipt")
    assert receipt["status"] == "seen" and receipt["by"] == "bob"
    assert receipt["messageIds"] == ["msg-0011"]


def test_mark_seen_for_offline_sender_is_queued(h: Harness, alice: TestUser, bob: TestUser) -> None:
    h.disconnect(h.connect(alice))
    b = h.connect(bob)
    h.send(b, {"action": "markSeen", "to": "alice", "messageIds": ["msg-0012"]})
    a = h.connect(alice)
    h.send(a, {"action": "sync"})
    frames = h.posts.take(a.connection_id)
    assert frames[0]["type"] == "receipt" and frames[0]["status"] == "seen"


def test_order_of_50_messages_is_kept(h: Harness, alice: TestUser, bob: TestUser) -> None:
    h.disconnect(h.connect(bob))
    a = h.connect(alice)
    sent = [f"msg-{i:05d}" for i in range(50)]
    for message_id in sent:
        h.send(a, h.message(a, bob, message_id, message_id))
    b = h.connect(bob)
    h.send(b, {"action": "sync"})
    frames = h.posts.take(b.connection_id)
    assert [f["messageId"] for f in frames[:-1]] == sent
    assert frames[-1] == {
        "type": "syncDone",
        "count": 50,
        "more": False,
        "epoch": "local#0",
        "dv": 0,
    }


def test_sync_interleaves_messages_and_receipts_in_store_order(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    a = h.connect(alice)
    b = h.connect(bob)
    h.send(a, h.message(a, bob, "1", "msg-0101"))
    [message] = h.posts.of_type(b.connection_id, "message")
    h.disconnect(a)
    h.send(b, {"action": "ack", "ids": [message["id"]]})
    h.send(b, h.message(b, alice, "2", "msg-0102"))
    a2 = h.connect(alice)
    h.send(a2, {"action": "sync"})
    assert [f["type"] for f in h.posts.take(a2.connection_id)] == ["receipt", "message", "syncDone"]


NOTHING_LEFT = {"type": "syncDone", "count": 0, "more": False, "epoch": "local#0", "dv": 0}


def test_expired_items_are_never_returned(h: Harness, alice: TestUser, bob: TestUser) -> None:
    # Given a message queued for offline bob
    h.disconnect(h.connect(bob))
    a = h.connect(alice)
    h.send(a, h.message(a, bob, "old news", "msg-0013"))
    # When its TTL passes (moto, like DynamoDB's lagging sweeper, still holds it)
    h.clock.advance(DEFAULT_MESSAGE_TTL_SECONDS + 1)
    assert len(h.queue_of(bob)) == 1
    b = h.connect(bob)
    h.send(b, {"action": "sync"})
    # Then sync does not deliver it
    assert h.posts.take(b.connection_id) == [NOTHING_LEFT]


def stored_anew_and_synced(h: Harness, bob: TestUser, first: Any, second: Any) -> None:
    """A resend after its first copy died: a later ack, and one message in bob's sync."""
    assert first is not None and second is not None
    assert second["serverTs"] > first["serverTs"]
    b = h.connect(bob)
    h.send(b, {"action": "sync"})
    assert [f["type"] for f in h.posts.take(b.connection_id)] == ["message", "syncDone"]


def test_resend_after_expiry_is_stored_anew(h: Harness, alice: TestUser, bob: TestUser) -> None:
    h.disconnect(h.connect(bob))
    a = h.connect(alice)
    frame = h.message(a, bob, "again", "msg-0014")
    first = h.send(a, frame)
    h.clock.advance(DEFAULT_MESSAGE_TTL_SECONDS + 1)
    a = h.connect(alice)
    stored_anew_and_synced(h, bob, first, h.send(a, frame))


def test_a_resend_in_the_second_its_copy_expires_is_stored_anew_and_delivered(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    # Given a message queued for offline bob
    h.disconnect(h.connect(bob))
    a = h.connect(alice)
    frame = h.message(a, bob, "on the edge", "msg-0016")
    first = h.send(a, frame)
    [item] = h.queue_of(bob)
    expires_at = int(item["expiresAt"]["N"])
    # When the clock reaches the very second of its expiry (a read already drops it:
    # docs/protocol.md §4), and alice, unsure, sends the same frame again
    h.clock.advance(expires_at - h.clock.now_ns() / 1e9 + 0.5)
    assert h.clock.now_s() == expires_at
    a = h.connect(alice)
    # Then the resend is stored anew (its own ack), never answered by the dead copy, and
    # bob gets it: nothing acknowledged is lost
    stored_anew_and_synced(h, bob, first, h.send(a, frame))


def test_message_ttl_comes_from_configuration(alice: TestUser, bob: TestUser) -> None:
    from tests.support.harness import harness

    with harness(message_ttl_seconds=60) as h:
        h.disconnect(h.connect(bob))
        a = h.connect(alice)
        h.send(a, h.message(a, bob, "short-lived", "msg-0015"))
        [item] = h.queue_of(bob)
        assert int(item["expiresAt"]["N"]) - h.clock.now_s() in range(58, 61)
        h.clock.advance(61)
        b = h.connect(bob)
        h.send(b, {"action": "sync"})
        assert h.posts.take(b.connection_id) == [NOTHING_LEFT]


def test_sender_can_message_itself(h: Harness, alice: TestUser) -> None:
    a1, a2 = h.connect(alice), h.connect(alice)
    h.send(a1, h.message(a1, alice, "note to self", "msg-0016"))
    assert len(h.posts.of_type(a2.connection_id, "message")) == 1


def test_sender_over_its_rate_is_refused_and_nothing_is_written(
    alice: TestUser, bob: TestUser
) -> None:
    from tests.support.harness import harness

    # Given a limit of 60 a minute with a burst of 3
    with harness(rate_limit_per_minute=60, rate_limit_burst=3) as h:
        h.disconnect(h.connect(bob))
        a = h.connect(alice)
        replies = [h.send(a, h.message(a, bob, "x", f"msg-r{i:04d}")) for i in range(3)]
        assert all(r is not None and r["type"] == "ack" for r in replies)
        # When a fourth comes at once
        before = h.dump(with_limits=True)
        reply = h.send(a, h.message(a, bob, "x", "msg-r0004"))
        # Then it is refused with RATE_LIMITED and nothing changes, its bucket included
        assert reply is not None and reply["code"] == "RATE_LIMITED"
        assert reply["ref"] == "msg-r0004"
        assert h.dump(with_limits=True) == before
        # And once the bucket has leaked a unit, the resend goes through
        h.clock.advance(1.0)
        again = h.send(a, h.message(a, bob, "x", "msg-r0004"))
        assert again is not None and again["type"] == "ack"


def test_rate_limit_is_per_sender(alice: TestUser, bob: TestUser, carol: TestUser) -> None:
    from tests.support.harness import harness

    with harness(rate_limit_per_minute=60, rate_limit_burst=1) as h:
        h.disconnect(h.connect(bob))
        a, c = h.connect(alice), h.connect(carol)
        assert h.send(a, h.message(a, bob, "x", "msg-a0001"))["type"] == "ack"
        assert h.send(a, h.message(a, bob, "x", "msg-a0002"))["code"] == "RATE_LIMITED"
        assert h.send(c, h.message(c, bob, "x", "msg-c0001"))["type"] == "ack"


def test_steady_sender_within_its_rate_is_never_limited(alice: TestUser, bob: TestUser) -> None:
    from tests.support.harness import harness

    with harness(rate_limit_per_minute=60, rate_limit_burst=2) as h:
        h.disconnect(h.connect(bob))
        a = h.connect(alice)
        for i in range(10):
            reply = h.send(a, h.message(a, bob, "x", f"msg-s{i:04d}"))
            assert reply is not None and reply["type"] == "ack", reply
            h.clock.advance(1.0)
