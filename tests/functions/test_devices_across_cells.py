"""Linked devices between users of two cells (docs/protocol.md §6, §8): the Relay carries
the per-device copies and the sender's device; receipts reach every device of the sender
in its home; STALE_DEVICES comes back with both versions."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.cells import CellsUnderTest, cells_harness, user_homed_in
from tests.support.devices import (
    LinkedDevice,
    device_list,
    open_copy,
    sealed_message,
    set_devices_frame,
)

pytestmark = pytest.mark.integration

ALICE = user_homed_in("c0", "alice")  # at home in c0, with a laptop
BOB = user_homed_in("c1", "bob")  # at home in c1, one device


@pytest.fixture
def cells() -> Iterator[CellsUnderTest]:
    with cells_harness() as running:
        yield running


def test_copies_cross_cells_and_receipts_reach_every_device_of_the_sender(
    cells: CellsUnderTest,
) -> None:
    c0, c1 = cells["c0"], cells["c1"]
    a, b = c0.connect(ALICE), c1.connect(BOB)
    laptop = LinkedDevice(ALICE, "laptop")
    alices, bobs = device_list(ALICE, 1, laptop), device_list(BOB, 0)
    assert c0.send(a, set_devices_frame(alices))["type"] == "devices"
    c = c0.connect(laptop)
    # bob's cell serves alice's signed list
    assert c1.send(b, {"action": "getKeys", "userId": ALICE.user_id})["devices"] == (
        alices.to_wire()
    )
    # When bob (c1) sends to both of alice's devices (c0)
    frame = sealed_message(BOB.box_key, alices, bobs, "1", "across", "msg-xd0001")
    assert c1.send(b, frame)["type"] == "ack"
    # Then each gets its copy from c0
    [on_phone] = c0.posts.of_type(a.connection_id, "message")
    [on_laptop] = c0.posts.of_type(c.connection_id, "message")
    assert open_copy(on_phone, ALICE.box_key, bobs.devices) == "across"
    assert open_copy(on_laptop, laptop.box_key, bobs.devices) == "across"
    # When alice answers from her laptop
    reply = sealed_message(laptop.box_key, bobs, alices, "laptop", "back", "msg-xd0002")
    assert c0.send(c, reply)["type"] == "ack"
    # Then bob gets it (from her laptop), her phone the copy of her own message
    [to_bob] = c1.posts.of_type(b.connection_id, "message")
    assert (to_bob["fromDevice"], open_copy(to_bob, BOB.box_key, alices.devices)) == (
        "laptop",
        "back",
    )
    own = [m for m in c0.posts.of_type(a.connection_id, "message") if m.get("to")]
    assert [(m["to"], m["fromDevice"]) for m in own] == [(BOB.user_id, "laptop")]
    # And bob's ack reaches both of alice's devices as a delivered receipt
    c1.send(b, {"action": "ack", "ids": [to_bob["id"]]})
    for device in (a, c):
        [receipt] = c0.posts.of_type(device.connection_id, "receipt")
        assert receipt["messageIds"] == ["msg-xd0002"]


def test_a_stale_list_across_cells_is_refused_with_both_versions_and_stores_nothing(
    cells: CellsUnderTest,
) -> None:
    c0, c1 = cells["c0"], cells["c1"]
    a, b = c0.connect(ALICE), c1.connect(BOB)
    laptop = LinkedDevice(ALICE, "laptop")
    alices = device_list(ALICE, 1, laptop)
    c0.send(a, set_devices_frame(alices))
    before = cells.dump()
    # bob follows alice's list of version 0 (device 1 alone)
    stale = sealed_message(
        BOB.box_key, device_list(ALICE, 0), device_list(BOB, 0), "1", "x", "msg-xd0003"
    )
    reply = c1.send(b, stale)
    assert reply["code"] == "STALE_DEVICES"
    assert (reply["devices"], reply["selfDevices"]) == (1, 0)
    # alice's device 1 leaves out her laptop's copy
    own = sealed_message(
        ALICE.box_key, device_list(BOB, 0), device_list(ALICE, 0), "1", "y", "msg-xd0004"
    )
    reply = c0.send(a, own)
    assert reply["code"] == "STALE_DEVICES"
    assert (reply["devices"], reply["selfDevices"]) == (0, 1)
    assert cells.dump() == before
