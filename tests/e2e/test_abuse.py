"""Abuse through the real stack: frames API Gateway itself refuses, and frames our
functions refuse, all leave the tables as they were."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.exceptions import ConnectionClosed

from messenger.contract import Env
from messenger_local import EmbeddedAws, LocalStack
from messenger_protocol.limits import MAX_FRAME_BYTES, MAX_REFUSED_FRAMES
from tests.support.harness import throttle_dynamodb
from tests.support.identities import TestUser
from tests.support.stack_fixtures import Connect, dump
from tests.support.waiting import until
from tests.support.ws_client import connect_as, handshake_status, message_frame, signed_url

pytestmark = pytest.mark.e2e


async def closed_with(client, timeout: float = 5.0) -> int | None:
    try:
        await asyncio.wait_for(client.socket.recv(), timeout)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None
    return None


async def test_non_utf8_text_frame_closes_with_1007_and_writes_nothing(
    stack: LocalStack, connect: Connect, alice: TestUser
) -> None:
    client = await connect(alice)
    await stack.settled()
    before = await asyncio.to_thread(dump, stack)
    # A text frame whose payload is not UTF-8 (websockets sends the bytes as they are)
    await client.socket.send(b'{"action":"ping","x":"\xff\xfe"}', text=True)
    assert await closed_with(client) == 1007
    await stack.settled()
    after = await asyncio.to_thread(dump, stack)
    # Nothing but the connection's own departure changed
    users = stack.table_names["USERS_TABLE"]

    def profiles(state: dict[str, list[dict]]) -> list[str]:
        return [item["userId"]["S"] for item in state[users] if item["sk"]["S"] == "PROFILE"]

    assert profiles(after) == profiles(before)
    assert after[stack.table_names["QUEUE_TABLE"]] == before[stack.table_names["QUEUE_TABLE"]]


@pytest.mark.parametrize(
    "body",
    [
        "[" * 5_000 + "]" * 5_000,  # deeply nested JSON, under the frame limit
        json.dumps(
            {
                "action": "sendMessage",
                "messageId": "msg-00000001",
                "to": "bob",
                "from": "bob",
                "body": "A" * 20,
                "nonce": "A" * 32,
                "sentAt": 1,
                "junk": {"a": [{"b": [1] * 2000}]},
            }
        ),
        json.dumps({"action": "ack", "ids": ["m#bob#msg-00000001"] * 101}),
        "\u0000\u0001 not json",
    ],
)
async def test_hostile_frames_are_refused_or_ignored_and_change_nothing(
    stack: LocalStack, connect: Connect, alice: TestUser, bob: TestUser, body: str
) -> None:
    await (await connect(bob)).close()
    client = await connect(alice)
    await stack.settled()
    before = await asyncio.to_thread(dump, stack)
    await client.send(body)
    reply = await client.next()
    await stack.settled()
    assert reply["type"] in {"error", "ack"}
    if reply["type"] == "error":
        assert reply["code"] in {"BAD_REQUEST", "UNKNOWN_ACTION", "UNKNOWN_RECIPIENT"}
        assert await asyncio.to_thread(dump, stack) == before
    else:
        # The impersonation attempt: the message is stored as alice's, not bob's
        queue = (await asyncio.to_thread(dump, stack))[stack.table_names["QUEUE_TABLE"]]
        assert [item["sender"]["S"] for item in queue] == ["alice"]


# --- issue 12: one user must never lock out, impersonate, spam or watch another ----------


def presence_items(state: dict[str, list[dict]], stack: LocalStack) -> list[dict]:
    """Subscriptions and watch lists left in the Users table."""
    return [
        item
        for item in state[stack.table_names["USERS_TABLE"]]
        if item["sk"]["S"].startswith(("SUB#", "WATCH#"))
    ]


def attack(victim: str, frames: int) -> list[dict]:
    """getPresence frames of 100 ids, each naming the victim, subscribing."""
    return [
        {
            "action": "getPresence",
            "userIds": [victim, *(f"x{n}-{k}" for k in range(99))],
            "subscribe": True,
        }
        for n in range(frames)
    ]


@pytest.mark.parametrize("frames", [3, 250])
async def test_subscribe_and_close_leaves_nothing_and_the_victim_connects_as_usual(
    stack: LocalStack, connect: Connect, bob: TestUser, mallory: TestUser, frames: int
) -> None:
    # Given bob, registered and offline
    await (await connect(bob)).close()
    # When mallory sends her subscribe frames and closes at once, waiting for nothing
    m = await connect(mallory)
    for frame in attack("bob", frames):
        await m.send(frame)
    await m.socket.close()
    # (her $disconnect starts once the gateway has seen the close; then let all finish)
    await until(
        lambda: [
            i for i in stack.invocations_of("$disconnect") if i.connection_id == m.connection_id
        ],
        timeout=60,
    )
    await stack.settled(timeout=120)
    # Then nothing she subscribed to is left behind
    assert presence_items(await asyncio.to_thread(dump, stack), stack) == []
    # And bob's handshake succeeds, as fast as anyone's, leaving exactly his connection
    b = await connect(bob)
    await stack.settled()
    connects = stack.invocations_of("$connect")
    assert [i.status for i in connects] == [200] * len(connects)
    usual = sorted(i.duration_ms for i in connects[:-1])[len(connects) // 2 - 1]
    assert connects[-1].duration_ms < max(10 * usual, 1000), connects
    state = await asyncio.to_thread(dump, stack)
    (profile,) = [
        item
        for item in state[stack.table_names["USERS_TABLE"]]
        if item["pk"]["S"] == "U#bob" and item["sk"]["S"] == "PROFILE"
    ]
    assert list(profile["conns"]["M"]) == [b.connection_id]


async def test_sixty_sends_pipelined_from_two_devices_are_all_acked(
    stack: LocalStack, connect: Connect, alice: TestUser, bob: TestUser
) -> None:
    # Given a fresh sender with two devices (the default limit: a burst of 60)
    await (await connect(bob)).close()
    phone, laptop = await connect(alice), await connect(alice)
    frames = [message_frame(alice, bob, f"#{i}", f"msg-p{i:04d}") for i in range(60)]
    # When 30 leave each device back to back, none waiting for an ack
    await asyncio.gather(
        *(phone.send(f) for f in frames[::2]), *(laptop.send(f) for f in frames[1::2])
    )
    # Then all 60 are acked
    replies = [await phone.next(timeout=30) for _ in range(30)]
    replies += [await laptop.next(timeout=30) for _ in range(30)]
    assert [r["type"] for r in replies] == ["ack"] * 60, [r for r in replies if r["type"] != "ack"]


@pytest.mark.parametrize("user_id", ["ALICE-8491ef", "Alice-8491ef", ".", "..", "-", "..."])
async def test_look_alike_ids_are_refused(
    stack: LocalStack, connect: Connect, user_id: str
) -> None:
    await (await connect(TestUser("alice-8491ef"))).close()
    assert await handshake_status(signed_url(stack.ws_url, TestUser(user_id))) == 403


async def test_a_fifth_connection_of_a_device_closes_the_oldest_with_1008(
    stack: LocalStack, connect: Connect, bob: TestUser
) -> None:
    # Given bob holds four connections (docs/protocol.md §1: at most 4 per device)
    clients = []
    for _ in range(4):
        clients.append(await connect(bob))
        await asyncio.sleep(0.01)
    # When he opens a fifth
    newest = await connect(bob)
    # Then the oldest is told REPLACED and closed with 1008; the newest works
    replaced = await clients[0].next()
    assert replaced["type"] == "error" and replaced["code"] == "REPLACED", replaced
    assert "ref" not in replaced  # it names no frame (docs/protocol.md §3)
    assert (await clients[0].closed())[0] == 1008
    pong = await newest.request({"action": "ping"})
    assert pong["type"] == "pong"
    await clients[1].nothing_more()


async def test_a_connection_that_keeps_sending_refused_frames_is_closed_with_1008(
    stack: LocalStack, connect: Connect, alice: TestUser
) -> None:
    # Given alice's client sends frames no route knows, one after another, for a second
    # or two (well within a minute)
    client = await connect(alice)
    replies = []
    for n in range(150):
        reply = await client.request({"action": "noSuchAction"} if n % 2 else "not json")
        replies.append(reply["code"])
        if reply["code"] == "TOO_MANY_REFUSED":
            break
        await asyncio.sleep(0.01)
    # Then the 101st refused frame within the minute is answered with why, and the
    # connection closed with 1008 (docs/protocol.md §3)
    assert replies[-1] == "TOO_MANY_REFUSED", replies
    assert len(replies) == MAX_REFUSED_FRAMES + 1, len(replies)
    assert set(replies[:-1]) == {"UNKNOWN_ACTION", "BAD_REQUEST"}
    assert (await client.closed())[0] == 1008


async def test_a_message_over_32_kb_in_several_frames_is_too_large_and_stores_nothing(
    stack: LocalStack, connect: Connect, alice: TestUser, bob: TestUser
) -> None:
    # Given a sendMessage within its body's limit, padded with a field no frame defines
    # to more than 32,768 bytes, which the client sends as two frames of 32 KB or less
    await (await connect(bob)).close()
    client = await connect(alice)
    frame = message_frame(alice, bob, "hi", "msg-big00001") | {"pad": "x" * MAX_FRAME_BYTES}
    text = json.dumps(frame)
    await stack.settled()
    before = await asyncio.to_thread(dump, stack)
    # When it reaches the server whole (API Gateway joins a message's frames)
    await client.socket.send(iter([text[: MAX_FRAME_BYTES - 1000], text[MAX_FRAME_BYTES - 1000 :]]))
    # Then it is refused TOO_LARGE, naming it, and nothing is stored (docs/protocol.md §3)
    refused = await client.next()
    assert refused["code"] == "TOO_LARGE" and refused["ref"] == "msg-big00001", refused
    await stack.settled()
    assert await asyncio.to_thread(dump, stack) == before


async def test_a_stranger_flooding_a_queue_meets_queue_full_with_retry_after(
    shared_aws: EmbeddedAws, alice: TestUser, mallory: TestUser
) -> None:
    # Given a stack whose queues take 3 messages from any one sender
    caps = {Env.QUEUE_CAP_PER_SENDER.value: "3"}
    async with LocalStack(aws=shared_aws, environment=caps) as stack:
        await (await connect_as(stack.ws_url, alice)).close()
        m = await connect_as(stack.ws_url, mallory)
        await stack.settled()
        # When mallory sends alice (offline) five messages
        replies = []
        for n in range(5):
            frame = message_frame(mallory, alice, f"flood {n}", f"msg-fl{n:04d}")
            replies.append(await m.request(frame))
        # Then three are stored and acked, and the rest refused QUEUE_FULL with a retryAfter
        assert [r["type"] for r in replies[:3]] == ["ack"] * 3, replies
        for refused in replies[3:]:
            assert refused["code"] == "QUEUE_FULL" and refused["retryAfter"] >= 1, refused
        await stack.settled()
        queue = (await asyncio.to_thread(dump, stack))[stack.table_names["QUEUE_TABLE"]]
        assert len([item for item in queue if item["pk"]["S"] == "alice"]) == 3


async def test_a_throttled_table_is_answered_rate_limited_with_retry_after_never_internal(
    shared_aws: EmbeddedAws, alice: TestUser, bob: TestUser
) -> None:
    async with LocalStack(aws=shared_aws) as stack:
        await (await connect_as(stack.ws_url, bob)).close()
        a = await connect_as(stack.ws_url, alice)
        await stack.settled()
        frame = message_frame(alice, bob, "under load", "msg-th0001")
        # Given the functions' table throttles every attempt botocore makes at one write
        failures = throttle_dynamodb(stack.clients.dynamodb, "UpdateItem", times=5)
        # When alice sends, Then she is told to come back later, not that the server broke
        refused = await a.request(frame)
        assert len(failures) == 5
        assert refused["type"] == "error" and refused["code"] == "RATE_LIMITED", refused
        assert 500 <= refused["retryAfter"] <= 1500, refused
        # And the same frame, sent again once the table has recovered, is stored
        acked = await a.request(frame)
        assert acked["type"] == "ack" and acked["messageId"] == "msg-th0001", acked
