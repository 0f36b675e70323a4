"""Linked devices over real WebSockets on the local stack (docs/protocol.md §8): alice on
two devices, bob on one."""

from __future__ import annotations

import pytest

from messenger.contract import Env
from messenger_local import EmbeddedAws, LocalStack
from messenger_protocol.connect import canonical_endpoint, with_query
from tests.support.devices import LinkedDevice, device_list, open_copy, sealed_message
from tests.support.identities import TestUser
from tests.support.stack_fixtures import Connect
from tests.support.ws_client import WsClient, connect_as, open_socket

pytestmark = pytest.mark.e2e


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
