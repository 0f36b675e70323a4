"""A flapping user on the local stack (docs/protocol.md §2): each flap waits on the
presence function's settle queue (moto's SQS, which honours DelaySeconds), the stack's
event source mapping hands it back to the presence function, and a watcher ends with the
user's final state, told once, without an online blip."""

from __future__ import annotations

import time

import pytest

from messenger.contract import PRESENCE_SETTLE_MS, PRESENCE_WORKER
from messenger_local import LocalStack
from tests.support.identities import TestUser
from tests.support.stack_fixtures import Connect

pytestmark = pytest.mark.e2e


async def test_a_flapping_users_watcher_ends_with_the_final_state(
    stack: LocalStack, connect: Connect
) -> None:
    # Given bob online, and alice watching him
    alice, bob = TestUser("alice"), TestUser("bob")
    phone = await connect(bob)
    a = await connect(alice)
    answer = await a.request({"action": "getPresence", "userIds": ["bob"], "subscribe": True})
    assert answer["users"][0]["online"] is True
    # When bob's connection drops and comes back twice, then drops for good, each within
    # a moment of the last
    for _ in range(2):
        await phone.close()
        phone = await connect(bob, with_keys=False)
    await phone.close()
    closed_at = time.monotonic()
    # Then alice hears one frame, offline, once it has held the settle time
    offline = await a.next_of("presence", timeout=5)
    assert offline["users"][0]["userId"] == "bob"
    assert offline["users"][0]["online"] is False
    assert time.monotonic() - closed_at >= PRESENCE_SETTLE_MS / 1000 * 0.9
    await a.nothing_more(within=0.5)
    # And it came from the settle queue: a batch, not an invocation naming bob
    batches = [
        invocation
        for invocation in stack.invocations
        if invocation.route == PRESENCE_WORKER.function_name and invocation.user is None
    ]
    assert batches and all(invocation.status == 200 for invocation in batches)
