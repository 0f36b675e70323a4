"""Linked devices in the SDK (docs/protocol.md §8), real clients on the local stack.

One user (alice) on three devices, device 1 and two she links, and a peer (bob): every
message reaches every device of its recipient and the sender's other devices, once, in
order; receipts reach every device of the sender; a stale list is fetched again and the
message sealed again; a removed device is refused.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from nacl.public import PrivateKey
from nacl.signing import SigningKey

from messenger.contract import USERS_TABLE
from messenger.dal.device_lists import DeviceLists
from messenger_client.client import ClientSettings, MessengerClient
from messenger_client.connection import ConnectionState
from messenger_client.devices import link_code
from messenger_client.errors import HandshakeRefused, KeyChanged, NotConnected, NotDeviceOne
from messenger_client.keystore import Profile
from messenger_client.store import MessageStatus
from messenger_local import EmbeddedAws, LocalStack
from messenger_protocol.connect import canonical_endpoint, signed_connect_query, with_query
from messenger_protocol.devices import Device, DeviceList
from messenger_protocol.encoding import b64url_encode
from messenger_protocol.names import PushPlatform
from tests.client.conftest import FAST, VISIBLE, Clients, MakeClient
from tests.support.devices import sealed_message
from tests.support.push import apns_token, fcm_token, moto_server_pushes
from tests.support.stack_fixtures import cells_stack
from tests.support.waiting import until
from tests.support.ws_client import open_socket

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

__all__ = ["cells_stack"]

# A stranger's device keys, which a lying server slips into alice's list.
MALLORY_SIGNING, MALLORY_BOX = SigningKey(bytes(range(32))), PrivateKey(bytes(range(1, 33)))


def texts(client: MessengerClient, peer: str) -> list[tuple[str, str]]:
    return [(message.sender, message.text) for message in client.history(peer)]


def status(client: MessengerClient, sender: str, message_id: str) -> MessageStatus | None:
    message = client.store.get(sender, message_id)
    return None if message is None else message.status


async def on_every(
    devices: tuple[MessengerClient, ...], holds: Callable[[MessengerClient], bool]
) -> None:
    """Until `holds` is true of every device (TimeoutError after 20 s: CI is busy at times)."""
    for device in devices:
        await until(functools.partial(holds, device), timeout=20)


async def linked(
    home: Path,
    clients: Clients,
    device_one: MessengerClient,
    device: str,
    url: str | None,
    *,
    directory_url: str | None = None,
    settings: ClientSettings = FAST,
) -> MessengerClient:
    """A new profile `alice-<device>` for alice's device `device`, linked by device 1 with
    its link code, then opened on `url` (or on alice's home from `directory_url`), online
    and synced."""
    profile = Profile.create(f"alice-{device}", "alice", home=home, device_id=device)
    await device_one.link_device(link_code(profile.identity))
    name = f"alice-{device}"
    return await clients.open(name, url, directory_url=directory_url, settings=settings)


AliceWith = Callable[..., Awaitable[list[MessengerClient]]]


@pytest.fixture
def alice_with(home: Path, stack: LocalStack, clients: Clients, client: MakeClient) -> AliceWith:
    """`await alice_with("laptop", "phone")`: alice's device 1 on the test's stack and the
    devices it linked, in that order, each online and synced (`settings` for all)."""

    async def make(*devices: str, settings: ClientSettings = FAST) -> list[MessengerClient]:
        alice = await client("alice", settings=settings)
        made = [alice]
        for device in devices:
            made.append(await linked(home, clients, alice, device, stack.ws_url, settings=settings))
        return made

    return make


async def test_three_devices_and_a_peer_each_see_every_message_once_in_order(
    client: MakeClient, alice_with: AliceWith
) -> None:
    # Given alice's device 1, a laptop and a phone she linked, and bob
    alice, laptop, phone = await alice_with("laptop", "phone")
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
    home: Path, stack: LocalStack, clients: Clients, client: MakeClient, alice_with: AliceWith
) -> None:
    # Given bob, who fetched alice's list while she had two devices
    alice, laptop = await alice_with("laptop")
    bob = await client("bob")
    await bob.send_and_wait("alice", "one")
    # When alice links a third device and bob writes again on the same connection
    phone = await linked(home, clients, alice, "phone", stack.ws_url)
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
    home: Path, stack: LocalStack, alice_with: AliceWith
) -> None:
    alice, laptop = await alice_with("laptop")
    other = Profile.create("alice-tablet", "alice", home=home, device_id="tablet")
    # A linked device cannot change the list
    with pytest.raises(NotDeviceOne):
        await laptop.link_device(link_code(other.identity))
    # Device 1 removes the laptop: the list no longer names it
    listing = await alice.remove_device("laptop")
    assert listing.device_ids == ["1"]
    assert listing.version == 2
    # And the laptop, connected, is closed (DEVICE_REMOVED) and stops at once, saying why
    await until(lambda: laptop.status.state == ConnectionState.REMOVED, timeout=10)
    assert laptop.status.error is not None and "DEVICE_REMOVED" in laptop.status.error
    # And it does not try again: every handshake would be refused (docs/protocol.md §8)
    await asyncio.sleep(1.0)  # many backoff delays of FAST
    assert laptop.status.state == ConnectionState.REMOVED
    with pytest.raises(NotConnected, match="DEVICE_REMOVED"):
        await laptop.wait_online(timeout=0.5)
    # And the laptop's next handshake is refused
    again = MessengerClient(stack.ws_url, Profile.load("alice-laptop", home), settings=FAST)
    again.start()
    try:
        with pytest.raises(HandshakeRefused):
            await again.wait_online(10)
    finally:
        await again.close()


async def test_a_forged_list_is_a_key_change_nothing_sent_nothing_accepted(
    stack: LocalStack, client: MakeClient, alice_with: AliceWith
) -> None:
    # Given bob, who verified alice's list of two devices
    alice, laptop = await alice_with("laptop")
    bob = await client("bob")
    await bob.send_and_wait("alice", "hi")
    # When a server that lies stores a list naming mallory's device, signed by another key
    mallory = Device(
        device_id="mallory",
        sign_key=b64url_encode(bytes(MALLORY_SIGNING.verify_key)),
        box_key=b64url_encode(bytes(MALLORY_BOX.public_key)),
    )
    good = await alice.devices()
    forged = DeviceList(
        user_id="alice", version=good.version + 1, devices=[*good.devices, mallory]
    ).sign(SigningKey.generate())
    users = stack.table_names[USERS_TABLE.env.value]
    DeviceLists(stack.aws.client("dynamodb"), users).store(forged)
    # And mallory, connected as alice's device, writes to bob sealed for that list
    aud = canonical_endpoint(stack.ws_url)
    query = signed_connect_query(
        MALLORY_SIGNING, "alice", now=time.time(), aud=aud, device_id="mallory"
    )
    bobs = DeviceList.unlinked("bob", *bob_keys(bob))
    frame = sealed_message(
        MALLORY_BOX, bobs, forged, "mallory", '{"text":"trust me"}', "msg-forged-01"
    )
    async with await open_socket(with_query(stack.ws_url, query)) as socket:
        await socket.send(json.dumps({"action": "sendMessage", **frame}))
        assert json.loads(await socket.recv())["type"] == "ack"
    # Then bob holds it unopened, as from a user whose keys changed
    await until(lambda: [h.message_id for h in bob.held("alice")] == ["msg-forged-01"])
    assert [text for _, text in texts(bob, "alice")] == ["hi"]
    # And sends nothing more to alice until he trusts again
    with pytest.raises(KeyChanged):
        await bob.send("alice", "are you there?")
    assert laptop.device_id == "laptop"


async def test_presence_is_online_while_any_device_is(
    stack: LocalStack, client: MakeClient, alice_with: AliceWith
) -> None:
    # Given alice on device 1 and her laptop, visible to everyone, and bob watching
    alice, laptop = await alice_with("laptop", settings=VISIBLE)
    bob = await client("bob")
    [seen] = await bob.get_presence(["alice"], subscribe=True)
    assert seen.online
    # When device 1 goes away, she stays online; when the laptop goes too, she is offline
    disconnects = len(stack.invocations_of("$disconnect"))
    await alice.close()
    await until(lambda: len(stack.invocations_of("$disconnect")) > disconnects, timeout=10)
    [still] = await bob.get_presence(["alice"])
    assert still.online
    await laptop.close()
    await until(lambda: not (bob.presence("alice") or seen).online, timeout=10)


def bob_keys(bob: MessengerClient) -> tuple[str, str]:
    keys = bob.profile.identity.public_keys
    return keys.sign_key, keys.box_key


async def test_across_cells_three_devices_and_a_peer_elsewhere_see_every_message(
    home: Path, cells_stack: LocalStack, clients: Clients
) -> None:
    # Given alice's three devices on her home cell, and a peer whose home is the other cell
    url = cells_stack.directory_url
    peer = next(
        name
        for name in (f"bob{i}" for i in range(100))
        if cells_stack.home_of(name) != cells_stack.home_of("alice")
    )
    alice = await clients.open("alice", None, directory_url=url)
    devices = [alice]
    for device in ("laptop", "phone"):
        devices.append(await linked(home, clients, alice, device, None, directory_url=url))
    bob = await clients.open(peer, None, directory_url=url)
    # When the peer writes, alice answers from her phone, and the peer writes again
    await bob.send_and_wait("alice", "one")
    await on_every(tuple(devices), lambda device: len(texts(device, peer)) == 1)
    await devices[2].send_and_wait(peer, "two")
    await bob.send_and_wait("alice", "three")
    expected = [(peer, "one"), ("alice", "two"), (peer, "three")]
    # Then every device of alice and the peer hold the conversation once, in order
    await on_every(
        (*devices, bob),
        lambda device: texts(device, peer if device is not bob else "alice") == expected,
    )
    # And the peer's delivered receipt for "two" reaches each of alice's devices
    two = devices[2].history(peer)[1].message_id
    await on_every(
        tuple(devices),
        lambda device: (
            status(device, "alice", two) in (MessageStatus.DELIVERED, MessageStatus.SEEN)
        ),
    )


async def test_each_device_registers_its_own_push_token_and_gets_its_push(
    stack: LocalStack, client: MakeClient, alice_with: AliceWith
) -> None:
    # Given alice's device 1 and laptop each registered a push token, then went offline
    alice, laptop = await alice_with("laptop")
    phone_token, laptop_token = apns_token(), fcm_token()
    await alice.register_push(PushPlatform.APNS, phone_token)
    await laptop.register_push(PushPlatform.GCM, laptop_token)
    with pytest.raises(ValueError):
        await laptop.register_push(PushPlatform.APNS, "not a token")
    disconnects = len(stack.invocations_of("$disconnect"))
    await alice.close()
    await laptop.close()
    await until(lambda: len(stack.invocations_of("$disconnect")) >= disconnects + 2, timeout=10)
    # When bob writes to her
    bob = await client("bob")
    await bob.send_and_wait("alice", "wake up")
    await stack.settled()
    # Then each device got one push, for its own queue
    recorded = await asyncio.to_thread(moto_server_pushes, stack.aws_endpoint)
    assert (len(recorded.get(phone_token, [])), len(recorded.get(laptop_token, []))) == (1, 1)


async def test_a_copy_held_for_a_key_change_opens_once_trusted(
    home: Path, client: MakeClient, alice_with: AliceWith
) -> None:
    # Given bob, who pinned other keys for alice (her keys "changed" since)
    alice, laptop = await alice_with("laptop")
    bob = await client("bob")
    stranger = Profile.create("stranger", "alice", home=home).identity.public_keys
    bob.profile.pins.trust(stranger)
    # When her laptop writes to him
    sent = await laptop.send_and_wait("bob", "it is really me")
    # Then he holds it, unopened
    await until(lambda: [h.message_id for h in bob.held("alice")] == [sent.message_id])
    assert bob.history("alice") == []
    # When he compares safety numbers with her and trusts her account key
    fingerprint = alice.fingerprint()
    assert fingerprint is not None
    await bob.trust("alice", fingerprint)
    # Then the laptop's copy opens with her verified list and joins the history
    assert texts(bob, "alice") == [("alice", "it is really me")]
    assert bob.held("alice") == []


async def test_device_one_sends_its_list_again_after_its_cell_changed_epoch(
    home: Path, shared_aws: EmbeddedAws, clients: Clients
) -> None:
    # Given alice linked her laptop on a cell of epoch "local-a"
    first = LocalStack(aws=shared_aws, environment={"CELL_EPOCH": "local-a"})
    await first.start()
    port = first.port
    try:
        alice = await clients.open("alice", first.ws_url)
        Profile.create("alice-laptop", "alice", home=home, device_id="laptop")
        await alice.link_device(link_code(Profile.load("alice-laptop", home).identity))
        await first.settled()
        await clients.close_all()
    finally:
        await first.stop()
    # When the cell fails over to a standby of another epoch that lost the list
    second = LocalStack(aws=shared_aws, port=port, environment={"CELL_EPOCH": "local-b"})
    await second.start()
    try:
        alice = await clients.open("alice", second.ws_url, wait=False)
        # Then device 1 sends the list it published again, and the laptop connects
        await until(lambda: second.invocations_of("setDevices", user="alice"), timeout=20)
        laptop = await clients.open("alice-laptop", second.ws_url)
        assert (await laptop.devices()).device_ids == ["1", "laptop"]
        assert alice.epoch == "local-b#0"
    finally:
        await clients.close_all()
        await second.stop()
