"""Linked devices in the SDK (docs/protocol.md §8), real clients on the local stack.

One user (alice) on three devices, device 1 and two she links, and a peer (bob): every
message reaches every device of its recipient and the sender's other devices, once, in
order; receipts reach every device of the sender; a stale list is fetched again and the
message sealed again; a removed device is refused.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import pytest

from messenger_client.client import MessengerClient
from messenger_client.devices import link_code
from messenger_client.errors import HandshakeRefused, NotDeviceOne
from messenger_client.keystore import Profile
from messenger_client.store import MessageStatus
from messenger_local import LocalStack
from tests.client.conftest import FAST, Clients, MakeClient
from tests.support.waiting import until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def texts(client: MessengerClient, peer: str) -> list[tuple[str, str]]:
    return [(message.sender, message.text) for message in client.history(peer)]


def status(client: MessengerClient, sender: str, message_id: str) -> MessageStatus | None:
    message = client.store.get(sender, message_id)
    return None if message is None else message.status


async def on_every(
    devices: tuple[MessengerClient, ...], holds: Callable[[MessengerClient], bool]
) -> None:
    """Until `holds` is true of every device (TimeoutError after 10 s)."""
    for device in devices:
        await until(functools.partial(holds, device), timeout=10)


async def linked(
    home: Path, stack: LocalStack, clients: Clients, device_one: MessengerClient, device: str
) -> MessengerClient:
    """A new profile `alice-<device>` for alice's device `device`, linked by device 1 with
    its link code, online and synced."""
    profile = Profile.create(f"alice-{device}", "alice", home=home, device_id=device)
    await device_one.link_device(link_code(profile.identity))
    return await clients.open(f"alice-{device}", stack.ws_url, settings=FAST)


async def test_three_devices_and_a_peer_each_see_every_message_once_in_order(
    home: Path, stack: LocalStack, clients: Clients, client: MakeClient
) -> None:
    # Given alice's device 1, a laptop and a phone she linked, and bob
    alice = await client("alice")
    laptop = await linked(home, stack, clients, alice, "laptop")
    phone = await linked(home, stack, clients, alice, "phone")
    bob = await client("bob")
    assert (await alice.devices()).device_ids == ["1", "laptop", "phone"]
    # When bob writes to alice, and alice answers from the laptop, then from device 1
    await bob.send_and_wait("alice", "hi alice")
    await until(lambda: texts(phone, "bob"), timeout=10)
    await laptop.send_and_wait("bob", "hi bob, from my laptop")
    await alice.send_and_wait("bob", "and from my phone's twin")
    expected = [
        ("bob", "hi alice"),
        ("alice", "hi bob, from my laptop"),
        ("alice", "and from my phone's twin"),
    ]
    # Then each of alice's devices holds the whole conversation once, in order, her own
    # messages as sent by her; and bob holds it too
    await on_every((alice, laptop, phone), lambda device: texts(device, "bob") == expected)
    await until(lambda: texts(bob, "alice") == expected, timeout=10)
    # And bob's acknowledgement of the laptop's message reaches every alice device
    sent = laptop.history("bob")[1]
    await on_every(
        (alice, laptop, phone),
        lambda device: (
            status(device, "alice", sent.message_id)
            in (MessageStatus.DELIVERED, MessageStatus.SEEN)
        ),
    )
    # And a `seen` from bob moves it on for the sender's other devices too
    await bob.mark_seen("alice")
    await until(lambda: status(phone, "alice", sent.message_id) == MessageStatus.SEEN, timeout=10)
    # And safety numbers stay the account key's on every device
    assert laptop.fingerprint() == alice.fingerprint() == bob.fingerprint("alice")


async def test_a_stale_list_is_fetched_again_and_the_message_resealed(
    home: Path, stack: LocalStack, clients: Clients, client: MakeClient
) -> None:
    # Given bob, who fetched alice's list while she had two devices
    alice = await client("alice")
    laptop = await linked(home, stack, clients, alice, "laptop")
    bob = await client("bob")
    await bob.send_and_wait("alice", "one")
    # When alice links a third device and bob writes again on the same connection
    phone = await linked(home, stack, clients, alice, "phone")
    message = await bob.send_and_wait("alice", "two")
    # Then the server refused the old list (STALE_DEVICES), bob sealed it again for the
    # new one, and all three devices got it under the same messageId
    await on_every(
        (alice, laptop, phone),
        lambda device: texts(device, "bob")[-1:] == [("bob", "two")],
    )
    assert texts(laptop, "bob") == [("bob", "one"), ("bob", "two")]
    assert status(phone, "bob", message.message_id) == MessageStatus.RECEIVED


async def test_only_device_one_links_and_a_removed_device_is_refused(
    home: Path, stack: LocalStack, clients: Clients, client: MakeClient
) -> None:
    alice = await client("alice")
    laptop = await linked(home, stack, clients, alice, "laptop")
    other = Profile.create("alice-tablet", "alice", home=home, device_id="tablet")
    # A linked device cannot change the list
    with pytest.raises(NotDeviceOne):
        await laptop.link_device(link_code(other.identity))
    # Device 1 removes the laptop: the list no longer names it
    listing = await alice.remove_device("laptop")
    assert listing.device_ids == ["1"]
    assert listing.version == 2
    # And the laptop's next handshake is refused
    again = MessengerClient(stack.ws_url, Profile.load("alice-laptop", home), settings=FAST)
    again.start()
    try:
        with pytest.raises(HandshakeRefused):
            await again.wait_online(10)
    finally:
        await again.close()
