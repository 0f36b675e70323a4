"""Faults: crashes between steps, throttling, concurrency. Nothing lost, nothing twice."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError

from messenger.logic.live_delivery import LiveDelivery
from messenger.logic.messaging import Messaging
from tests.support.harness import Harness
from tests.support.identities import TestUser

pytestmark = pytest.mark.integration


def rate_limited(reply: dict[str, Any] | None) -> bool:
    """Storage overloaded past botocore's retries is answered RATE_LIMITED with a
    `retryAfter` of about a second, never INTERNAL (docs/protocol.md §3)."""
    assert reply is not None and reply["type"] == "error", reply
    assert reply["code"] == "RATE_LIMITED", reply
    assert 500 <= reply["retryAfter"] <= 1500, reply
    return True


def test_crash_between_store_and_post_then_retry_delivers_once(
    h: Harness, alice: TestUser, bob: TestUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = h.connect(alice), h.connect(bob)
    frame = h.message(a, bob, "survives a crash", "msg-f001")

    # Given the function dies right after the message is stored
    def crash(*args, **kwargs):
        raise RuntimeError("Lambda died")

    with monkeypatch.context() as patch:
        patch.setattr(Messaging, "deliver", crash)
        first = h.send(a, frame)
    assert first is not None and first["code"] == "INTERNAL"
    # When the sender's SDK resends the same frame
    retry = h.send(a, frame)
    again = h.send(a, frame)
    # Then it is acked (the same ack each time) and stored once
    assert retry is not None and retry["type"] == "ack"
    assert retry == again
    assert len(h.queue_of(bob)) == 1
    # And the recipient gets it exactly once: not live a second time, but on sync
    assert h.posts.of_type(b.connection_id, "message") == []
    h.send(b, {"action": "sync"})
    assert [f["messageId"] for f in h.posts.of_type(b.connection_id, "message")] == ["msg-f001"]


def test_recipient_disconnecting_during_delivery_keeps_the_message(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    a = h.connect(alice)
    phone, laptop = h.connect(bob), h.connect(bob)
    # The laptop closed while the post was on its way
    h.posts.gone.add(laptop.connection_id)
    h.send(a, h.message(a, bob, "hi", "msg-f002"))
    h.disconnect(laptop)  # its $disconnect arrives after the Gone cleanup: harmless
    assert len(h.posts.of_type(phone.connection_id, "message")) == 1
    assert len(h.queue_of(bob)) == 1  # still queued until acked


@pytest.mark.parametrize("operation", ["GetItem", "UpdateItem", "PutItem"])
def test_send_survives_a_brief_throttle(
    h: Harness, alice: TestUser, bob: TestUser, operation: str
) -> None:
    a, b = h.connect(alice), h.connect(bob)
    failures = h.throttle(operation, times=2, code="ProvisionedThroughputExceededException")
    reply = h.send(a, h.message(a, bob, "hi", "msg-f003"))
    assert len(failures) == 2, "the throttle was not hit"
    assert reply is not None and reply["type"] == "ack"
    assert len(h.posts.of_type(b.connection_id, "message")) == 1


# The send reads both profiles (recipient's, sender's devices) in one BatchGetItem.
@pytest.mark.parametrize("operation", ["BatchGetItem", "UpdateItem", "PutItem"])
def test_send_under_lasting_throttle_is_rate_limited_with_retry_after_and_writes_no_message(
    h: Harness, alice: TestUser, bob: TestUser, operation: str
) -> None:
    a, b = h.connect(alice), h.connect(bob)
    before = h.dump()
    h.throttle(operation, times=100)
    reply = h.send(a, h.message(a, bob, "hi", "msg-f004"))
    assert rate_limited(reply)
    assert h.dump() == before
    assert h.posts.of_type(b.connection_id, "message") == []


# The ack reads the queue and the senders' profiles with BatchGetItem (no GetItem).
@pytest.mark.parametrize("operation", ["BatchGetItem", "PutItem", "BatchWriteItem"])
def test_ack_survives_a_brief_throttle(
    h: Harness, alice: TestUser, bob: TestUser, operation: str
) -> None:
    a, b = h.connect(alice), h.connect(bob)
    h.send(a, h.message(a, bob, "hi", "msg-f005"))
    [message] = h.posts.of_type(b.connection_id, "message")
    failures = h.throttle(operation, times=2)
    assert h.send(b, {"action": "ack", "ids": [message["id"]]}) is None
    assert len(failures) == 2
    assert h.queue_of(bob) == []
    assert len(h.posts.of_type(a.connection_id, "receipt")) == 1


@pytest.mark.parametrize("operation", ["BatchGetItem", "PutItem"])
def test_ack_throttled_before_its_receipt_is_written_changes_nothing(
    h: Harness, alice: TestUser, bob: TestUser, operation: str
) -> None:
    a, b = h.connect(alice), h.connect(bob)
    h.send(a, h.message(a, bob, "hi", "msg-f006"))
    [message] = h.posts.of_type(b.connection_id, "message")
    before = h.dump()
    h.throttle(operation, times=100)
    reply = h.send(b, {"action": "ack", "ids": [message["id"]]})
    assert rate_limited(reply)
    assert h.dump() == before


def test_ack_throttled_between_receipt_and_delete_keeps_the_message_and_its_receipt(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    a, b = h.connect(alice), h.connect(bob)
    h.send(a, h.message(a, bob, "hi", "msg-f009"))
    [message] = h.posts.of_type(b.connection_id, "message")
    # Given the receipt is written, then the deletes fail through every retry
    attempts = h.services.dynamodb.meta.config.retries["total_max_attempts"]  # type: ignore[attr-defined]
    failures = h.throttle("BatchWriteItem", times=attempts)
    reply = h.send(b, {"action": "ack", "ids": [message["id"]]})
    assert rate_limited(reply)
    assert len(failures) == attempts
    # Then the message is still queued for bob, and its receipt waits for alice
    assert [i["sk"]["S"] for i in h.queue_of(bob)] == [message["id"]]
    assert [i["kind"]["S"] for i in h.queue_of(alice)] == ["receipt"]
    # When bob's SDK acks again once DynamoDB is back
    assert h.send(b, {"action": "ack", "ids": [message["id"]]}) is None
    # Then the message is gone, and alice has its receipt twice: the trade for writing
    # receipt and delete without a transaction (never a deletion without its receipt)
    assert h.queue_of(bob) == []
    receipts = [i for i in h.queue_of(alice) if i["kind"]["S"] == "receipt"]
    assert [[m["S"] for m in r["messageIds"]["L"]] for r in receipts] == [["msg-f009"]] * 2


def test_ack_whose_receipt_push_is_throttled_still_queues_the_receipt(
    h: Harness, alice: TestUser, bob: TestUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = h.connect(alice), h.connect(bob)
    h.send(a, h.message(a, bob, "hi", "msg-f007"))
    [message] = h.posts.of_type(b.connection_id, "message")
    # The receipt's live post meets overloaded storage (forgetting a gone connection)
    throttled = ClientError(
        {"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "UpdateItem"
    )

    def overloaded(*args: Any, **kwargs: Any) -> int:
        raise throttled

    with monkeypatch.context() as patch:
        patch.setattr(LiveDelivery, "deliver", overloaded)
        reply = h.send(b, {"action": "ack", "ids": [message["id"]]})
    assert rate_limited(reply)
    # The message is gone and its receipt waits for alice's next sync: nothing lost
    assert h.queue_of(bob) == []
    assert [i["kind"]["S"] for i in h.queue_of(alice)] == ["receipt"]
    # And a retry of the ack is harmless
    assert h.send(b, {"action": "ack", "ids": [message["id"]]}) is None
    assert len(h.queue_of(alice)) == 1


def test_two_devices_acking_the_same_items_at_once_leave_nothing_unreceipted(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    a = h.connect(alice)
    phone, laptop = h.connect(bob), h.connect(bob)
    for i in range(5):
        h.send(a, h.message(a, bob, "x", f"msg-c{i:04d}"))
    ids = [m["id"] for m in h.posts.of_type(phone.connection_id, "message")]
    with ThreadPoolExecutor(max_workers=2) as pool:
        replies = list(
            pool.map(lambda c: h.send(c, {"action": "ack", "ids": ids}), [phone, laptop])
        )
    assert replies == [None, None]
    assert h.queue_of(bob) == []
    # Every message has its receipt; racing acks may each have made one (no transaction)
    receipts = h.posts.of_type(a.connection_id, "receipt")
    assert 1 <= len(receipts) <= 2
    for receipt in receipts:
        assert receipt["messageIds"] == [f"msg-c{i:04d}" for i in range(5)]


def test_resend_while_the_first_attempt_runs_stores_and_delivers_once(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    a, b = h.connect(alice), h.connect(bob)
    frame = h.message(a, bob, "racing", "msg-f008")
    with ThreadPoolExecutor(max_workers=4) as pool:
        replies = list(pool.map(lambda _: h.send(a, frame), range(4)))
    assert all(r is not None and r["type"] == "ack" for r in replies)
    assert len({json.dumps(r, sort_keys=True) for r in replies}) == 1
    assert len(h.queue_of(bob)) == 1
    assert len(h.posts.of_type(b.connection_id, "message")) == 1


@pytest.mark.parametrize(
    "code",
    ["ThrottlingException", "ProvisionedThroughputExceededException", "RequestLimitExceeded"],
)
@pytest.mark.parametrize(
    "frame",
    [{"action": "sync"}, {"action": "getKeys", "userId": "bob"}, {"action": "getSettings"}],
    ids=["sync", "getKeys", "getSettings"],
)
def test_every_route_answers_a_lasting_throttle_rate_limited_never_internal(
    h: Harness, alice: TestUser, bob: TestUser, code: str, frame: dict[str, Any]
) -> None:
    # Given the table throttles every call of the frame's path, past botocore's retries
    a = h.connect(alice)
    h.disconnect(h.connect(bob))
    before = h.dump()
    h.throttle("UpdateItem", times=100, code=code)  # the rate-limit bucket every frame takes
    # When alice sends a frame, then it is refused RATE_LIMITED with a retryAfter
    assert rate_limited(h.send(a, frame))
    assert h.dump() == before


def test_a_transaction_cancelled_for_a_throttled_item_is_rate_limited(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    # Given bob is connected, and every transaction is throttled (subscribing writes one)
    a = h.connect(alice)
    h.connect(bob)
    h.throttle("TransactWriteItems", times=100)
    # When alice subscribes to bob's presence
    reply = h.send(a, {"action": "getPresence", "userIds": ["bob"], "subscribe": True})
    # Then she is told to come back later, not that the server broke
    assert rate_limited(reply)
