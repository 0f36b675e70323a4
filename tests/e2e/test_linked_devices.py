"""Linked devices over real WebSockets on the local stack (docs/protocol.md §8): alice on
two devices, bob on one."""

from __future__ import annotations

import asyncio

import pytest

from messenger.contract import Env
from messenger.dal.rate_limits import RATE_PREFIX
from messenger_local import EmbeddedAws, LocalStack
from messenger_local.activity import TableDump
from messenger_protocol.connect import canonical_endpoint, with_query
from tests.support.cells import user_homed_in
from tests.support.devices import (
    LinkedDevice,
    device_list,
    open_copy,
    sealed_message,
    set_devices_frame,
)
from tests.support.identities import TestUser
from tests.support.stack_fixtures import Connect, dump, dump_cells
from tests.support.ws_client import WsClient, connect_as, open_socket

pytestmark = pytest.mark.e2e


def without_rate_buckets(dumps: dict[str, TableDump]) -> dict[str, TableDump]:
    """Every cell's tables less the rate-limit buckets, which every well-formed frame,
    refused or not, counts in (docs/protocol.md §3)."""
    return {
        cell: {
            name: [item for item in items if not item["sk"]["S"].startswith(RATE_PREFIX)]
            for name, items in tables.items()
        }
        for cell, tables in dumps.items()
    }


async def test_a_message_reaches_both_devices_the_self_copy_the_other_and_one_receipt_each(
    stack: LocalStack, connect: Connect, alice: TestUser, bob: TestUser
) -> None:
    # Given alice's device 1 links her laptop, which connects with its own key
    phone, b = await connect(alice), await connect(bob)
    laptop = LinkedDevice(alice, "laptop", aud=canonical_endpoint(stack.ws_url))
    alices, bobs = device_list(alice, 1, laptop), device_list(bob, 0)
    answer = await phone.request({"action": "setDevices", **alices.to_wire()})
    assert answer["type"] == "devices" and answer["version"] == 1
    c = WsClient(alice, await open_socket(with_query(stack.ws_url, laptop.connect_query())))
    keys = await b.request({"action": "getKeys", "userId": "alice"})
    assert keys["devices"]["devices"][1]["deviceId"] == "laptop"
    # When bob sends one message sealed for both of her devices
    ack = await b.request(sealed_message(bob.box_key, alices, bobs, "1", "hi both", "msg-e2e001"))
    assert ack["type"] == "ack"
    # Then each device gets its own copy and opens it
    on_phone, on_laptop = await phone.next_of("message"), await c.next_of("message")
    assert open_copy(on_phone, alice.box_key, bobs.devices) == "hi both"
    assert open_copy(on_laptop, laptop.box_key, bobs.devices) == "hi both"
    # And the first device's ack makes bob's one delivered receipt; the second's none
    await c.send({"action": "ack", "ids": [on_laptop["id"]]})
    receipt = await b.next_of("receipt")
    assert (receipt["status"], receipt["messageIds"]) == ("delivered", ["msg-e2e001"])
    await phone.send({"action": "ack", "ids": [on_phone["id"]]})
    await b.send({"action": "ack", "ids": [receipt["id"]]})
    await b.nothing_more(within=1.0)
    # When alice answers from her laptop
    reply = sealed_message(laptop.box_key, bobs, alices, "laptop", "from my laptop", "msg-e2e002")
    assert (await c.request(reply))["type"] == "ack"
    # Then bob gets it, and her phone a copy of her own message
    to_bob, own = await b.next_of("message"), await phone.next_of("message")
    assert open_copy(to_bob, bob.box_key, alices.devices) == "from my laptop"
    assert (own["from"], own["to"], own["fromDevice"]) == ("alice", "bob", "laptop")
    assert open_copy(own, alice.box_key, alices.devices) == "from my laptop"
    # And bob's ack reaches both of her devices as one delivered receipt each
    await b.send({"action": "ack", "ids": [to_bob["id"]]})
    for device in (phone, c):
        told = await device.next_of("receipt")
        assert (told["status"], told["messageIds"]) == ("delivered", ["msg-e2e002"])
    await phone.send({"action": "ack", "ids": [own["id"]]})
    await c.nothing_more(within=0.5)
    await phone.nothing_more(within=0.5)


async def test_a_device_s_queue_keeps_its_caps_when_another_device_acknowledges(
    shared_aws: EmbeddedAws, alice: TestUser, bob: TestUser
) -> None:
    # Given queues that take 2 messages from any one sender, and alice with a laptop
    # that stays offline
    caps = {Env.QUEUE_CAP_PER_SENDER.value: "2"}
    async with LocalStack(aws=shared_aws, environment=caps) as stack:
        phone, b = await connect_as(stack.ws_url, alice), await connect_as(stack.ws_url, bob)
        laptop = LinkedDevice(alice, "laptop", aud=canonical_endpoint(stack.ws_url))
        alices, bobs = device_list(alice, 1, laptop), device_list(bob, 0)
        assert (await phone.request({"action": "setDevices", **alices.to_wire()}))["version"] == 1
        # When bob sends her two messages, which her phone acknowledges at once
        for n in range(2):
            frame = sealed_message(bob.box_key, alices, bobs, "1", "hi", f"msg-cap{n:04d}")
            assert (await b.request(frame))["type"] == "ack"
            await phone.send({"action": "ack", "ids": [(await phone.next_of("message"))["id"]]})
            await b.next_of("receipt")
        # Then a third is refused QUEUE_FULL: the laptop's queue holds bob's two
        # (docs/protocol.md §2: a cap passed in any of the recipient's queues)
        third = sealed_message(bob.box_key, alices, bobs, "1", "hi", "msg-cap0002")
        refused = await b.request(third)
        assert refused["code"] == "QUEUE_FULL" and refused["retryAfter"] >= 1, refused
        assert refused["ref"] == "msg-cap0002"


async def test_a_stale_list_across_cells_names_the_versions_the_cells_hold_and_stores_nothing(
    cells_stack: LocalStack, connect_home: Connect
) -> None:
    # Given alice (c0) and bob (c1), each with a linked device (list version 1)
    cells = cells_stack.cell_ids
    alice, bob = user_homed_in("c0", "alice", cells), user_homed_in("c1", "bob", cells)
    a, b = await connect_home(alice), await connect_home(bob)
    alices = device_list(alice, 1, LinkedDevice(alice, "laptop"))
    bobs = device_list(bob, 1, LinkedDevice(bob, "tablet"))
    assert (await a.request(set_devices_frame(alices)))["type"] == "devices"
    assert (await b.request(set_devices_frame(bobs)))["type"] == "devices"
    before = without_rate_buckets(await dump_cells(cells_stack, relay_budgets=False))
    # When alice sends following both lists of version 0 (her own view stale too)
    stale = sealed_message(
        alice.box_key, device_list(bob, 0), device_list(alice, 0), "1", "x", "msg-xs01"
    )
    refused = await a.request(stale)
    # Then the refusal names the versions the cells hold, bob's as c1 holds it, not the frame's
    assert (refused["code"], refused["ref"]) == ("STALE_DEVICES", "msg-xs01")
    assert (refused["devices"], refused["selfDevices"]) == (1, 1)
    # And to a user c1 does not know, with her own view stale, it is UNKNOWN_RECIPIENT, as
    # in one cell
    nobody = device_list(user_homed_in("c1", "zed", cells), 0)
    stranger = sealed_message(alice.box_key, nobody, device_list(alice, 0), "1", "x", "msg-xs02")
    assert (await a.request(stranger))["code"] == "UNKNOWN_RECIPIENT"
    # And nothing was stored in either cell
    assert without_rate_buckets(await dump_cells(cells_stack, relay_budgets=False)) == before


async def test_once_every_device_acked_a_message_nothing_about_it_stays_and_one_receipt_went(
    stack: LocalStack, connect: Connect, alice: TestUser, bob: TestUser
) -> None:
    # Given alice on three devices, each connected, and a message from bob to all three
    phone, b = await connect(alice), await connect(bob)
    aud = canonical_endpoint(stack.ws_url)
    linked = [LinkedDevice(alice, name, aud=aud) for name in ("laptop", "tablet")]
    alices = device_list(alice, 1, *linked)
    assert (await phone.request(set_devices_frame(alices)))["type"] == "devices"
    devices = [phone] + [
        WsClient(alice, await open_socket(with_query(stack.ws_url, device.connect_query())))
        for device in linked
    ]
    frame = sealed_message(bob.box_key, alices, device_list(bob, 0), "1", "hi", "msg-all001")
    assert (await b.request(frame))["type"] == "ack"
    copies = [await device.next_of("message") for device in devices]
    # When the laptop acks its copy twice, then the phone and the tablet theirs
    laptop_ack = {"action": "ack", "ids": [copies[1]["id"]]}
    await asyncio.gather(devices[1].send(laptop_ack), devices[1].send(laptop_ack))
    receipt = await b.next_of("receipt")
    for device, copy in ((devices[0], copies[0]), (devices[2], copies[2])):
        await device.send({"action": "ack", "ids": [copy["id"]]})
    await b.send({"action": "ack", "ids": [receipt["id"]]})
    # Then bob got one delivered receipt, at the first ack
    assert (receipt["status"], receipt["messageIds"]) == ("delivered", ["msg-all001"])
    await b.nothing_more(within=0.5)
    # And once every copy is acknowledged, nothing about the message stays on the server
    await stack.settled()
    tables = await asyncio.to_thread(dump, stack)
    assert [item for items in tables.values() for item in items if "msg-all001" in str(item)] == []


async def test_removing_the_device_that_never_acked_leaves_nothing_about_the_message(
    stack: LocalStack, connect: Connect, alice: TestUser, bob: TestUser
) -> None:
    # Given a message from bob to alice's phone and tablet, which only the phone acked
    phone, b = await connect(alice), await connect(bob)
    alices = device_list(alice, 1, LinkedDevice(alice, "tablet"))
    assert (await phone.request(set_devices_frame(alices)))["type"] == "devices"
    frame = sealed_message(bob.box_key, alices, device_list(bob, 0), "1", "hi", "msg-rmk001")
    assert (await b.request(frame))["type"] == "ack"
    copy = await phone.next_of("message")
    await phone.send({"action": "ack", "ids": [copy["id"]]})
    receipt = await b.next_of("receipt")
    await b.send({"action": "ack", "ids": [receipt["id"]]})
    # When device 1 removes the tablet
    await phone.send(set_devices_frame(device_list(alice, 2)))
    assert (await phone.next_of("devices"))["version"] == 2
    # Then nothing about the message stays on the server
    await stack.settled()
    tables = await asyncio.to_thread(dump, stack)
    assert [item for items in tables.values() for item in items if "msg-rmk001" in str(item)] == []
