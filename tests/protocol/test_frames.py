"""Frame reading: each refusal names the field and the rule it broke."""

from __future__ import annotations

import json
from typing import Any

import pytest

from messenger_protocol import frames
from messenger_protocol.devices import DeviceList, KeyCopy
from messenger_protocol.encoding import b64url_encode, is_user_id
from messenger_protocol.errors import BadRequest, TooLarge, UnknownAction
from messenger_protocol.frames import (
    Ack,
    GetPresence,
    RegisterPush,
    SendMessage,
    SetBlocked,
    SetDevices,
    SetPresenceVisibility,
)
from messenger_protocol.limits import (
    MAX_BLOCKED,
    MAX_BODY_BYTES,
    MAX_CONTACTS,
    MAX_DEVICES,
    MAX_FRAME_BYTES,
)
from messenger_protocol.names import (
    ErrorCode,
    FrameType,
    PresenceVisibility,
    PushPlatform,
    ReceiptStatus,
)
from tests.support.schemas import errors_of

pytestmark = pytest.mark.unit

SEND = {
    "action": "sendMessage",
    "messageId": "msg-00000001",
    "to": "bob",
    "body": b64url_encode(b"ciphertext"),
    "nonce": b64url_encode(b"\x00" * 24),
    "sentAt": 5,
}
KEY_A, KEY_B, SIG = b64url_encode(b"\x01" * 32), b64url_encode(b"\x02" * 32), "s" * 86


def copy_for(device: str) -> dict[str, str]:
    return {"device": device, "key": b64url_encode(b"k" * 48), "keyNonce": b64url_encode(b"n" * 24)}


def device(device_id: str) -> dict[str, str]:
    return {"deviceId": device_id, "signKey": KEY_A, "boxKey": KEY_B}


# A sendMessage of §8: the body sealed once, the key sealed for each device of both sides.
SEND_TO_DEVICES = SEND | {
    "devices": 3,
    "copies": [copy_for("1"), copy_for("laptop")],
    "selfDevices": 2,
    "selfCopies": [copy_for("phone-2")],
}
SET_DEVICES = {
    "action": "setDevices",
    "version": 3,
    "devices": [device("1"), device("laptop")],
    "sig": SIG,
}


def test_a_good_frame_reads_into_its_fields_and_ignores_the_rest() -> None:
    frame = SendMessage.read(SEND | {"from": "mallory"})
    assert (frame.message_id, frame.to, frame.sent_at) == ("msg-00000001", "bob", 5)
    assert not hasattr(frame, "from_")
    assert GetPresence.read({"action": "getPresence", "userIds": ["a"]}).subscribe is False


ACK = {"type": "ack", "messageId": "msg-00000001", "serverTs": 1, "status": "sent"}
MESSAGE = {
    "type": "message",
    "id": "m#1",
    "messageId": "msg-00000001",
    "from": "alice",
    "body": b64url_encode(b"ciphertext"),
    "nonce": b64url_encode(b"\x00" * 24),
    "sentAt": 1,
    "serverTs": 2,
}
MESSAGE_TO_DEVICE = MESSAGE | {
    "fromDevice": "laptop",
    "key": copy_for("1")["key"],
    "keyNonce": copy_for("1")["keyNonce"],
}
KEYS = {"type": "keys", "userId": "bob", "signKey": KEY_A, "boxKey": KEY_B}
DEVICE_LIST = {"userId": "bob", "version": 3, "devices": SET_DEVICES["devices"], "sig": SIG}
ERROR = {"type": "error", "code": "RATE_LIMITED", "message": "slow down", "ref": "ping"}
SEEN_STORED = {"type": "seenStored", "to": "alice", "messageIds": ["msg-00000001"], "epoch": "e"}

# Each document breaks one rule; the reader refuses it naming the field and the rule.
REFUSALS = [
    (SendMessage, SEND | {"to": "bob\n"}, "to: must be a user id"),
    (SendMessage, {k: v for k, v in SEND.items() if k != "nonce"}, "nonce: required"),
    (SendMessage, SEND | {"sentAt": True}, "sentAt: must be an integer"),
    (SendMessage, SEND | {"sentAt": 2**53 + 1}, "sentAt: must be an integer"),
    (SendMessage, SEND | {"action": "ack"}, "action: must be 'sendMessage'"),
    (Ack, {"action": "ack", "ids": ["ok", 7]}, "ids.1: must be an item id"),
    (Ack, {"action": "ack", "ids": ("a",)}, "ids: must be a list"),
    (frames.Sync, {"action": "sync", "after": "a b"}, "after: must be a cursor"),
    (frames.Sync, {"action": "sync", "after": ""}, "after: must be a cursor"),
    (frames.Sync, {"action": "sync", "after": None}, "after: must be a cursor"),
    (frames.Sync, {"action": "sync", "batch": "yes"}, "batch: must be true or false"),
    (
        frames.SyncDoneFrame,
        {"type": "syncDone", "count": 1, "more": True, "epoch": "e"},
        "cursor: present exactly when more is true",
    ),
    (
        frames.ItemsFrame,
        {"type": "items", "items": [{"type": "pong"}]},
        "items.0: must be a message or receipt frame",
    ),
    (
        GetPresence,
        {"action": "getPresence", "userIds": ["a"], "subscribe": 1},
        "subscribe: must be true or false",
    ),
    (
        RegisterPush,
        {"action": "registerPush", "platform": "WNS", "token": "x"},
        "platform: must be one of APNS, APNS_SANDBOX, GCM",
    ),
    (
        RegisterPush,
        {"action": "registerPush", "platform": "APNS", "token": "zz"},
        "token: not a APNS device token",
    ),
    (SendMessage, SEND | {"to": "Bob"}, "to: must be a user id"),
    (
        SetPresenceVisibility,
        {"action": "setPresenceVisibility", "visibility": "friends"},
        "visibility: must be one of everyone, contacts, nobody",
    ),
    (
        SetPresenceVisibility,
        {"action": "setPresenceVisibility", "visibility": "contacts", "contacts": ["Bob"]},
        "contacts.0: must be a user id",
    ),
    (
        SetPresenceVisibility,
        {
            "action": "setPresenceVisibility",
            "visibility": "contacts",
            "contacts": [f"u{i}" for i in range(MAX_CONTACTS + 1)],
        },
        f"contacts: must be a list of 0 to {MAX_CONTACTS} items",
    ),
    # v1.2: contacts replaces the list, add and remove edit it (§2)
    (
        SetPresenceVisibility,
        {"action": "setPresenceVisibility", "visibility": "contacts", "contacts": [], "add": []},
        "contacts: replaces the list, so not with add or remove",
    ),
    (
        SetPresenceVisibility,
        {"action": "setPresenceVisibility", "visibility": "contacts", "remove": ["Bob"]},
        "remove.0: must be a user id",
    ),
    (
        SetPresenceVisibility,
        {
            "action": "setPresenceVisibility",
            "visibility": "contacts",
            "add": ["bob", "carol"],
            "remove": ["carol"],
        },
        "add: carol also in remove",
    ),
    # v1.2: a sendMessage sealed for devices (§8)
    (SendMessage, SEND_TO_DEVICES | {"devices": -1}, "devices: must be an integer"),
    (SendMessage, SEND_TO_DEVICES | {"devices": "3"}, "devices: must be an integer"),
    (
        SendMessage,
        {k: v for k, v in SEND_TO_DEVICES.items() if k != "devices"},
        "devices: required with copies",
    ),
    (
        SendMessage,
        {k: v for k, v in SEND_TO_DEVICES.items() if k != "selfDevices"},
        "selfDevices: required with selfCopies",
    ),
    (
        SendMessage,
        {k: v for k, v in SEND_TO_DEVICES.items() if k not in ("copies", "devices")},
        "copies: required with selfCopies",
    ),
    (SendMessage, SEND_TO_DEVICES | {"copies": []}, "copies: must be a list of at least 1"),
    (
        SendMessage,
        SEND_TO_DEVICES | {"copies": [copy_for(f"d{i}") for i in range(MAX_DEVICES + 1)]},
        f"copies: must be a list of at most {MAX_DEVICES} items",
    ),
    (
        SendMessage,
        SEND_TO_DEVICES | {"selfCopies": [copy_for(f"d{i}") for i in range(MAX_DEVICES)]},
        f"selfCopies: must be a list of at most {MAX_DEVICES - 1} items",
    ),
    (
        SendMessage,
        SEND_TO_DEVICES | {"copies": [copy_for("laptop"), copy_for("laptop")]},
        "copies: one copy per device (laptop repeated)",
    ),
    (
        SendMessage,
        SEND_TO_DEVICES | {"copies": [copy_for("1") | {"key": b64url_encode(b"k" * 32)}]},
        "copies.0.key: must be 48 bytes in base64url",
    ),
    (
        SendMessage,
        SEND_TO_DEVICES | {"copies": [copy_for("Laptop")]},
        "copies.0.device: must be a device id",
    ),
    (
        SendMessage,
        SEND_TO_DEVICES | {"selfCopies": [{"device": "x", "key": copy_for("x")["key"]}]},
        "selfCopies.0.keyNonce: required",
    ),
    (SendMessage, SEND_TO_DEVICES | {"copies": ["1"]}, "copies.0: must be an object"),
    # v1.2: setBlocked (§2)
    (SetBlocked, {"action": "setBlocked"}, "userIds: required, unless add or remove"),
    (
        SetBlocked,
        {"action": "setBlocked", "userIds": [], "remove": ["bob"]},
        "userIds: replaces the list, so not with add or remove",
    ),
    (
        SetBlocked,
        {"action": "setBlocked", "add": [f"u{i}" for i in range(MAX_BLOCKED + 1)]},
        f"add: must be a list of 0 to {MAX_BLOCKED} items",
    ),
    (
        SetBlocked,
        {"action": "setBlocked", "add": ["mallory"], "remove": ["mallory"]},
        "add: mallory also in remove",
    ),
    (SetBlocked, {"action": "setBlocked", "userIds": "mallory"}, "userIds: must be a list"),
    # v1.2: setDevices, the limits of §8 checked at read
    (SetDevices, {k: v for k, v in SET_DEVICES.items() if k != "sig"}, "sig: required"),
    (SetDevices, SET_DEVICES | {"sig": "AAAA"}, "sig: must be 64 bytes in base64url"),
    (SetDevices, SET_DEVICES | {"version": -1}, "version: must be an integer"),
    (
        SetDevices,
        SET_DEVICES | {"devices": [device("laptop")]},
        "devices: device 1 must be listed",
    ),
    (
        SetDevices,
        SET_DEVICES | {"devices": [device("1"), device("x"), device("x")]},
        "devices: each device id once (x repeated)",
    ),
    (
        SetDevices,
        SET_DEVICES | {"devices": [device("1")] + [device(f"d{i}") for i in range(MAX_DEVICES)]},
        f"devices: must be a list of at most {MAX_DEVICES} items",
    ),
    (SetDevices, SET_DEVICES | {"devices": []}, "devices: must be a list of at least 1"),
    (
        SetDevices,
        SET_DEVICES | {"version": 0},
        "devices: version 0 lists device 1 alone",
    ),
    (
        SetDevices,
        SET_DEVICES | {"devices": [device("1") | {"boxKey": "x"}]},
        "devices.0.boxKey: must be 32 bytes in base64url",
    ),
    (
        SetDevices,
        SET_DEVICES | {"devices": [device("1") | {"deviceId": "a" * 33}]},
        "devices.0.deviceId: must be a device id",
    ),
    # v1.2 server frames (a client reads them)
    (frames.AckFrame, ACK | {"epoch": "us east"}, "epoch: must be an epoch"),
    (frames.AckFrame, ACK | {"dv": -1}, "dv: must be an integer"),
    (frames.PongFrame, {"type": "pong", "dv": 1.5}, "dv: must be an integer"),
    (
        frames.SyncDoneFrame,
        {"type": "syncDone", "count": 0, "more": False, "epoch": "x" * 65},
        "epoch: must be an epoch",
    ),
    (
        frames.MessageFrame,
        {k: v for k, v in MESSAGE_TO_DEVICE.items() if k != "keyNonce"},
        "keyNonce: present exactly when key is",
    ),
    (
        frames.MessageFrame,
        {k: v for k, v in MESSAGE_TO_DEVICE.items() if k != "fromDevice"},
        "fromDevice: required with key",
    ),
    (frames.MessageFrame, MESSAGE | {"to": "bob"}, "key: required with to"),
    (frames.MessageFrame, MESSAGE_TO_DEVICE | {"fromDevice": "L"}, "fromDevice: must be"),
    (frames.SeenStoredFrame, SEEN_STORED | {"epoch": ""}, "epoch: must be an epoch"),
    (frames.SeenStoredFrame, SEEN_STORED | {"messageIds": []}, "messageIds: must be a list"),
    (frames.BlockedFrame, {"type": "blocked", "count": MAX_BLOCKED + 1}, "count: must be"),
    (
        frames.SettingsFrame,
        {"type": "settings", "visibility": "nobody", "contacts": []},
        "blocked: required",
    ),
    (
        frames.DevicesFrame,
        {"type": "devices", **{k: v for k, v in DEVICE_LIST.items() if k != "sig"}},
        "sig: required",
    ),
    (
        frames.DevicesFrame,
        {"type": "devices", **DEVICE_LIST, "devices": [device("2")]},
        "devices: device 1 must be listed",
    ),
    (
        frames.KeysFrame,
        KEYS | {"devices": DEVICE_LIST | {"userId": "mallory"}},
        "devices.userId: must be the keys' userId",
    ),
    (
        frames.KeysFrame,
        KEYS | {"devices": DEVICE_LIST | {"version": 0, "devices": [device("1")]}},
        "devices.version: a list of version 0 is not sent",
    ),
    (
        frames.KeysFrame,
        KEYS | {"devices": DEVICE_LIST | {"sig": 7}},
        "devices.sig: must be a string",
    ),
    (frames.KeysFrame, KEYS | {"devices": [DEVICE_LIST]}, "devices: must be an object"),
    (
        frames.ErrorFrame,
        ERROR | {"code": "BAD_REQUEST", "retryAfter": 5},
        "retryAfter: only with RATE_LIMITED or QUEUE_FULL",
    ),
    (frames.ErrorFrame, ERROR | {"retryAfter": 0}, "retryAfter: must be an integer"),
    (frames.ErrorFrame, ERROR | {"code": "QUEUE_FULL"}, "retryAfter: required with QUEUE_FULL"),
    (
        frames.ErrorFrame,
        ERROR | {"code": "STALE_DEVICES", "devices": 2},
        "selfDevices: required with STALE_DEVICES",
    ),
    (frames.ErrorFrame, ERROR | {"selfDevices": 2}, "selfDevices: only with STALE_DEVICES"),
]
# Rules a JSON Schema cannot state: the reader alone refuses these (the refusal says which).
READER_ONLY_RULES = (
    "repeated",  # each device id once
    "must be listed",  # device 1 in a device list
    "also in remove",  # add and remove disjoint
    "must be the keys' userId",
    "not a APNS device token",
)


@pytest.mark.parametrize(("model", "document", "says"), REFUSALS)
def test_a_refusal_names_the_field_and_its_rule(model, document, says: str) -> None:
    with pytest.raises(BadRequest) as refused:
        model.read(document)
    assert refused.value.code == "BAD_REQUEST"
    assert says in refused.value.message


@pytest.mark.parametrize(("model", "document", "says"), REFUSALS)
def test_the_schema_refuses_what_the_reader_refuses(model, document, says: str) -> None:
    # Given a document the reader refuses (the test above)
    side = "client" if issubclass(model, frames.ClientFrame) else "server"
    problems = errors_of(f"{side}.{model.KIND}", document)
    # Then the published schema refuses it too, unless no schema can state the rule (or
    # the checker here is Python's `re`, whose `$` matches before a final newline: the
    # ECMA regexes of JSON Schema do not)
    if any(rule in says for rule in READER_ONLY_RULES) or "\\n" in json.dumps(document):
        return
    assert problems, f"the schema accepts what the reader refuses ({says})"


@pytest.mark.parametrize(
    "user_id",
    ["alice", "a", "alice-8491ef", "alice_01.x", "0day", "a" * 64, "alice-8491ef."],
)
def test_lowercase_ids_starting_with_a_letter_or_digit_are_user_ids(user_id: str) -> None:
    assert is_user_id(user_id)


@pytest.mark.parametrize(
    "user_id",
    ["ALICE-8491ef", "Alice-8491ef", ".", "..", "...", "-", "-x", "_x", ".alice", "a" * 65, ""],
)
def test_look_alike_ids_are_not_user_ids(user_id: str) -> None:
    # People confuse case, and dots alone read as paths (docs/protocol.md §1).
    assert not is_user_id(user_id)


def test_contacts_count_only_with_the_contacts_visibility() -> None:
    listed = {"action": "setPresenceVisibility", "contacts": ["bob", "carol", "bob"]}
    contacts = SetPresenceVisibility.read(listed | {"visibility": "contacts"})
    assert contacts.allowed() == ["bob", "carol"]
    assert SetPresenceVisibility.read(listed | {"visibility": "nobody"}).allowed() == []
    empty = SetPresenceVisibility.read(
        {"action": "setPresenceVisibility", "visibility": "contacts"}
    )
    assert empty.visibility is PresenceVisibility.CONTACTS and empty.allowed() == []


def test_an_oversize_body_is_too_large_whatever_else_is_wrong() -> None:
    oversize = b64url_encode(b"x" * (MAX_BODY_BYTES + 1))
    with pytest.raises(TooLarge):
        SendMessage.read(SEND | {"body": oversize, "to": "not a user", "sentAt": -1})


# --- both directions: one writer and one reader per frame -----------------------------------

LIST = DeviceList.read(DEVICE_LIST)

SERVER_EXAMPLES = [
    frames.AckFrame(message_id="msg-00000001", server_ts=1_764_190_000_123),
    frames.AckFrame(message_id="msg-00000001", server_ts=1, epoch="us-east-1#2", dv=7),
    frames.MessageFrame(
        id="m#alice#msg-00000001",
        message_id="msg-00000001",
        sender="alice",
        body=b64url_encode(b"ciphertext"),
        nonce=b64url_encode(b"\x00" * 24),
        sent_at=1,
        server_ts=2,
    ),
    frames.ReceiptFrame(
        id="r#1", status=ReceiptStatus.SEEN, message_ids=["msg-00000001"], by="bob", at=3
    ),
    frames.SyncDoneFrame(count=7, more=False, epoch="us-east-1"),
    frames.SyncDoneFrame(count=500, more=True, epoch="local", cursor="AQID-_x"),
    frames.SyncDoneFrame(count=0, more=False, epoch="local-c0#3", dv=0),
    frames.MessageFrame.read(MESSAGE_TO_DEVICE),
    frames.MessageFrame.read(MESSAGE_TO_DEVICE | {"from": "bob", "to": "alice"}),
    frames.ItemsFrame(
        items=[
            frames.ReceiptFrame(
                id="r#2", status=ReceiptStatus.DELIVERED, message_ids=["m-000001"], by="bob", at=4
            )
        ]
    ),
    frames.PresenceFrame(users=[frames.PresenceEntry(user_id="bob", online=False, last_seen=None)]),
    frames.KeysFrame(
        user_id="bob", sign_key=b64url_encode(b"\x01" * 32), box_key=b64url_encode(b"\x02" * 32)
    ),
    frames.KeysFrame(user_id="bob", sign_key=KEY_A, box_key=KEY_B, devices=LIST),
    frames.PushRegisteredFrame(platform=PushPlatform.GCM),
    frames.PongFrame(),
    frames.PongFrame(dv=12),
    frames.PresenceVisibilityFrame(visibility=PresenceVisibility.CONTACTS, count=2),
    frames.SeenStoredFrame(to="alice", message_ids=["msg-00000001"], epoch="eu-west-1#1"),
    frames.BlockedFrame(count=3),
    frames.SettingsFrame(
        visibility=PresenceVisibility.CONTACTS, contacts=["bob", "carol"], blocked=["mallory"]
    ),
    frames.DevicesFrame(user_id="bob", version=3, devices=LIST.devices, sig=SIG),
    frames.ErrorFrame(code=ErrorCode.TOO_LARGE, message="body is over", ref=None),
    frames.ErrorFrame(code=ErrorCode.RATE_LIMITED, message="slow", ref="ping", retry_after=250),
    frames.ErrorFrame(code=ErrorCode.RATE_LIMITED, message="slow", ref="ping"),
    frames.ErrorFrame(code=ErrorCode.QUEUE_FULL, message="full", ref="m-000001", retry_after=1),
    frames.ErrorFrame(
        code=ErrorCode.STALE_DEVICES, message="stale", ref="m-000001", devices=4, self_devices=0
    ),
    frames.ErrorFrame(code=ErrorCode.MOVED, message="moved", ref=None),
]


def test_there_is_an_example_of_every_server_frame() -> None:
    assert {type(frame) for frame in SERVER_EXAMPLES} == set(frames.SERVER_FRAMES.values())


@pytest.mark.parametrize("frame", SERVER_EXAMPLES, ids=lambda frame: str(frame.KIND))
def test_a_server_frame_reads_back_as_written_and_keeps_its_schema(frame) -> None:
    wire = json.loads(frame.to_json())
    assert wire["type"] == frame.TYPE
    assert frames.read_server_frame(wire) == frame
    assert errors_of(f"server.{frame.KIND}", wire) == []


CLIENT_EXAMPLES: list[dict[str, Any]] = [
    SEND_TO_DEVICES,
    SEND | {"devices": 0},
    SEND | {"devices": 0, "copies": [copy_for("1")], "selfDevices": 2, "selfCopies": []},
    {"action": "setPresenceVisibility", "visibility": "contacts", "add": ["dave"]},
    {"action": "setPresenceVisibility", "visibility": "contacts", "add": ["x"], "remove": ["y"]},
    {"action": "setBlocked", "userIds": []},
    {"action": "setBlocked", "add": ["mallory"]},
    {"action": "setBlocked", "add": ["mallory"], "remove": ["trent"]},
    SET_DEVICES | {"version": 0, "devices": [device("1")]},
]


@pytest.mark.parametrize("document", CLIENT_EXAMPLES, ids=lambda document: document["action"])
def test_a_v12_client_frame_reads_back_as_written_and_keeps_its_schema(document) -> None:
    frame = frames.read_client_frame(document)
    assert json.loads(frame.to_json()) == document
    assert errors_of(f"client.{frame.KIND}", document) == []


@pytest.mark.parametrize(
    "frame_class", list(frames.CLIENT_FRAMES.values()), ids=lambda frame: frame.KIND
)
def test_every_client_frame_reads_its_own_wire_form(frame_class) -> None:
    examples = {
        "setBlocked": {"action": "setBlocked", "userIds": ["mallory"]},
        "setDevices": SET_DEVICES,
        "sendMessage": SEND,
        "ack": {"action": "ack", "ids": ["m#bob#msg-00000001"]},
        "markSeen": {"action": "markSeen", "to": "bob", "messageIds": ["msg-00000001"]},
        "getPresence": {"action": "getPresence", "userIds": ["bob"], "subscribe": True},
        "getKeys": {"action": "getKeys", "userId": "bob"},
        "sync": {"action": "sync", "after": "AQID-_x", "batch": True},
        "registerPush": {"action": "registerPush", "platform": "APNS", "token": "ab" * 32},
        "setPresenceVisibility": {
            "action": "setPresenceVisibility",
            "visibility": "contacts",
            "contacts": ["bob", "carol"],
        },
    }
    document = examples.get(frame_class.KIND, {"action": frame_class.KIND})
    frame = frames.read_client_frame(document)
    assert type(frame) is frame_class
    assert json.loads(frame.to_json()) == document
    assert errors_of(f"client.{frame.KIND}", document) == []


def test_a_sync_without_options_starts_from_the_oldest_item_one_frame_each() -> None:
    assert frames.Sync.read({"action": "sync"}) == frames.Sync(after=None, batch=False)


def _message(body_bytes: int, index: int = 0) -> frames.MessageFrame:
    return frames.MessageFrame(
        id=f"m#{'s' * 64}#{index:064d}",
        message_id=f"{index:064d}",
        sender="s" * 64,
        body=b64url_encode(b"\xff" * body_bytes),
        nonce=b64url_encode(b"\x00" * 24),
        sent_at=2**53,
        server_ts=2**53,
    )


@pytest.mark.parametrize("body_bytes", [1, 120, 5_000, 16_000, MAX_BODY_BYTES])
def test_items_frames_keep_order_and_stay_within_32_kb(body_bytes: int) -> None:
    # Given 40 messages with the longest ids and times the protocol allows
    items = [_message(body_bytes, i) for i in range(40)]
    # When they are packed into items frames
    packed = frames.ItemsFrame.pack(items)
    # Then every frame is an items frame of at most 32 KB, as sent (UTF-8)
    sizes = [len(frame.to_json().encode()) for frame in packed]
    assert all(isinstance(frame, frames.ItemsFrame) for frame in packed)
    assert max(sizes) <= MAX_FRAME_BYTES
    # And together they carry every item once, in order
    assert [item for frame in packed for item in frame.items] == items  # type: ignore[attr-defined]
    # And no frame could have taken the next frame's first item
    for following, size in zip(packed[1:], sizes, strict=False):
        first = following.items[0]  # type: ignore[attr-defined]
        assert size + 1 + len(first.to_json().encode()) > MAX_FRAME_BYTES


def test_packing_measures_bytes_not_characters() -> None:
    # Given receipts whose sender ids are long: the frames' size is counted in bytes
    receipt = frames.ReceiptFrame(
        id="r#" + "é" * 100,
        status=ReceiptStatus.DELIVERED,
        message_ids=["m-000001"],
        by="bob",
        at=1,
    )
    packed = frames.ItemsFrame.pack([receipt] * 200, limit=4096)
    assert all(len(frame.to_json().encode()) <= 4096 for frame in packed)
    assert [len(frame.items) for frame in packed if isinstance(frame, frames.ItemsFrame)]
    assert sum(len(f.items) for f in packed if isinstance(f, frames.ItemsFrame)) == 200


def test_unknown_frames_are_told_apart() -> None:
    with pytest.raises(UnknownAction, match="unknown action 'fly'"):
        frames.read_client_frame({"action": "fly"})
    with pytest.raises(UnknownAction, match="frame has no action"):
        frames.read_client_frame([1])
    with pytest.raises(BadRequest, match="not a server frame type"):
        frames.read_server_frame({"type": "telegram"})


def test_ref_is_the_message_id_when_well_formed_else_the_action() -> None:
    assert frames.reference_of({"messageId": "msg-00000001", "action": "x"}) == "msg-00000001"
    assert frames.reference_of({"messageId": "bad id", "action": "sendMessage"}) == "sendMessage"
    assert frames.reference_of({"action": ""}) is None
    assert frames.reference_of({"action": "x" * 100}) == "x" * 100  # named, however long
    assert frames.reference_of("not an object") is None


# --- v1.2 -------------------------------------------------------------------------------------


def test_a_contacts_edit_applies_to_the_stored_list_and_a_replace_ignores_it() -> None:
    # Given bob and carol on the stored list
    stored = ["bob", "carol"]
    edit = SetPresenceVisibility.read(
        {"action": "setPresenceVisibility", "visibility": "contacts", "add": ["dave", "bob"]}
        | {"remove": ["carol"]}
    )
    replace = SetPresenceVisibility.read(
        {"action": "setPresenceVisibility", "visibility": "contacts", "contacts": ["erin"]}
    )
    # Then an edit keeps the rest, each once, and a replace is the list it names
    assert edit.edits_contacts and not replace.edits_contacts
    assert edit.contacts_after(stored) == ["bob", "dave"]
    assert replace.contacts_after(stored) == ["erin"] == replace.allowed()
    # And with another visibility nobody is a contact
    nobody = SetPresenceVisibility.read(
        {"action": "setPresenceVisibility", "visibility": "nobody", "add": ["dave"]}
    )
    assert nobody.contacts_after(stored) == []


def test_an_edit_past_the_limit_is_refused_by_name() -> None:
    full = [f"u{i}" for i in range(MAX_CONTACTS)]
    one_more = SetPresenceVisibility.read(
        {"action": "setPresenceVisibility", "visibility": "contacts", "add": ["zed"]}
    )
    with pytest.raises(BadRequest, match=f"contacts: at most {MAX_CONTACTS} user ids"):
        one_more.contacts_after(full)
    # Removing one first makes room
    swap = SetPresenceVisibility.read(
        {"action": "setPresenceVisibility", "visibility": "contacts", "add": ["zed"]}
        | {"remove": ["u0"]}
    )
    assert len(swap.contacts_after(full)) == MAX_CONTACTS
    blocked = [f"u{i}" for i in range(MAX_BLOCKED)]
    with pytest.raises(BadRequest, match=f"userIds: at most {MAX_BLOCKED} user ids"):
        SetBlocked.read({"action": "setBlocked", "add": ["zed"]}).blocked_after(blocked)


def test_blocking_replaces_or_edits_the_list() -> None:
    stored = ["mallory", "trent"]
    assert SetBlocked.read({"action": "setBlocked", "add": ["eve", "mallory"]}).blocked_after(
        stored
    ) == ["mallory", "trent", "eve"]
    assert SetBlocked.read({"action": "setBlocked", "remove": ["trent"]}).blocked_after(stored) == [
        "mallory"
    ]
    replaced = SetBlocked.read({"action": "setBlocked", "userIds": ["eve", "eve"]})
    assert replaced.blocked_after(stored) == ["eve"]


def test_set_devices_carries_exactly_a_device_list() -> None:
    # Given a signed list, When device 1 sends it
    listing = DeviceList.read(DEVICE_LIST)
    frame = SetDevices.of(listing)
    # Then the frame is the list without its user, which the connection gives back
    assert json.loads(frame.to_json()) == SET_DEVICES
    assert frame.device_list("bob") == listing
    assert frames.DevicesFrame.read({"type": "devices", **DEVICE_LIST}).device_ids == [
        "1",
        "laptop",
    ]


def test_a_send_says_whether_it_is_sealed_for_devices() -> None:
    sealed = SendMessage.read(SEND_TO_DEVICES)
    assert sealed.sealed_for_devices
    assert sealed.copies == [KeyCopy.read(copy_for("1")), KeyCopy.read(copy_for("laptop"))]
    assert not SendMessage.read(SEND).sealed_for_devices
    received = frames.MessageFrame.read(MESSAGE_TO_DEVICE)
    assert received.sealed_for_devices and not frames.MessageFrame.read(MESSAGE).sealed_for_devices


@pytest.mark.parametrize(("frame_type", "names"), frames.V12_SERVER_FIELDS.items())
def test_the_v12_server_fields_are_optional_until_the_server_sends_them(frame_type, names):
    # Given the fields v1.2 has the server send, which the functions do not fill yet
    frame_class = frames.SERVER_FRAMES[frame_type]
    schema = frame_class.schema()
    for name in names:
        spec = next(spec for _, spec in frame_class.specs() if spec.name == name)
        # Then each one is required exactly when the switch says so, in reader and schema
        assert spec.required is frames.REQUIRE_V12_SERVER_FIELDS, name
        assert (name in schema["required"]) is frames.REQUIRE_V12_SERVER_FIELDS, name
    # And a v1.1 server's frames still read (absent means None)
    v11 = {
        FrameType.ACK: ACK,
        FrameType.SYNC_DONE: {"type": "syncDone", "count": 0, "more": False, "epoch": "e"},
        FrameType.PONG: {"type": "pong"},
        FrameType.ERROR: ERROR,
    }[frame_type]
    read = frames.read_server_frame(v11)
    assert frames.REQUIRE_V12_SERVER_FIELDS or json.loads(read.to_json()) == v11
    assert frames.REQUIRE_V12_SERVER_FIELDS or errors_of(f"server.{frame_type}", v11) == []


def test_a_device_copy_of_ones_own_message_names_the_peer() -> None:
    own = frames.MessageFrame.read(MESSAGE_TO_DEVICE | {"to": "bob"})
    assert (own.sender, own.to, own.from_device) == ("alice", "bob", "laptop")


def test_a_frame_over_32_kb_is_too_large_and_one_at_it_is_not() -> None:
    # Given the largest body, sealed for 5 devices and the sender's other 4
    body = b64url_encode(b"\xff" * MAX_BODY_BYTES)
    sealed = SendMessage.read(
        SEND_TO_DEVICES
        | {
            "body": body,
            "copies": [copy_for(f"device-{i}") for i in range(MAX_DEVICES)],
            "selfCopies": [copy_for(f"own-{i}") for i in range(MAX_DEVICES - 1)],
        }
    )
    # Then each field keeps its rule, but the frame is over 32 KB: TOO_LARGE as a whole
    with pytest.raises(TooLarge, match=f"over {MAX_FRAME_BYTES}"):
        frames.check_frame_size(sealed.to_json())
    frames.check_frame_size("x" * MAX_FRAME_BYTES)
    with pytest.raises(TooLarge):
        frames.check_frame_size("é" * (MAX_FRAME_BYTES // 2 + 1))  # bytes, not characters
