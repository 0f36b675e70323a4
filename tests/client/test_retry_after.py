"""The SDK honours `retryAfter` (docs/protocol.md §3): a message refused QUEUE_FULL or
RATE_LIMITED stays in the outbox and goes again no sooner than the server said; a sync
page refused RATE_LIMITED is asked for again on the same connection."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from messenger.contract import Env
from messenger_client.store import MessageStatus
from messenger_local import EmbeddedAws, LocalStack
from messenger_local.harness import retry_at_once, throttle_dynamodb, throttled_answer
from tests.client.conftest import FAST, Clients
from tests.support.waiting import until

pytestmark = pytest.mark.e2e


def outcomes(stack: LocalStack) -> list[str]:
    return [i.outcome for i in stack.invocations_of("sendMessage")]


def throttle_queue_calls(stack: LocalStack, operation: str, times: int) -> list[int]:
    """The next `times` calls of a DynamoDB `operation` on the Queue table throttled (a
    sync's Query, an ack's BatchGetItem); those on other tables (the presence function's
    Query, a send's profiles) not."""
    client = stack.clients.dynamodb
    retry_at_once(client)
    queue = stack.table_names["QUEUE_TABLE"]
    failures: list[int] = []

    def fail(request: Any, **kwargs: Any) -> Any:
        target = request.headers.get("X-Amz-Target", b"").decode()
        if target != f"DynamoDB_20120810.{operation}" or len(failures) >= times:
            return None
        body = json.loads(request.body)
        if queue != body.get("TableName") and queue not in body.get("RequestItems", {}):
            return None
        failures.append(1)
        return throttled_answer(request)

    client.meta.events.register_first("before-send.dynamodb", fail)
    return failures


def refused_then_served(invocations: list[Any]) -> bool:
    """A refusal for load, then the same connection's next frame of that route served."""
    for n, refused in enumerate(invocations):
        if refused.outcome == "error RATE_LIMITED":
            later = [i for i in invocations[n + 1 :] if i.connection_id == refused.connection_id]
            return bool(later) and later[0].outcome == "ok"
    return False


async def test_a_message_refused_queue_full_waits_its_retry_after_and_is_kept(
    shared_aws: EmbeddedAws, clients: Clients
) -> None:
    # Given bob's queue takes one message from any one sender, and bob is offline
    caps = {Env.QUEUE_CAP_PER_SENDER.value: "1"}
    async with LocalStack(aws=shared_aws, environment=caps) as stack:
        await (await clients.open("bob", stack.ws_url)).close()
        alice = await clients.open("alice", stack.ws_url, settings=FAST)
        # When alice writes him twice
        first = await alice.send("bob", "one")
        await alice.wait_sent(first.message_id, timeout=10)
        second = await alice.send("bob", "two")
        await until(lambda: "error QUEUE_FULL" in outcomes(stack), timeout=10)
        # Then the second is refused once and not sent again within the SDK's own resend
        # backoff (1-2 s here): QUEUE_FULL's retryAfter is a minute
        await asyncio.sleep(3 * FAST.resend_cap)
        assert outcomes(stack).count("error QUEUE_FULL") == 1, outcomes(stack)
        # And it is kept, pending, not failed
        kept = alice.history("bob")[-1]
        assert kept.message_id == second.message_id
        assert kept.status == MessageStatus.PENDING
        await clients.close_all()


async def test_a_message_refused_rate_limited_waits_its_retry_after_and_is_kept(
    shared_aws: EmbeddedAws, clients: Clients
) -> None:
    # Given a server that lets a sender burst one message, then one every ten seconds
    limits = {Env.RATE_LIMIT_BURST.value: "1", Env.RATE_LIMIT_PER_MINUTE.value: "6"}
    async with LocalStack(aws=shared_aws, environment=limits) as stack:
        await (await clients.open("bob", stack.ws_url)).close()
        alice = await clients.open("alice", stack.ws_url, settings=FAST)
        # When alice writes him twice
        first = await alice.send("bob", "one")
        await alice.wait_sent(first.message_id, timeout=10)
        second = await alice.send("bob", "two")
        await until(lambda: "error RATE_LIMITED" in outcomes(stack), timeout=10)
        # Then the second is refused once and not sent again within the SDK's own resend
        # backoff (1-2 s here): the rate limit's retryAfter is several seconds
        await asyncio.sleep(3 * FAST.resend_cap)
        assert outcomes(stack).count("error RATE_LIMITED") == 1, outcomes(stack)
        # And it is kept, pending, then sent once the wait is over
        assert alice.history("bob")[-1].message_id == second.message_id
        await alice.wait_sent(second.message_id, timeout=20)
        await clients.close_all()


async def test_a_sync_page_refused_rate_limited_is_asked_for_again_on_the_same_connection(
    shared_aws: EmbeddedAws, clients: Clients
) -> None:
    # Given a message queued for bob while he is offline
    async with LocalStack(aws=shared_aws) as stack:
        await (await clients.open("bob", stack.ws_url)).close()
        alice = await clients.open("alice", stack.ws_url, settings=FAST)
        sent = await alice.send("bob", "queued")
        await alice.wait_sent(sent.message_id, timeout=10)
        await stack.settled()
        # When bob connects while the queue's Query throttles (the sync's read and
        # botocore's four retries: answered RATE_LIMITED with a retryAfter)
        failures = throttle_queue_calls(stack, "Query", times=5)
        bob = await clients.open("bob", stack.ws_url, settings=FAST, wait=False)
        # Then his client asks for the page again once the wait is over, on the same
        # connection (it used to wait for the next one), and has the message
        await until(lambda: [m.text for m in bob.history("alice")] == ["queued"], timeout=15)
        assert len(failures) == 5
        await until(lambda: refused_then_served(stack.invocations_of("sync", user="bob")))
        await clients.close_all()


async def test_a_seen_mark_refused_rate_limited_goes_again_on_the_same_connection(
    shared_aws: EmbeddedAws, clients: Clients
) -> None:
    # Given bob has read alice's message, both online
    async with LocalStack(aws=shared_aws) as stack:
        alice = await clients.open("alice", stack.ws_url, settings=FAST)
        bob = await clients.open("bob", stack.ws_url, settings=FAST)
        sent = await alice.send("bob", "read me")
        await until(lambda: alice.history("bob")[-1].status == MessageStatus.DELIVERED, timeout=10)
        await stack.settled()
        # When bob marks it seen while the receipt's write throttles (the write and
        # botocore's four retries: answered RATE_LIMITED with a retryAfter)
        failures = throttle_dynamodb(stack.clients.dynamodb, "PutItem", times=5)
        await bob.mark_seen("alice")
        # Then his client sends the mark again once the wait is over, on the same
        # connection (it used to wait for the next one), and alice sees it seen
        await until(lambda: alice.history("bob")[-1].status == MessageStatus.SEEN, timeout=15)
        assert alice.history("bob")[-1].message_id == sent.message_id
        assert len(failures) == 5
        await until(lambda: refused_then_served(stack.invocations_of("markSeen", user="bob")))
        await clients.close_all()


async def test_an_ack_refused_rate_limited_goes_again_on_the_same_connection(
    shared_aws: EmbeddedAws, clients: Clients
) -> None:
    # Given alice and bob online
    async with LocalStack(aws=shared_aws) as stack:
        alice = await clients.open("alice", stack.ws_url, settings=FAST)
        await clients.open("bob", stack.ws_url, settings=FAST)
        await stack.settled()
        # When alice writes to him while the ack's read of his queue throttles (the read
        # and botocore's four retries: his ack answered RATE_LIMITED with a retryAfter)
        failures = throttle_queue_calls(stack, "BatchGetItem", times=5)
        sent = await alice.send("bob", "ack me")
        # Then his client sends the ack again once the wait is over, on the same connection
        # (it used to wait for the next one's sync): the message leaves his queue and
        # alice has its `delivered` receipt
        await until(lambda: alice.history("bob")[-1].status == MessageStatus.DELIVERED, timeout=15)
        assert alice.history("bob")[-1].message_id == sent.message_id
        assert len(failures) == 5
        await until(lambda: refused_then_served(stack.invocations_of("ack", user="bob")))
        assert len(stack.invocations_of("$connect", user="bob")) == 1
        await clients.close_all()
