"""A phone catching up: the SDK syncs a long queue in pages of `items` frames (docs/protocol.md
§2-§3) through the local stack, acking as it stores, and keeps the cell's epoch."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from nacl.public import Box, PublicKey
from nacl.utils import random as random_bytes

from messenger_client.client import MessengerClient
from messenger_client.events import EpochChanged, MessageAdded, Synced
from messenger_local import EmbeddedAws, LocalStack
from messenger_protocol.encoding import b64url_decode, b64url_encode
from tests.client.conftest import MakeClient
from tests.support.identities import TestUser
from tests.support.stack_fixtures import MANY_REGISTRATIONS, Connect

pytestmark = pytest.mark.e2e

SENDERS = 40
PER_SENDER = 50
SENT_AT = 1_764_190_000_000


@pytest.fixture
async def stack(shared_aws: EmbeddedAws) -> AsyncIterator[LocalStack]:
    """The test's stack, letting its 41 users all register from loopback."""
    async with LocalStack(aws=shared_aws, environment=MANY_REGISTRATIONS) as running:
        yield running


def sealed(sender: TestUser, recipient: MessengerClient, text: str, index: int) -> dict[str, Any]:
    recipient_key = PublicKey(b64url_decode(recipient.profile.identity.public_keys.box_key))
    nonce = random_bytes(24)
    plaintext = json.dumps({"text": text}).encode()
    return {
        "action": "sendMessage",
        "messageId": f"{sender.user_id}-{index:06d}",
        "to": recipient.user_id,
        "body": b64url_encode(
            Box(sender.box_key, recipient_key).encrypt(plaintext, nonce).ciphertext
        ),
        "nonce": b64url_encode(nonce),
        "sentAt": SENT_AT + index,
    }


def counting_frames(client: MessengerClient) -> list[str]:
    """The type of every frame the client's connection reads from now on."""
    seen: list[str] = []
    connection = client._connection
    handle = connection._on_frame

    def count(document: dict[str, Any]) -> None:
        seen.append(str(document.get("type")))
        handle(document)

    connection._on_frame = count
    return seen


@pytest.mark.slow
async def test_a_phone_offline_while_2000_messages_arrive_catches_up_in_a_few_dozen_frames(
    client: MakeClient, connect: Connect, stack: LocalStack
) -> None:
    # Given bob registered, then offline (a phone in a pocket)
    phone = await client("bob")
    await phone.close()
    # And 40 people send him 50 messages each meanwhile, each waiting for its ack
    senders = [TestUser(f"sender{i:02d}") for i in range(SENDERS)]
    sockets = [await connect(sender) for sender in senders]

    async def send_all(sender: TestUser, socket: Any) -> None:
        for index in range(PER_SENDER):
            await socket.send(sealed(sender, phone, f"{sender.user_id} says {index}", index))
            ack = await socket.next_of("ack", timeout=30)
            assert ack["messageId"] == f"{sender.user_id}-{index:06d}"

    await asyncio.gather(*(send_all(s, w) for s, w in zip(senders, sockets, strict=True)))
    # When the phone connects once and its SDK syncs (with batch, page after page)
    bob = await client("bob", wait=False)
    frames = counting_frames(bob)
    started = time.monotonic()
    async with bob.events() as events:
        await bob.wait_synced(timeout=120)
        elapsed = time.monotonic() - started
        drained = events.drain()
    added = [e for e in drained if isinstance(e, MessageAdded)]
    [synced] = [e for e in drained if isinstance(e, Synced)]
    # Then every message arrived once, each sender's in order
    assert len(added) == SENDERS * PER_SENDER
    for sender in senders:
        history = bob.history(sender.user_id)
        assert [m.text for m in history] == [
            f"{sender.user_id} says {i}" for i in range(PER_SENDER)
        ]
    # And in a few dozen frames: items frames of up to 32 KB, and one syncDone per page
    catch_up = [kind for kind in frames if kind in ("items", "syncDone", "message", "receipt")]
    print(
        f"\n2,000 messages from 40 senders caught up in {len(catch_up)} frames "
        f"({catch_up.count('items')} items, {catch_up.count('syncDone')} syncDone) "
        f"in {elapsed:.1f} s"
    )
    assert catch_up.count("message") == 0 and catch_up.count("receipt") == 0
    assert len(catch_up) <= 60
    # And nothing is left queued for him
    await stack.settled()
    assert await bob.sync() == 0
    assert synced.count == SENDERS * PER_SENDER


async def test_the_sdk_remembers_the_cells_epoch_and_announces_a_new_one(
    client: MakeClient,
) -> None:
    # Given bob's SDK never synced before
    bob = await client("bob", wait=False)
    async with bob.events() as events:
        await bob.wait_synced()
        # Then the first syncDone's epoch is kept and announced as new
        change = await events.next_of(EpochChanged)
    assert change == EpochChanged(epoch="local#0", previous=None)
    assert bob.epoch == "local#0"
    # And it is kept in his history, for the next start
    await bob.close()
    again = await client("bob")
    assert again.epoch == "local#0"


async def test_a_sync_asked_for_twice_at_once_ends_once_with_everything(
    client: MakeClient, connect: Connect
) -> None:
    bob = await client("bob")
    await bob.close()
    alice = TestUser("alice")
    socket = await connect(alice)
    for index in range(30):
        await socket.send(sealed(alice, bob, f"m{index}", index))
        await socket.next_of("ack")
    bob = await client("bob", wait=False)
    frames = counting_frames(bob)
    await bob.wait_online()
    # When the app asks for a sync while the connection's own is under way
    counts = await asyncio.gather(bob.sync(timeout=30), bob.sync(timeout=30))
    # Then both see the sync end, every message is stored once, and pages never overlapped
    assert len(bob.history("alice")) == 30
    # (both saw the same end: the round started over counts what was still queued then)
    assert counts[0] == counts[1] <= 30
    assert frames.count("syncDone") <= 3
