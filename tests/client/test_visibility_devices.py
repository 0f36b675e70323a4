"""Presence visibility is the user's, not a device's (docs/protocol.md §2, §8): devices add
the people they write to without replacing each other's, a linked device does not impose
its app's default, and a choice made on any device holds for all of them. Real clients on
the local stack."""

from __future__ import annotations

from pathlib import Path

import pytest

from messenger_client.devices import link_code
from messenger_client.keystore import Profile
from messenger_local import LocalStack
from messenger_protocol.names import PresenceVisibility
from tests.client.conftest import FAST, VISIBLE, Clients, MakeClient

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CONTACTS, EVERYONE = PresenceVisibility.CONTACTS, PresenceVisibility.EVERYONE


async def test_devices_add_contacts_to_one_list_and_a_choice_holds_for_all(
    home: Path, stack: LocalStack, clients: Clients, client: MakeClient
) -> None:
    for peer in ("bob", "carol"):
        await (await client(peer)).close()
    # Given alice on her phone (device 1, the SDK's default: contacts), who writes to bob
    phone = await client("alice", settings=FAST)
    await phone.send_and_wait("bob", "hi bob")
    # And her laptop, whose app would show her to everyone by default, linked
    profile = Profile.create("alice-laptop", "alice", home=home, device_id="laptop")
    await phone.link_device(link_code(profile.identity))
    laptop = await clients.open("alice-laptop", stack.ws_url, settings=VISIBLE)

    # When the laptop writes to carol
    await laptop.send_and_wait("carol", "hi carol")

    # Then the user's list holds both, under the setting device 1 gave (not the laptop's)
    settings = await phone.get_settings()
    assert (settings.visibility, sorted(settings.contacts)) == (CONTACTS, ["bob", "carol"])

    # When the phone writes to dave, then (reconnecting) to bob again
    await (await client("dave")).close()
    await phone.send_and_wait("dave", "hi dave")
    await phone.close()
    phone = await clients.open("alice", stack.ws_url, settings=FAST)
    await phone.send_and_wait("bob", "hi again")

    # Then nothing the laptop added is dropped
    settings = await laptop.get_settings()
    assert (settings.visibility, sorted(settings.contacts)) == (CONTACTS, ["bob", "carol", "dave"])

    # When she chooses `everyone` on the laptop
    answer = await laptop.set_presence_visibility(EVERYONE)
    assert answer is not None and answer.visibility == EVERYONE

    # Then it holds for the phone too, across its reconnects and restarts
    await phone.close()
    phone = await clients.open("alice", stack.ws_url, settings=FAST)
    await phone.send_and_wait("bob", "and again")
    assert (await phone.get_settings()).visibility == EVERYONE
    assert (await laptop.get_settings()).visibility == EVERYONE


async def test_a_first_message_sent_as_the_first_connection_opens_lists_its_peer(
    client: MakeClient,
) -> None:
    # Given bob, and users whose very first connection is still telling the server the
    # settings' default when they write to him
    await (await client("bob")).close()
    for name in ("alice", "carol", "dave", "erin"):
        writer = await client(name, wait=False)
        await writer.wait_online()
        # When each writes to bob at once
        await writer.send_and_wait("bob", f"hi from {name}")
        # Then bob is on the list the server keeps, under the default
        settings = await writer.get_settings()
        assert (settings.visibility, settings.contacts) == (CONTACTS, ("bob",)), name
