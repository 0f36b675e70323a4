"""Every refusal of docs/protocol.md: the right error code and ref, and nothing written."""

from __future__ import annotations

import json

import pytest

from messenger_protocol.encoding import b64url_encode
from messenger_protocol.limits import MAX_BODY_BYTES
from tests.support.harness import Connection, Harness
from tests.support.identities import TestUser

pytestmark = pytest.mark.integration

NONCE = b64url_encode(b"\x01" * 24)


def good_send(**changes) -> dict:
    frame = {
        "action": "sendMessage",
        "messageId": "msg-9001",
        "to": "bob",
        "body": b64url_encode(b"ciphertext-bytes-16+"),
        "nonce": NONCE,
        "sentAt": 1,
    }
    frame.update(changes)
    return {k: v for k, v in frame.items() if v is not ...}


@pytest.fixture
def a(h: Harness, alice: TestUser, bob: TestUser) -> Connection:
    h.disconnect(h.connect(bob))
    return h.connect(alice)


def refused(
    h: Harness, connection: Connection, frame: dict | str, route: str | None = None
) -> dict:
    before = h.dump()
    if isinstance(frame, str):
        reply = h.send_raw(connection, frame, route or "$default")
    elif route:
        reply = h.send_raw(connection, json.dumps(frame), route)
    else:
        reply = h.send(connection, frame)
    assert reply is not None and reply["type"] == "error"
    assert isinstance(reply["message"], str) and reply["message"]
    assert h.dump() == before, "a refused frame wrote something"
    return reply


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"to": ...}, "BAD_REQUEST"),
        ({"to": "b o b"}, "BAD_REQUEST"),
        ({"to": 7}, "BAD_REQUEST"),
        ({"to": "bob\n"}, "BAD_REQUEST"),
        ({"body": b64url_encode(b"ciphertext-bytes-16+") + "\n"}, "BAD_REQUEST"),
        ({"nonce": NONCE + "\n"}, "BAD_REQUEST"),
        ({"body": ...}, "BAD_REQUEST"),
        ({"body": ""}, "BAD_REQUEST"),
        ({"body": "has+plus/slash"}, "BAD_REQUEST"),
        ({"body": "padded=="}, "BAD_REQUEST"),
        ({"nonce": b64url_encode(b"\x01" * 23)}, "BAD_REQUEST"),
        ({"nonce": ...}, "BAD_REQUEST"),
        ({"sentAt": "1764190000123"}, "BAD_REQUEST"),
        ({"sentAt": 1.5}, "BAD_REQUEST"),
        ({"sentAt": -1}, "BAD_REQUEST"),
        ({"sentAt": True}, "BAD_REQUEST"),
        ({"sentAt": ...}, "BAD_REQUEST"),
        ({"to": "nobody"}, "UNKNOWN_RECIPIENT"),
        ({"body": b64url_encode(b"x" * (MAX_BODY_BYTES + 1))}, "TOO_LARGE"),
    ],
)
def test_send_refusals_carry_the_message_id(
    h: Harness, a: Connection, change: dict, code: str
) -> None:
    reply = refused(h, a, good_send(**change))
    assert reply["code"] == code
    assert reply["ref"] == "msg-9001"


def test_body_of_exactly_the_limit_is_accepted(h: Harness, a: Connection) -> None:
    reply = h.send(a, good_send(body=b64url_encode(b"x" * MAX_BODY_BYTES)))
    assert reply is not None and reply["type"] == "ack"


@pytest.mark.parametrize(
    "message_id", [..., "short", "x" * 65, "has#hash1", "msg-9001\n", 12345678, None]
)
def test_bad_message_id_is_refused_with_the_action_as_ref(
    h: Harness, a: Connection, message_id: object
) -> None:
    reply = refused(h, a, good_send(messageId=message_id))
    assert reply["code"] == "BAD_REQUEST"
    assert reply["ref"] == "sendMessage"


def test_fields_the_protocol_does_not_define_are_ignored(
    h: Harness, a: Connection, bob: TestUser
) -> None:
    # An impersonation attempt: `from` in the frame is ignored, identity is the connection's
    reply = h.send(a, good_send(**{"from": "mallory", "extra": {"x": 1}}))
    assert reply is not None and reply["type"] == "ack"
    b = h.connect(bob)
    h.send(b, {"action": "sync"})
    assert h.posts.of_type(b.connection_id, "message")[0]["from"] == "alice"


@pytest.mark.parametrize(
    "frame",
    [
        {"action": "ack"},
        {"action": "ack", "ids": []},
        {"action": "ack", "ids": "m#a#b"},
        {"action": "ack", "ids": [1]},
        {"action": "ack", "ids": ["x" * 257]},
        {"action": "ack", "ids": [""]},
        {"action": "ack", "ids": [f"r#{i}" for i in range(101)]},
    ],
)
def test_ack_refusals(h: Harness, a: Connection, frame: dict) -> None:
    reply = refused(h, a, frame)
    assert reply["code"] == "BAD_REQUEST" and reply["ref"] == "ack"


def test_ack_of_ids_that_look_like_nothing_we_make_is_ignored(h: Harness, a: Connection) -> None:
    before = h.dump()
    assert h.send(a, {"action": "ack", "ids": ["some id!", "m#", "m#a#b#c", "✓"]}) is None
    assert h.dump() == before


def test_ack_of_100_ids_is_accepted(h: Harness, a: Connection) -> None:
    assert h.send(a, {"action": "ack", "ids": [f"r#{i}" for i in range(100)]}) is None


@pytest.mark.parametrize(
    "frame",
    [
        {"action": "markSeen", "to": "bob"},
        {"action": "markSeen", "to": "bob", "messageIds": []},
        {"action": "markSeen", "to": "bob", "messageIds": ["bad"]},
        {"action": "markSeen", "to": "bob", "messageIds": ["msg-0001\n"]},
        {"action": "markSeen", "messageIds": ["msg-0001"]},
        {"action": "markSeen", "to": "bob", "messageIds": [f"msg-{i:05d}" for i in range(101)]},
    ],
)
def test_mark_seen_refusals(h: Harness, a: Connection, frame: dict) -> None:
    reply = refused(h, a, frame)
    assert reply["code"] == "BAD_REQUEST" and reply["ref"] == "markSeen"


def test_mark_seen_to_unknown_user(h: Harness, a: Connection) -> None:
    reply = refused(h, a, {"action": "markSeen", "to": "nobody", "messageIds": ["msg-0001"]})
    assert reply["code"] == "UNKNOWN_RECIPIENT"


@pytest.mark.parametrize(
    "frame",
    [
        {"action": "getPresence"},
        {"action": "getPresence", "userIds": []},
        {"action": "getPresence", "userIds": ["bad id"]},
        {"action": "getPresence", "userIds": ["bob\n"]},
        {"action": "getPresence", "userIds": ["bob"], "subscribe": "yes"},
        {"action": "getPresence", "userIds": [f"u{i}" for i in range(101)]},
    ],
)
def test_get_presence_refusals(h: Harness, a: Connection, frame: dict) -> None:
    reply = refused(h, a, frame)
    assert reply["code"] == "BAD_REQUEST" and reply["ref"] == "getPresence"


def test_get_presence_of_100_users_is_accepted(h: Harness, a: Connection) -> None:
    reply = h.send(a, {"action": "getPresence", "userIds": [f"u{i}" for i in range(100)]})
    assert reply is not None and len(reply["users"]) == 100


def test_get_keys(h: Harness, a: Connection, bob: TestUser) -> None:
    assert h.send(a, {"action": "getKeys", "userId": "bob"}) == {
        "type": "keys",
        "userId": "bob",
        "signKey": bob.sign_key_b64,
        "boxKey": bob.box_key_b64,
    }


def test_get_keys_of_unknown_user(h: Harness, a: Connection) -> None:
    reply = refused(h, a, {"action": "getKeys", "userId": "nobody"})
    assert reply["code"] == "UNKNOWN_USER" and reply["ref"] == "getKeys"


def test_get_keys_without_user_id(h: Harness, a: Connection) -> None:
    assert refused(h, a, {"action": "getKeys"})["code"] == "BAD_REQUEST"


@pytest.mark.parametrize("body", ["not json", "{", "", "\ud800", "[" * 100_000 + "]" * 100_000])
def test_default_route_answers_bad_request_to_non_json(
    h: Harness, a: Connection, body: str
) -> None:
    reply = refused(h, a, body, "$default")
    assert reply["code"] == "BAD_REQUEST"
    assert "ref" not in reply  # nothing to name: absent (docs/protocol.md §3)


@pytest.mark.parametrize(
    ("frame", "ref"),
    [
        ({"action": "fly"}, "fly"),
        ({"action": "Ping"}, "Ping"),  # routing is case-sensitive
        ({"no": "action"}, None),
        ([1, 2, 3], None),
        ({"action": 5}, None),
    ],
)
def test_default_route_answers_unknown_action(
    h: Harness, a: Connection, frame: object, ref: str | None
) -> None:
    reply = refused(h, a, json.dumps(frame), "$default")
    assert reply["code"] == "UNKNOWN_ACTION"
    assert reply.get("ref", "absent") == (ref or "absent")


def test_a_route_given_something_else_than_an_object_refuses(h: Harness, a: Connection) -> None:
    reply = refused(h, a, "[1]", "sendMessage")
    assert reply["code"] == "BAD_REQUEST"


def test_unexpected_failure_is_answered_internal_and_never_raised(
    h: Harness, a: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(h.services.profiles, "get_profile", explode)
    monkeypatch.setattr(h.services.profiles, "get_profiles", explode)
    reply = h.send(a, good_send())
    assert reply == {
        "type": "error",
        "code": "INTERNAL",
        "message": "internal error, try again",
        "ref": "msg-9001",
    }


def test_event_without_authorizer_context_is_internal(h: Harness, a: Connection) -> None:
    from messenger.handlers.get_keys import handler
    from messenger_local.events import message_event, new_id
    from tests.support.harness import API, context_for

    body = '{"action":"getKeys","userId":"bob"}'
    event = message_event(API, a.handshake, None, "getKeys", body, new_id(), new_id())
    response = handler(event, context_for("getKeys"))  # type: ignore[arg-type]
    assert json.loads(response["body"])["code"] == "INTERNAL"
