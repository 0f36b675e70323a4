"""Shard moves on a local stack of three cells (docs/protocol.md §6 "Shard moves"):
POST /_local/move, with users online and offline, over real WebSockets."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from messenger.dal.queue import QueuedMessage, new_seq
from messenger_local import LocalStack
from messenger_local.aws import EmbeddedAws
from messenger_local.browser_guard import LOCAL_HEADERS
from messenger_local.moves import MOVE_PATH
from messenger_protocol.cells import shard
from tests.support.cells import user_homed_in
from tests.support.stack_fixtures import MANY_REGISTRATIONS
from tests.support.ws_client import (
    WsClient,
    connect_as,
    handshake_status,
    message_frame,
    signed_url,
)

pytestmark = pytest.mark.e2e

CELLS = ("c0", "c1", "c2")
ALICE = user_homed_in("c0", "alice", CELLS)  # her range moves from c0 to c2
BOB = user_homed_in("c1", "bob", CELLS)  # writes to her from c1 all along
MOVED_CLOSE = 1012


@pytest.fixture
async def three_cells(shared_aws: EmbeddedAws) -> AsyncIterator[LocalStack]:
    async with LocalStack(aws=shared_aws, cells=3, environment=MANY_REGISTRATIONS) as running:
        yield running


def alice_range() -> dict[str, Any]:
    mine = shard(ALICE.user_id, 65536)
    return {"from": "c0", "to": "c2", "lo": mine, "hi": mine}


def post_move(url: str, body: Any) -> tuple[int, Any]:
    """POST /_local/move (answered once the move is done: minutes allowed)."""
    request = urllib.request.Request(
        url, method="POST", data=json.dumps(body).encode(), headers=dict(LOCAL_HEADERS)
    )
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


async def move(stack: LocalStack, body: Any) -> tuple[int, Any]:
    return await asyncio.to_thread(post_move, f"http://127.0.0.1:{stack.port}{MOVE_PATH}", body)


async def send_until_acked(client: WsClient, frame: dict[str, Any], receipts: list[Any]) -> None:
    """Send a message until it is acknowledged, waiting as RATE_LIMITED asks (§3)."""
    while True:
        await client.send(frame)
        while True:
            answer = await client.next(timeout=30)
            if answer["type"] == "receipt":
                receipts.append(answer)
                continue
            break
        if answer["type"] == "ack" and answer["messageId"] == frame["messageId"]:
            return
        assert answer["type"] == "error" and answer["code"] == "RATE_LIMITED", answer
        await asyncio.sleep(answer["retryAfter"] / 1000)


async def test_a_move_with_users_online_loses_and_doubles_nothing(
    three_cells: LocalStack,
) -> None:
    stack = three_cells
    # Given alice online in c0 and bob online in c1
    alice = await connect_as(stack.home_url(ALICE.user_id), ALICE)
    bob = await connect_as(stack.home_url(BOB.user_id), BOB)
    version = stack.directory.version
    sent = [f"msg-live-{n:04d}" for n in range(40)]
    seen: list[str] = []
    receipts: list[Any] = []
    closes: list[int | None] = []
    errors: list[dict[str, Any]] = []

    async def bob_sends() -> None:
        for message_id in sent:
            await send_until_acked(bob, message_frame(BOB, ALICE, message_id, message_id), receipts)
            await asyncio.sleep(0.05)

    async def alice_reads() -> None:
        """Alice acks what she gets (until told to stop); on MOVED she goes to her home by
        the directory, and syncs."""
        nonlocal alice
        while not done.is_set():
            try:
                frame = await alice.next(timeout=0.5)
            except TimeoutError:
                continue
            except ConnectionClosed as closed:
                # Closed by the old home (MOVED, 1012): the directory names her new home.
                closes.append(closed.rcvd.code if closed.rcvd else None)
                alice = await connect_as(stack.home_url(ALICE.user_id), ALICE)
                await alice.send({"action": "sync"})
                continue
            if frame["type"] == "error":
                errors.append(frame)
            if frame["type"] == "message":
                seen.append(frame["messageId"])
                await alice.send({"action": "ack", "ids": [frame["id"]]})

    async def bob_collects_receipts() -> set[str]:
        delivered = {i for r in receipts if r["status"] == "delivered" for i in r["messageIds"]}
        deadline = time.monotonic() + 60
        while delivered != set(sent) and time.monotonic() < deadline:
            try:
                frame = await bob.next(timeout=0.5)
            except TimeoutError:
                continue
            if frame["type"] == "receipt" and frame["status"] == "delivered":
                delivered |= set(frame["messageIds"])
        return delivered

    # When her range moves to c2 while bob sends and she reads
    done = asyncio.Event()
    reading = asyncio.create_task(alice_reads())
    sending = asyncio.create_task(bob_sends())
    await asyncio.sleep(0.3)
    status, answer = await move(stack, alice_range())
    await asyncio.wait_for(sending, 120)
    # Then bob gets a delivered receipt for every message (alice acked each in the end)
    delivered = await bob_collects_receipts()
    done.set()
    await asyncio.wait_for(reading, 10)
    assert delivered == set(sent)
    # And she got every message (a duplicate only where the server sent one again)
    assert set(seen) == set(sent)
    # And the move says what moved, and the directory moved on once, to c2
    assert status == 200, answer
    assert answer["users"] == 1 and answer["version"] == version + 1
    assert answer["seconds"] > 0 and isinstance(answer["items"], int)
    assert stack.directory.version == version + 1 and stack.home_of(ALICE.user_id) == "c2"
    # And her old connection was told MOVED once and closed 1012
    assert closes == [MOVED_CLOSE], (closes, errors)
    assert {frame["code"] for frame in errors} <= {"MOVED", "RATE_LIMITED"}
    assert [frame["code"] for frame in errors].count("MOVED") == 1
    # And nothing is left queued anywhere (the last ack deletes after its receipt)
    ids = [f"m#{BOB.user_id}#{i}" for i in sent]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        left = [stack.cell(cell).services.queue.present(ALICE.user_id, ids) for cell in CELLS]
        if not any(left):
            break
        await asyncio.sleep(0.2)
    assert not any(left), left
    # And her handshake at the old home is refused 403
    assert await handshake_status(signed_url(stack.cell_url("c0"), ALICE)) == 403


@pytest.mark.slow
async def test_an_offline_user_with_a_thousand_queued_items_gets_them_all_in_order(
    three_cells: LocalStack,
) -> None:
    stack = three_cells
    # Given alice registered in c0, offline, with 1,000 messages queued there
    first = await connect_as(stack.home_url(ALICE.user_id), ALICE)
    await first.close()
    queue = stack.cell("c0").services.queue
    now_us = time.time_ns() // 1000
    expected = [f"msg-queued-{n:05d}" for n in range(1000)]
    for n, message_id in enumerate(expected):
        await asyncio.to_thread(
            queue.store_message,
            QueuedMessage(
                recipient=ALICE.user_id,
                sender=BOB.user_id,
                message_id=message_id,
                body="Ym9keQ",
                nonce="A" * 32,
                sent_at=1,
                server_ts=(now_us + n) // 1000,
                seq=new_seq(now_us + n),
                expires_at=(now_us // 1_000_000) + 3600,
            ),
            now_us // 1_000_000,
        )
    # When her range moves to c2
    status, answer = await move(stack, alice_range())
    assert status == 200, answer
    assert (answer["users"], answer["items"]) == (1, 1000)
    # Then at her new home a paged sync gives all of them, in order, once
    alice = await connect_as(stack.home_url(ALICE.user_id), ALICE)
    got: list[str] = []
    request: dict[str, Any] = {"action": "sync"}
    while True:
        await alice.send(request)
        while True:
            frame = await alice.next(timeout=30)
            if frame["type"] == "message":
                got.append(frame["messageId"])
            elif frame["type"] == "syncDone":
                break
        if not frame["more"]:
            break
        request = {"action": "sync", "after": frame["cursor"]}
    assert got == expected


async def test_refused_moves_change_nothing(three_cells: LocalStack) -> None:
    stack = three_cells
    version = stack.directory.version
    c1_first = 65536 // 3 + 1
    cases = [
        ({"from": "c0", "to": "c2", "lo": c1_first, "hi": c1_first + 10}, 400),
        ({"from": "c0", "to": "c7", "lo": 0, "hi": 10}, 400),
        ({"from": "c0", "to": "c2", "lo": 10, "hi": 5}, 400),
        ({"from": "c0", "to": "c2", "lo": "0", "hi": 5}, 400),
        (["not", "an", "object"], 400),
    ]
    for body, expected in cases:
        status, answer = await move(stack, body)
        assert status == expected, (body, answer)
        assert answer["message"]
    assert stack.directory.version == version


async def test_a_move_overlapping_one_running_is_refused_409(three_cells: LocalStack) -> None:
    stack = three_cells
    version = stack.directory.version
    first = asyncio.create_task(move(stack, {"from": "c0", "to": "c2", "lo": 0, "hi": 100}))
    await asyncio.sleep(0.2)
    status, answer = await move(stack, {"from": "c0", "to": "c1", "lo": 50, "hi": 60})
    assert status == 409 and "move" in answer["message"]
    status, answer = await first
    assert status == 200 and answer["version"] == version + 1
