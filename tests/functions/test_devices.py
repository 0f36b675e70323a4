"""Linked devices on the server (docs/protocol.md §8): setDevices from device 1, the device
list in getKeys and in the handshake, one queue item per device, STALE_DEVICES, per-device
acks with one `delivered` receipt, presence and connection caps across devices."""

from __future__ import annotations

from typing import Any

import pytest

from messenger.dal.device_lists import DeviceLists
from messenger.transport.connections import Connections
from messenger_local.events import connect_event, new_id
from messenger_local.harness import allowed, handshake
from messenger_protocol.devices import DeviceList
from messenger_protocol.limits import MAX_CONNECTIONS_PER_DEVICE
from tests.support.devices import (
    LinkedDevice,
    device_list,
    open_copy,
    sealed_message,
    set_devices_frame,
)
from tests.support.harness import Connection, Harness
from tests.support.identities import TestUser

pytestmark = pytest.mark.integration


def link(h: Harness, primary: Connection, listing: DeviceList) -> dict[str, Any]:
    reply = h.send(primary, set_devices_frame(listing))
    assert reply is not None
    return reply


def denied(h: Harness, query: dict[str, str]) -> bool:
    decision = h.authorize(query)
    return decision["policyDocument"]["Statement"][0]["Effect"] == "Deny"


def unique_message(h: Harness, connection: Connection) -> dict[str, Any]:
    [message] = h.posts.of_type(connection.connection_id, "message")
    return message


# --- setDevices and getKeys ---------------------------------------------------------------


def test_device_1_stores_a_signed_list_that_get_keys_serves_and_the_new_device_connects(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    # Given alice (device 1) and bob, both v1.1 users: getKeys names no devices
    a, b = h.connect(alice), h.connect(bob)
    assert "devices" not in h.send(b, {"action": "getKeys", "userId": "alice"})
    laptop = LinkedDevice(alice, "laptop")
    # Then a linked device not listed yet is refused, and writes nothing
    before = h.dump()
    assert denied(h, laptop.connect_query())
    assert h.dump() == before
    # When alice's device 1 sends her list with the laptop
    listing = device_list(alice, 1, laptop)
    answer = link(h, a, listing)
    # Then it is answered with the stored list, and getKeys serves the signed object
    assert answer == {"type": "devices", **listing.to_wire()}
    keys = h.send(b, {"action": "getKeys", "userId": "alice"})
    assert keys["devices"] == listing.to_wire()
    assert DeviceList.read(keys["devices"]).verifies(alice.sign_key_b64)
    # And the laptop connects with its own key, as a device of alice
    c = h.connect(laptop)
    assert c.device_id == "laptop"
    profile = h.services.profiles.get_profile("alice")
    assert profile is not None and profile.device_of(c.connection_id) == "laptop"
    assert profile.device_of(a.connection_id) == "1"


def test_set_devices_refusals_write_nothing(h: Harness, alice: TestUser, mallory: TestUser) -> None:
    a = h.connect(alice)
    laptop, phone = LinkedDevice(alice, "laptop"), LinkedDevice(alice, "phone")
    link(h, a, device_list(alice, 2, laptop))
    c = h.connect(laptop)
    before = h.dump()
    forged = device_list(mallory, 3, laptop, phone)  # signed by another key
    forged_for_alice = DeviceList(
        user_id="alice", version=3, devices=list(forged.devices), sig=forged.sig
    )
    wrong_primary = DeviceList(user_id="alice", version=3, devices=list(forged.devices)).sign(
        alice.signing_key
    )  # device 1 does not carry the account keys
    refusals = [
        (c, device_list(alice, 3, laptop, phone)),  # not from device 1
        (a, forged_for_alice),  # a signature that does not verify
        (a, wrong_primary),
        (a, device_list(alice, 1, laptop, phone)),  # a lower version
        (a, device_list(alice, 2, laptop, phone)),  # the same version, other devices
    ]
    for connection, listing in refusals:
        reply = h.send(connection, set_devices_frame(listing))
        assert reply["type"] == "error" and reply["code"] == "BAD_REQUEST", reply
    assert h.dump() == before
    # And the same list again is accepted, changing nothing
    assert link(h, a, device_list(alice, 2, laptop))["version"] == 2
    assert h.dump() == before


def test_a_removed_device_is_closed_its_queue_deleted_and_its_handshakes_refused(
    h: Harness, alice: TestUser, bob: TestUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[str] = []
    monkeypatch.setattr(Connections, "close", lambda self, cid: closed.append(cid))
    a, b = h.connect(alice), h.connect(bob)
    laptop = LinkedDevice(alice, "laptop")
    listing = device_list(alice, 1, laptop)
    link(h, a, listing)
    c = h.connect(laptop)
    # Given a message waits in the laptop's queue
    bobs = device_list(bob, 0)
    frame = sealed_message(bob.box_key, listing, bobs, "1", "hi", "msg-rm0001")
    assert h.send(b, frame)["type"] == "ack"
    assert len(queue_items(h, "alice#laptop")) == 1
    # When device 1 removes the laptop
    assert link(h, a, device_list(alice, 2))["devices"] == [listing.devices[0].to_wire()]
    # Then its connection is told DEVICE_REMOVED and closed, its queue is gone
    [error] = h.posts.of_type(c.connection_id, "error")
    assert error["code"] == "DEVICE_REMOVED"
    assert closed == [c.connection_id]
    assert queue_items(h, "alice#laptop") == []
    profile = h.services.profiles.get_profile("alice")
    assert profile is not None and set(profile.connections) == {a.connection_id}
    # And its handshakes are refused from now on; device 1's queue is untouched
    assert denied(h, laptop.connect_query())
    assert len(queue_items(h, "alice")) == 1


def queue_items(h: Harness, owner: str) -> list[dict[str, Any]]:
    response = h.dynamodb.query(
        TableName=h.table_names["Queue"],
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": owner}},
    )
    # First-ack marks are bookkeeping, not items a device gets.
    return [item for item in response["Items"] if not item["sk"]["S"].startswith("t#")]


def test_a_linked_device_cannot_register_a_user(h: Harness, carol: TestUser) -> None:
    assert denied(h, LinkedDevice(carol, "laptop").connect_query(with_keys=True))
    assert h.dump() == {"test-users": [], "test-queue": []}


# --- sending --------------------------------------------------------------------------


def test_a_message_reaches_every_device_and_the_senders_other_devices(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    # Given alice with device 1 and a laptop, and bob with device 1 alone
    a, b = h.connect(alice), h.connect(bob)
    laptop = LinkedDevice(alice, "laptop")
    alices = device_list(alice, 1, laptop)
    link(h, a, alices)
    c = h.connect(laptop)
    bobs = device_list(bob, 0)
    # When bob sends one message sealed for both of alice's devices
    frame = sealed_message(bob.box_key, alices, bobs, "1", "to both", "msg-dv0001")
    assert h.send(b, frame)["type"] == "ack"
    # Then each of her devices gets its own copy, which it opens
    to_phone, to_laptop = unique_message(h, a), unique_message(h, c)
    assert to_phone["fromDevice"] == to_laptop["fromDevice"] == "1"
    assert open_copy(to_phone, alice.box_key, bobs.devices) == "to both"
    assert open_copy(to_laptop, laptop.box_key, bobs.devices) == "to both"
    assert to_phone["key"] != to_laptop["key"]
    # When alice answers from her laptop
    h.posts.take(a.connection_id)
    reply = sealed_message(laptop.box_key, bobs, alices, "laptop", "from laptop", "msg-dv0002")
    assert h.send(c, reply)["type"] == "ack"
    # Then bob gets it from her laptop, and her device 1 a copy of her own message
    to_bob = unique_message(h, b)
    assert (to_bob["from"], to_bob["fromDevice"]) == ("alice", "laptop")
    assert "to" not in to_bob
    assert open_copy(to_bob, bob.box_key, alices.devices) == "from laptop"
    own = unique_message(h, a)
    assert (own["from"], own["to"], own["fromDevice"]) == ("alice", "bob", "laptop")
    assert open_copy(own, alice.box_key, alices.devices) == "from laptop"
    assert h.posts.of_type(c.connection_id, "message") == [to_laptop]


def test_copies_that_do_not_follow_the_stored_lists_are_stale_and_store_nothing(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    a, b = h.connect(alice), h.connect(bob)
    laptop, phone = LinkedDevice(alice, "laptop"), LinkedDevice(alice, "phone")
    alices = device_list(alice, 1, laptop)
    link(h, a, alices)
    c = h.connect(laptop)
    bobs = device_list(bob, 0)
    laptop_frame = sealed_message(laptop.box_key, bobs, alices, "laptop", "x", "msg-st0003")
    before = h.dump()
    stale_frames = [
        # bob follows an old list of alice's, or names a device she does not have
        (b, sealed_message(bob.box_key, device_list(alice, 0), bobs, "1", "x", "msg-st0001")),
        (
            b,
            sealed_message(bob.box_key, device_list(alice, 1, phone), bobs, "1", "x", "msg-st0002"),
        ),
        # alice's laptop leaves out her device 1's copy
        (c, without_self_copies(laptop_frame)),
        # alice's device 1 sends the v1.1 form, though she has linked a device
        (a, h.message(a, bob, "x", "msg-st0004")),
    ]
    for connection, frame in stale_frames:
        reply = h.send(connection, frame)
        assert reply["type"] == "error" and reply["code"] == "STALE_DEVICES", reply
        # The versions the server holds: bob's (0) and alice's (1), as seen by the sender
        expected = (1, 0) if connection is b else (0, 1)
        assert (reply["devices"], reply["selfDevices"]) == expected
        assert reply["ref"] == frame["messageId"]
    assert h.dump() == before
    assert h.posts.of_type(b.connection_id, "message") == []


def test_a_v11_frame_to_a_user_with_devices_reaches_device_1_only(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    a, b = h.connect(alice), h.connect(bob)
    laptop = LinkedDevice(alice, "laptop")
    link(h, a, device_list(alice, 1, laptop))
    c = h.connect(laptop)
    # When bob's v1.1 client sends alice a Box for her account key
    assert h.send(b, h.message(b, alice, "old client", "msg-v11001"))["type"] == "ack"
    # Then her device 1 gets it, as before devices; the laptop gets nothing
    message = unique_message(h, a)
    assert "key" not in message and "fromDevice" not in message
    assert alice.decrypt_from(bob, message["body"], message["nonce"]) == "old client"
    assert h.posts.of_type(c.connection_id, "message") == []
    assert queue_items(h, "alice#laptop") == []


def without_self_copies(frame: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in frame.items() if k not in ("selfCopies", "selfDevices")}


# --- acks, receipts, sync -------------------------------------------------------------------


def test_the_first_device_to_ack_makes_one_delivered_receipt_for_every_sender_device(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    a, b = h.connect(alice), h.connect(bob)
    laptop = LinkedDevice(alice, "laptop")
    alices = device_list(alice, 1, laptop)
    link(h, a, alices)
    c = h.connect(laptop)
    bobs = device_list(bob, 0)
    h.send(b, sealed_message(bob.box_key, alices, bobs, "1", "hi", "msg-ak0001"))
    # When alice's laptop acks its copy
    h.send(c, {"action": "ack", "ids": [unique_message(h, c)["id"]]})
    # Then bob gets one delivered receipt, and the laptop's copy is gone
    [receipt] = h.posts.of_type(b.connection_id, "receipt")
    assert (receipt["status"], receipt["messageIds"], receipt["by"]) == (
        "delivered",
        ["msg-ak0001"],
        "alice",
    )
    assert queue_items(h, "alice#laptop") == []
    # And device 1's ack of its own copy deletes it and tells bob nothing more
    h.send(a, {"action": "ack", "ids": [unique_message(h, a)["id"]]})
    assert len(h.posts.of_type(b.connection_id, "receipt")) == 1
    assert queue_items(h, "alice") == []
    # When alice writes from her laptop and bob acks it
    h.posts.take(a.connection_id)
    h.send(c, sealed_message(laptop.box_key, bobs, alices, "laptop", "yo", "msg-ak0002"))
    h.send(b, {"action": "ack", "ids": [unique_message(h, b)["id"]]})
    # Then each of alice's devices gets the receipt in its own queue
    for connection in (a, c):
        [told] = h.posts.of_type(connection.connection_id, "receipt")
        assert told["messageIds"] == ["msg-ak0002"]
    assert [i["kind"]["S"] for i in queue_items(h, "alice#laptop")] == ["receipt"]
    # And the ack of the copy of her own message makes no receipt for anyone
    own = [m for m in h.posts.of_type(a.connection_id, "message") if m.get("to") == "bob"]
    h.send(a, {"action": "ack", "ids": [own[0]["id"]]})
    assert len(h.posts.of_type(b.connection_id, "receipt")) == 1
    assert [i["kind"]["S"] for i in queue_items(h, "alice")] == ["receipt"]


def test_seen_receipts_reach_every_device_of_the_sender_and_sync_is_per_device(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    a, b = h.connect(alice), h.connect(bob)
    laptop = LinkedDevice(alice, "laptop")
    alices = device_list(alice, 1, laptop)
    link(h, a, alices)
    # Given the laptop is offline when bob writes
    h.send(b, sealed_message(bob.box_key, alices, device_list(bob, 0), "1", "hi", "msg-sy0001"))
    # When bob marks alice's messages seen
    h.send(b, {"action": "markSeen", "to": "alice", "messageIds": ["msg-x0000001"]})
    # Then the laptop's sync yields its own copy and the seen receipt, and device 1's queue
    # keeps its own items
    c = h.connect(laptop)
    h.send(c, {"action": "sync"})
    kinds = [f["type"] for f in h.posts.take(c.connection_id)]
    assert kinds == ["message", "receipt", "syncDone"]
    assert len(queue_items(h, "alice")) == 2


# --- connections and presence ----------------------------------------------------------------


def test_the_connection_cap_is_per_device_and_presence_spans_devices(
    h: Harness, alice: TestUser, bob: TestUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[str] = []
    monkeypatch.setattr(Connections, "close", lambda self, cid: closed.append(cid))
    a = h.connect(alice)
    laptop = LinkedDevice(alice, "laptop")
    link(h, a, device_list(alice, 1, laptop))
    # Given the laptop holds four connections, and device 1 one
    laptops = []
    for _ in range(MAX_CONNECTIONS_PER_DEVICE):
        h.clock.advance(1)
        laptops.append(h.connect(laptop))
    assert closed == []
    # When the laptop opens a fifth, its oldest is replaced; device 1's stays
    h.clock.advance(1)
    h.connect(laptop)
    assert closed == [laptops[0].connection_id]
    # And alice stays online while any device is connected
    b = h.connect(bob)
    h.disconnect(a)
    [answer] = h.send(b, {"action": "getPresence", "userIds": ["alice"]})["users"]
    assert answer["online"] is True


def test_a_blocked_sender_s_other_devices_still_get_the_copy_of_its_message(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    # Given bob blocks alice, who writes from her laptop
    a, b = h.connect(alice), h.connect(bob)
    h.send(b, {"action": "setBlocked", "add": ["alice"]})
    laptop = LinkedDevice(alice, "laptop")
    alices = device_list(alice, 1, laptop)
    link(h, a, alices)
    c = h.connect(laptop)
    frame = sealed_message(laptop.box_key, device_list(bob, 0), alices, "laptop", "x", "msg-bk0001")
    # Then she gets an ordinary ack, bob nothing, and her device 1 its copy, as always
    assert h.send(c, frame)["type"] == "ack"
    assert h.posts.of_type(b.connection_id, "message") == []
    assert queue_items(h, "bob") == []
    assert unique_message(h, a)["to"] == "bob"


def run_connect(h: Harness, device: LinkedDevice, query: dict[str, str]) -> tuple[int, str]:
    """$connect alone, for a handshake the authorizer already admitted: its status, and the
    connection id."""
    request = handshake(new_id(), query, h.clock.now_ms())
    context = allowed(device.user_id, device.device_id)
    response = h.call("$connect", connect_event(h.api, request, context, new_id()))
    return response["statusCode"], request.connection_id


def admitted_laptop(h: Harness, alice: TestUser) -> tuple[Connection, LinkedDevice, dict[str, str]]:
    """alice's device 1 (connected), her laptop, and a handshake of the laptop that the
    authorizer admitted (its $connect not run yet)."""
    a = h.connect(alice)
    laptop = LinkedDevice(alice, "laptop")
    link(h, a, device_list(alice, 1, laptop))
    query = laptop.connect_query(ts=h.clock.now_s(), aud=h.endpoint)
    assert not denied(h, query)
    return a, laptop, query


def test_a_device_removed_between_its_handshake_and_connect_is_refused_there(
    h: Harness, alice: TestUser
) -> None:
    # Given alice's laptop, whose handshake the authorizer admits
    a, laptop, query = admitted_laptop(h, alice)
    # When device 1 removes it before its $connect runs
    link(h, a, device_list(alice, 2))
    status, _ = run_connect(h, laptop, query)
    # Then $connect refuses it (403: the handshake fails) and records no connection
    assert status == 403
    profile = h.services.profiles.get_profile("alice")
    assert profile is not None and set(profile.connections) == {a.connection_id}


def test_a_connection_opened_while_set_devices_runs_is_closed_with_the_others(
    h: Harness, alice: TestUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[str] = []
    monkeypatch.setattr(Connections, "close", lambda self, cid: closed.append(cid))
    a, laptop, query = admitted_laptop(h, alice)
    # Given the laptop's $connect lands after setDevices read the profile, before it wrote
    opened: list[str] = []
    store = DeviceLists.store

    def connect_then_store(self: DeviceLists, listing: DeviceList) -> Any:
        status, connection_id = run_connect(h, laptop, query)
        assert status == 200
        opened.append(connection_id)
        return store(self, listing)

    monkeypatch.setattr(DeviceLists, "store", connect_then_store)
    # When device 1 removes the laptop
    link(h, a, device_list(alice, 2))
    # Then that connection too is told DEVICE_REMOVED and closed, and forgotten
    [error] = h.posts.of_type(opened[0], "error")
    assert error["code"] == "DEVICE_REMOVED"
    assert closed == opened
    profile = h.services.profiles.get_profile("alice")
    assert profile is not None and set(profile.connections) == {a.connection_id}
