"""Frame reading: each refusal names the field and the rule it broke."""

from __future__ import annotations

import pytest

from messenger.contract import MAX_BODY_BYTES
from messenger.errors import BadRequest, TooLarge
from messenger.models import Ack, GetPresence, RegisterPush, SendMessage, b64url_encode, parse_frame

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
    frame = parse_frame(SendMessage, SEND | {"from": "mallory"})
    assert (frame.message_id, frame.to, frame.sent_at) == ("msg-00000001", "bob", 5)
    assert not hasattr(frame, "from_")
    assert parse_frame(GetPresence, {"action": "getPresence", "userIds": ["a"]}).subscribe is False


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
    ],
)
def test_a_refusal_names_the_field_and_its_rule(model, document, says: str) -> None:
    with pytest.raises(BadRequest) as refused:
        parse_frame(model, document)
    assert refused.value.code == "BAD_REQUEST"
    assert says in refused.value.message


def test_an_oversize_body_is_too_large_whatever_else_is_wrong() -> None:
    oversize = b64url_encode(b"x" * (MAX_BODY_BYTES + 1))
    with pytest.raises(TooLarge):
        parse_frame(SendMessage, SEND | {"body": oversize, "to": "not a user", "sentAt": -1})
