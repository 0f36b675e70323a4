"""Blocking through the SDK over the local stack (docs/protocol.md §2 setBlocked and
getSettings): the blocked sender's client sees an ordinary ✓, and nothing arrives."""

from __future__ import annotations

import pytest

from messenger_client import Settings
from messenger_client.events import MessageAdded
from messenger_client.store import MessageStatus
from messenger_protocol.names import PresenceVisibility
from tests.client.conftest import MakeClient

pytestmark = pytest.mark.e2e


async def test_set_blocked_and_get_settings_round_trip(client: MakeClient) -> None:
    bob = await client("bob")
    assert await bob.set_blocked(add=["mallory", "eve"]) == 2
    assert await bob.set_blocked(remove=["eve"]) == 1
    settings = await bob.get_settings()
    assert isinstance(settings, Settings)
    assert settings.blocked == ("mallory",)
    assert settings.visibility in set(PresenceVisibility)
    assert await bob.set_blocked(user_ids=[]) == 0
    assert (await bob.get_settings()).blocked == ()


async def test_bad_input_is_refused_before_anything_is_sent(client: MakeClient) -> None:
    bob = await client("bob")
    await bob.set_blocked(add=["mallory"])
    for bad in (
        {"add": ["Mallory"]},
        {"add": ["a"], "user_ids": ["b"]},
        {"user_ids": [f"u{i}" for i in range(1001)]},
        {},
    ):
        with pytest.raises(ValueError):
            await bob.set_blocked(**bad)
    assert (await bob.get_settings()).blocked == ("mallory",)


async def test_a_blocked_sender_sees_sent_and_nothing_arrives(client: MakeClient) -> None:
    bob, mallory, alice = await client("bob"), await client("mallory"), await client("alice")
    await bob.set_blocked(add=["mallory"])
    async with bob.events() as events:
        # When mallory and then alice write to bob
        sent = await mallory.send_and_wait("bob", "let me in")
        await alice.send_and_wait("bob", "hello")
        # Then mallory's message is stored as sent on her side, like any other
        assert sent.status == MessageStatus.SENT
        # And bob gets alice's message only
        added = await events.next_of(MessageAdded, lambda e: not e.message.outgoing)
        assert added.message.sender == "alice"
        with pytest.raises(TimeoutError):
            await events.next_of(MessageAdded, lambda e: e.message.sender == "mallory", timeout=1.0)
    assert bob.history("mallory") == []
