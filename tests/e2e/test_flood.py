"""One user flooding every action must not slow, refuse or lose anything of another's
(issue 12, 2): through the local stack, with real WebSocket clients."""

from __future__ import annotations

import asyncio
import contextlib
import math
import statistics
import time
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from messenger_local import LocalStack
from tests.support.identities import TestUser
from tests.support.stack_fixtures import Connect
from tests.support.ws_client import WsClient, message_frame

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FLOOD_FRAMES_PER_ACTION = 200
CHAT_MESSAGES = 60
P99_PING_LIMIT_SECONDS = 0.2


def flood_frames(mallory: TestUser, alice: TestUser, round_: int) -> list[dict[str, Any]]:
    """One frame of every action, aimed at alice where an action names someone."""
    return [
        message_frame(mallory, alice, "spam", f"msg-f{round_:06d}"),
        {"action": "ack", "ids": [f"r#{round_}"]},
        {"action": "markSeen", "to": "alice", "messageIds": [f"msg-f{round_:06d}"]},
        {"action": "sync"},
        {"action": "getPresence", "userIds": ["alice"], "subscribe": True},
        {"action": "getKeys", "userId": "alice"},
        {"action": "registerPush", "platform": "GCM", "token": "t" * 160},
        {"action": "ping"},
        {"action": "setPresenceVisibility", "visibility": "nobody"},
    ]


async def flood(client: WsClient, frames: list[dict[str, Any]]) -> None:
    """Send everything as fast as the socket takes it, reading nothing back, until the
    server closes the connection for its refused frames (docs/protocol.md §3). (It yields
    after each frame: a real attacker is another process, not a loop hogging ours.)"""
    with contextlib.suppress(ConnectionClosed):
        for frame in frames:
            await client.send(frame)
            await asyncio.sleep(0)


async def timed(client: WsClient, frame: dict[str, Any], answer: str) -> float:
    """Seconds from sending a frame to its answer (frames of other types wait their turn)."""
    started = time.perf_counter()
    await client.send(frame)
    await client.next_of(answer, timeout=30)
    return time.perf_counter() - started


async def chat(alice: WsClient, bob: WsClient, rtts: list[float]) -> None:
    """Alice writes to bob one message at a time, as the SDK does; both ping in between."""
    for n in range(CHAT_MESSAGES):
        rtts.append(await timed(alice, {"action": "ping"}, "pong"))
        rtts.append(await timed(bob, {"action": "ping"}, "pong"))
        await timed(alice, message_frame(alice.user, bob.user, f"#{n}", f"msg-c{n:04d}"), "ack")
        message = await bob.next_of("message", timeout=30)
        assert message["from"] == "alice" and message["messageId"] == f"msg-c{n:04d}"
        await bob.send({"action": "ack", "ids": [message["id"]]})
        await asyncio.sleep(0.05)


async def test_a_flood_of_every_action_leaves_another_user_s_chat_untouched(
    stack: LocalStack, connect: Connect, alice: TestUser, bob: TestUser, mallory: TestUser
) -> None:
    # Given alice and bob online, and mallory, a stranger
    a, b = await connect(alice), await connect(bob)
    m = await connect(mallory)
    frames = [f for r in range(FLOOD_FRAMES_PER_ACTION) for f in flood_frames(mallory, alice, r)]
    # When mallory floods every action (at alice where she can) while alice and bob chat
    rtts: list[float] = []
    await asyncio.gather(flood(m, frames), chat(a, b, rtts))
    # Then every message of theirs went through in order (chat checks each one), and
    # neither was refused anything
    await stack.settled(timeout=120)
    for client in (a, b):
        with contextlib.suppress(TimeoutError):
            while True:
                await client.next_of("error", timeout=0.5)
                pytest.fail(f"{client.user.user_id} was refused something")
    # And mallory, only mallory, met the rate limits (every action's: test_rate_limits.py),
    # until her connection was closed for sending too many refused frames
    assert {i.user for i in stack.invocations if i.outcome == "error RATE_LIMITED"} == {"mallory"}
    closing = await m.next_of("error", timeout=30)
    while closing["code"] != "TOO_MANY_REFUSED":
        closing = await m.next_of("error", timeout=30)
    assert (await m.closed())[0] == 1008
    # And their pings stayed fast
    rtts.sort()
    p99 = rtts[math.ceil(len(rtts) * 0.99) - 1]
    print(
        f"pings during the flood: p50 {statistics.median(rtts) * 1000:.0f} ms, "
        f"p99 {p99 * 1000:.0f} ms, max {rtts[-1] * 1000:.0f} ms"
    )
    assert p99 < P99_PING_LIMIT_SECONDS
