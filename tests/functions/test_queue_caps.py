"""Queue caps (docs/protocol.md §2): one queue holds a bounded number of messages, and a
bounded number from any one sender; past either, a message is refused QUEUE_FULL with a
retryAfter and nothing is stored. Counts leave on ack and on expiry. Here the caps are
small (5 a queue, 2 a sender) so that the tests fill them quickly."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from messenger.dal.queue_counts import PRUNE_AT, count_key, sender_tag
from tests.support.devices import LinkedDevice, device_list, sealed_message, set_devices_frame
from tests.support.harness import Connection, Harness, harness
from tests.support.identities import TestUser

pytestmark = pytest.mark.integration

PER_QUEUE, PER_SENDER = 5, 2


@pytest.fixture
def h() -> Iterator[Harness]:
    with harness(queue_cap_messages=PER_QUEUE, queue_cap_per_sender=PER_SENDER) as running:
        yield running


def counters(h: Harness, recipient: str, *senders: str) -> list[int | None]:
    """The queue's count, then each sender's, as stored (None when absent)."""
    item = h.dynamodb.get_item(
        TableName=h.settings.limits_table, Key=count_key(recipient), ConsistentRead=True
    ).get("Item")
    if item is None:
        return [None] * (1 + len(senders))
    by_tag = item["s"]["M"]
    return [
        int(item["n"]["N"]),
        *(int(by_tag[sender_tag(s)]["N"]) if sender_tag(s) in by_tag else None for s in senders),
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
    assert counted == [PER_QUEUE, 2, 2, 1]
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
    assert counters(h, "bob", "mallory") == [1, 1]
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
    assert counters(h, "bob", "mallory") == [1, 1]


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
    assert counters(h, "bob", "mallory") == [2, 2]


def test_senders_whose_messages_are_gone_leave_the_count_once_enough_of_them_are(
    h: Harness, bob: TestUser
) -> None:
    # Given bob has acknowledged one message from each of PRUNE_AT - 1 senders
    b = h.connect(bob)
    senders = [TestUser(f"sender{i:02d}") for i in range(PRUNE_AT)]

    def deliver_and_ack(sender: TestUser) -> None:
        assert send(h, h.connect(sender), bob, "msg-p0001")["type"] == "ack"
        [message] = h.posts.of_type(b.connection_id, "message")[-1:]
        assert h.send(b, {"action": "ack", "ids": [message["id"]]}) is None

    for sender in senders[:-1]:
        deliver_and_ack(sender)
    ids = [s.user_id for s in senders]
    # Then their entries stay, at 0, while they are few
    assert counters(h, "bob", *ids) == [0, *[0] * (PRUNE_AT - 1), None]
    # When one more sender's message is acknowledged, then all of them are removed at once
    deliver_and_ack(senders[-1])
    assert counters(h, "bob", *ids) == [0, *[None] * PRUNE_AT]
    # And a sender counts again from nothing
    assert send(h, h.connect(senders[0]), bob, "msg-p0002")["type"] == "ack"
    assert counters(h, "bob", senders[0].user_id) == [1, 1]


def test_a_message_is_counted_in_and_out_with_one_write_each(
    h: Harness, bob: TestUser, mallory: TestUser
) -> None:
    # Given bob's counter is live (one message came and went)
    b, m = h.connect(bob), h.connect(mallory)
    calls: list[str] = []

    def count_limits_writes(params: dict[str, Any], **_: Any) -> None:
        if params.get("TableName") == h.settings.limits_table and "CAPS" in str(params):
            calls.append(params["UpdateExpression"])

    h.services.dynamodb.meta.events.register(
        "provide-client-params.dynamodb.UpdateItem", count_limits_writes
    )
    for message_id in ("msg-w0001", "msg-w0002"):
        calls.clear()
        # When a message is sent and acknowledged
        assert send(h, m, bob, message_id)["type"] == "ack"
        [message] = h.posts.of_type(b.connection_id, "message")[-1:]
        assert h.send(b, {"action": "ack", "ids": [message["id"]]}) is None
    # Then (the counter live) it is counted in with one write and out with one
    assert len(calls) == 2, calls
    assert counters(h, "bob", "mallory") == [0, 0]


def test_each_device_s_queue_keeps_its_own_caps(h: Harness, alice: TestUser, bob: TestUser) -> None:
    # Given alice on her phone and a laptop, and bob
    phone, b = h.connect(alice), h.connect(bob)
    laptop = LinkedDevice(alice, "laptop")
    alices, bobs = device_list(alice, 1, laptop), device_list(bob, 0)
    assert h.send(phone, set_devices_frame(alices))["type"] == "devices"

    def sealed(message_id: str) -> dict[str, Any]:
        return sealed_message(bob.box_key, alices, bobs, "1", "x", message_id)

    # When bob sends his share, and only her phone acknowledges it
    for n in range(PER_SENDER):
        assert h.send(b, sealed(f"msg-dq{n:04d}"))["type"] == "ack"
    ids = [m["id"] for m in h.posts.of_type(phone.connection_id, "message")]
    h.send(phone, {"action": "ack", "ids": ids})
    # Then the laptop's queue still holds his share: one more is refused, nothing stored
    before = h.dump()
    assert queue_full(h.send(b, sealed("msg-dq9999")))
    assert h.dump() == before
    assert counters(h, "alice", "bob") == [0, 0]
    assert counters(h, "alice#laptop", "bob") == [PER_SENDER, PER_SENDER]
    # And once the laptop acknowledges its copies, bob's next message is stored
    c = h.connect(laptop)
    h.send(c, {"action": "sync"})
    h.send(
        c, {"action": "ack", "ids": [m["id"] for m in h.posts.of_type(c.connection_id, "message")]}
    )
    assert h.send(b, sealed("msg-dq9999"))["type"] == "ack"


def test_a_removed_device_s_counts_go_with_its_queue(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    # Given alice's laptop, offline, holds bob's whole share (her phone acknowledged it)
    phone, b = h.connect(alice), h.connect(bob)
    laptop = LinkedDevice(alice, "laptop")
    alices, bobs = device_list(alice, 1, laptop), device_list(bob, 0)
    assert h.send(phone, set_devices_frame(alices))["type"] == "devices"
    for n in range(PER_SENDER):
        frame = sealed_message(bob.box_key, alices, bobs, "1", "x", f"msg-rm{n:04d}")
        assert h.send(b, frame)["type"] == "ack"
    h.send(
        phone,
        {
            "action": "ack",
            "ids": [m["id"] for m in h.posts.of_type(phone.connection_id, "message")],
        },
    )
    assert counters(h, "alice#laptop", "bob") == [PER_SENDER, PER_SENDER]
    # When her phone removes the laptop, then links it again
    assert h.send(phone, set_devices_frame(device_list(alice, 2)))["type"] == "devices"
    relinked = device_list(alice, 3, laptop)
    assert h.send(phone, set_devices_frame(relinked))["type"] == "devices"
    # Then its queue starts empty, with room for bob's messages
    frame = sealed_message(bob.box_key, relinked, bobs, "1", "x", "msg-rm9999")
    reply = h.send(b, frame)
    assert reply["type"] == "ack", reply
    assert counters(h, "alice#laptop", "bob") == [1, 1]
