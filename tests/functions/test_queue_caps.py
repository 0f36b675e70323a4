"""Queue caps (docs/protocol.md §2): one queue holds a bounded number of messages, and a
bounded number from any one sender; past either, a message is refused QUEUE_FULL with a
retryAfter and nothing is stored. Counts leave on ack and on expiry. Here the caps are
small (5 a queue, 2 a sender) so that the tests fill them quickly."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from messenger.dal.queue_counts import count_key
from tests.support.harness import Connection, Harness, harness
from tests.support.identities import TestUser

pytestmark = pytest.mark.integration

PER_QUEUE, PER_SENDER = 5, 2


@pytest.fixture
def h() -> Iterator[Harness]:
    with harness(queue_cap_messages=PER_QUEUE, queue_cap_per_sender=PER_SENDER) as running:
        yield running


def counters(h: Harness, recipient: str, *senders: str) -> list[dict[str, Any] | None]:
    """The queue's counter, then each sender's, as stored (None when absent)."""
    return [
        h.dynamodb.get_item(
            TableName=h.settings.limits_table, Key=count_key(recipient, sender), ConsistentRead=True
        ).get("Item")
        for sender in (None, *senders)
    ]


def send(h: Harness, sender: Connection, to: TestUser, message_id: str) -> dict[str, Any]:
    reply = h.send(sender, h.message(sender, to, "x", message_id))
    assert reply is not None
    return reply


def queue_full(reply: dict[str, Any]) -> bool:
    assert reply["type"] == "error" and reply["code"] == "QUEUE_FULL", reply
    assert reply["retryAfter"] >= 1, reply
    return True


def test_a_stranger_fills_only_its_share_and_a_refusal_writes_nothing(
    h: Harness, bob: TestUser, mallory: TestUser, carol: TestUser
) -> None:
    # Given bob is offline and mallory has sent him as many messages as one sender may
    h.disconnect(h.connect(bob))
    m, c = h.connect(mallory), h.connect(carol)
    for i in range(PER_SENDER):
        assert send(h, m, bob, f"msg-m{i:04d}")["type"] == "ack"
    before, counted = h.dump(), counters(h, "bob", "mallory")
    # When mallory sends one more, then it is refused QUEUE_FULL and nothing is written
    assert queue_full(send(h, m, bob, "msg-m9999"))
    assert h.dump() == before
    assert counters(h, "bob", "mallory") == counted
    assert len(h.queue_of(bob)) == PER_SENDER
    # And someone else still reaches bob
    assert send(h, c, bob, "msg-c0001")["type"] == "ack"


def test_a_crowd_fills_the_queue_then_everyone_is_refused_and_nothing_is_written(
    h: Harness, bob: TestUser, alice: TestUser, carol: TestUser, mallory: TestUser
) -> None:
    h.disconnect(h.connect(bob))
    senders = [h.connect(user) for user in (alice, carol, mallory)]
    # Given the queue holds its cap: 2 + 2 + 1
    for n, sender in enumerate([senders[0], senders[0], senders[1], senders[1], senders[2]]):
        assert send(h, sender, bob, f"msg-q{n:04d}")["type"] == "ack"
    before, counted = h.dump(), counters(h, "bob", "alice", "carol", "mallory")
    assert counted[0] is not None and counted[0]["n"]["N"] == str(PER_QUEUE)
    # When mallory, still under her own share, sends one more
    assert queue_full(send(h, senders[2], bob, "msg-q9999"))
    # Then nothing is written: not the message, not a count (hers was taken back)
    assert h.dump() == before
    assert counters(h, "bob", "alice", "carol", "mallory") == counted


def test_an_ack_releases_room_and_a_resend_of_a_stored_message_is_acked_even_when_full(
    h: Harness, bob: TestUser, mallory: TestUser
) -> None:
    m = h.connect(mallory)
    b = h.connect(bob)
    first = send(h, m, bob, "msg-a0001")
    send(h, m, bob, "msg-a0002")
    assert queue_full(send(h, m, bob, "msg-a0003"))
    # A resend of a message still stored gets its same ack, full or not, and no count
    counted = counters(h, "bob", "mallory")
    assert send(h, m, bob, "msg-a0001") == first
    assert counters(h, "bob", "mallory") == counted
    # When bob acknowledges one, there is room for one more
    [message, *_] = h.posts.of_type(b.connection_id, "message")
    assert h.send(b, {"action": "ack", "ids": [message["id"]]}) is None
    assert [c["n"]["N"] for c in counters(h, "bob", "mallory") if c] == ["1", "1"]
    assert send(h, m, bob, "msg-a0003")["type"] == "ack"
    assert queue_full(send(h, m, bob, "msg-a0004"))


def test_messages_that_expire_unacknowledged_release_their_room(
    h: Harness, bob: TestUser, mallory: TestUser
) -> None:
    h.disconnect(h.connect(bob))
    m = h.connect(mallory)
    for i in range(PER_SENDER):
        send(h, m, bob, f"msg-e{i:04d}")
    assert queue_full(send(h, m, bob, "msg-e9999"))
    # When the message TTL has passed (DynamoDB's sweeper need not have run)
    h.clock.advance(h.settings.message_ttl_seconds + 1)
    m = h.connect(mallory)
    # Then the room is back
    assert send(h, m, bob, "msg-e9999")["type"] == "ack"
    assert [c["n"]["N"] for c in counters(h, "bob", "mallory") if c] == ["1", "1"]


def test_receipts_do_not_count(h: Harness, alice: TestUser, bob: TestUser) -> None:
    # Given alice's queue is full of bob's messages... from bob's share, and bob reads hers
    a, b = h.connect(alice), h.connect(bob)
    for i in range(PER_SENDER):
        send(h, b, alice, f"msg-r{i:04d}")
        send(h, a, bob, f"msg-s{i:04d}")
    # When bob marks alice's messages seen, the receipts queue for alice all the same
    reply = h.send(b, {"action": "markSeen", "to": "alice", "messageIds": ["msg-s0000"]})
    assert reply is None or reply["type"] != "error", reply
    kinds = [item["kind"]["S"] for item in h.queue_of(alice)]
    assert kinds.count("receipt") == 1 and kinds.count("message") == PER_SENDER


def test_concurrent_sends_never_pass_a_cap(h: Harness, bob: TestUser, mallory: TestUser) -> None:
    h.disconnect(h.connect(bob))
    phone, laptop = h.connect(mallory), h.connect(mallory)
    frames = [
        ((phone, laptop)[i % 2], h.message(phone, bob, "x", f"msg-k{i:04d}")) for i in range(12)
    ]
    with ThreadPoolExecutor(max_workers=8) as pool:
        replies = list(pool.map(lambda pair: h.send(*pair), frames))
    kinds = [reply["type"] if reply["type"] == "ack" else reply["code"] for reply in replies]
    assert kinds.count("ack") == PER_SENDER, kinds
    assert kinds.count("QUEUE_FULL") == 12 - PER_SENDER, kinds
    assert len(h.queue_of(bob)) == PER_SENDER
    assert [c["n"]["N"] for c in counters(h, "bob", "mallory") if c] == ["2", "2"]
