"""The SDK honours `retryAfter` (docs/protocol.md §3): a message refused QUEUE_FULL or
RATE_LIMITED stays in the outbox and goes again no sooner than the server said; a sync
page refused RATE_LIMITED is asked for again on the same connection."""

from __future__ import annotations

import asyncio

import pytest

from messenger.contract import Env
from messenger_client.store import MessageStatus
from messenger_local import EmbeddedAws, LocalStack
from messenger_local.harness import throttle_dynamodb
from tests.client.conftest import FAST, Clients
from tests.support.waiting import until

pytestmark = pytest.mark.e2e


def outcomes(stack: LocalStack) -> list[str]:
    return [i.outcome for i in stack.invocations_of("sendMessage")]


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
        failures = throttle_dynamodb(stack.clients.dynamodb, "Query", times=5)
        bob = await clients.open("bob", stack.ws_url, settings=FAST, wait=False)
        # Then his client asks for the page again once the wait is over, on the same
        # connection (it used to wait for the next one), and has the message
        await until(lambda: [m.text for m in bob.history("alice")] == ["queued"], timeout=15)
        assert len(failures) == 5
        syncs = stack.invocations_of("sync", user="bob")[-2:]
        assert [s.outcome for s in syncs] == ["error RATE_LIMITED", "ok"], syncs
        assert syncs[0].connection_id == syncs[1].connection_id
        await clients.close_all()
