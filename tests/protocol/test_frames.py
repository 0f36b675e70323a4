"""Frame reading: each refusal names the field and the rule it broke."""

from __future__ import annotations

import json

import pytest

from messenger_protocol import frames
from messenger_protocol.encoding import b64url_encode, is_user_id
from messenger_protocol.errors import BadRequest, TooLarge, UnknownAction
from messenger_protocol.frames import (
    Ack,
    GetPresence,
    RegisterPush,
    SendMessage,
    SetPresenceVisibility,
)
from messenger_protocol.limits import MAX_BODY_BYTES, MAX_CONTACTS, MAX_FRAME_BYTES
from messenger_protocol.names import ErrorCode, PresenceVisibility, PushPlatform, ReceiptStatus
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


def test_a_good_frame_reads_into_its_fields_and_ignores_the_rest() -> None:
    frame = SendMessage.read(SEND | {"from": "mallory"})
    assert (frame.message_id, frame.to, frame.sent_at) == ("msg-00000001", "bob", 5)
    assert not hasattr(frame, "from_")
    assert GetPresence.read({"action": "getPresence", "userIds": ["a"]}).subscribe is False


@pytest.mark.parametrize(
    ("model", "document", "says"),
    [
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
    ],
)
def test_a_refusal_names_the_field_and_its_rule(model, document, says: str) -> None:
    with pytest.raises(BadRequest) as refused:
        model.read(document)
    assert refused.value.code == "BAD_REQUEST"
    assert says in refused.value.message


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

SERVER_EXAMPLES = [
    frames.AckFrame(message_id="msg-00000001", server_ts=1_764_190_000_123),
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
    frames.PushRegisteredFrame(platform=PushPlatform.GCM),
    frames.PongFrame(),
    frames.PresenceVisibilityFrame(visibility=PresenceVisibility.CONTACTS, count=2),
    frames.ErrorFrame(code=ErrorCode.TOO_LARGE, message="body is over", ref=None),
]


def test_there_is_an_example_of_every_server_frame() -> None:
    assert {type(frame) for frame in SERVER_EXAMPLES} == set(frames.SERVER_FRAMES.values())


@pytest.mark.parametrize("frame", SERVER_EXAMPLES, ids=lambda frame: frame.KIND)
def test_a_server_frame_reads_back_as_written_and_keeps_its_schema(frame) -> None:
    wire = json.loads(frame.to_json())
    assert wire["type"] == frame.TYPE
    assert frames.read_server_frame(wire) == frame
    assert errors_of(f"server.{frame.KIND}", wire) == []


@pytest.mark.parametrize(
    "frame_class", list(frames.CLIENT_FRAMES.values()), ids=lambda frame: frame.KIND
)
def test_every_client_frame_reads_its_own_wire_form(frame_class) -> None:
    examples = {
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
    assert frames.reference_of("not an object") is None
