"""Every protocol flow (docs/protocol.md), over real WebSockets, on the real functions."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time

import pytest

from messenger_local import EmbeddedAws, LocalStack
from messenger_protocol.encoding import b64url_encode
from messenger_protocol.limits import CONNECT_WINDOW_SECONDS, MAX_BODY_BYTES, MAX_FRAME_BYTES
from tests.support.identities import TestUser
from tests.support.stack_fixtures import Connect, Site
from tests.support.waiting import until
from tests.support.ws_client import (
    WsClient,
    connect_as,
    handshake_status,
    message_frame,
    signed_url,
)

pytestmark = pytest.mark.e2e


# --- 1. connecting ----------------------------------------------------------------------


async def test_signed_connect_registers_and_opens(
    stack: LocalStack, connect: Connect, alice: TestUser
) -> None:
    client = await connect(alice)
    assert client.connection_id in stack.connection_ids()
    assert await client.request({"action": "ping"}) == {"type": "pong", "dv": 0}


async def test_known_user_connects_again_without_keys(
    stack: LocalStack, connect: Connect, alice: TestUser
) -> None:
    await (await connect(alice)).close()
    assert await handshake_status(signed_url(stack.ws_url, alice, with_keys=False)) == 101


@pytest.mark.parametrize("missing", ["userId", "ts", "nonce", "sig"])
async def test_missing_identity_parameter_is_401_without_the_authorizer(
    stack: LocalStack, alice: TestUser, missing: str
) -> None:
    query = alice.connect_query()
    del query[missing]
    url = stack.ws_url + "?" + "&".join(f"{k}={v}" for k, v in query.items())
    assert await handshake_status(url) == 401
    assert stack.invocations_of("authorizer")[-1].outcome.startswith("unauthorized (no ")
    assert stack.invocations_of("$connect") == []


async def test_bad_signature_is_403(stack: LocalStack, connect: Connect, alice: TestUser) -> None:
    await connect(alice)
    impostor = TestUser("alice")  # same userId, other keys
    assert await handshake_status(signed_url(stack.ws_url, impostor, with_keys=False)) == 403
    assert stack.invocations_of("authorizer")[-1].outcome == "deny"


async def test_replayed_connect_url_is_403(stack: LocalStack, alice: TestUser) -> None:
    url = signed_url(stack.ws_url, alice)
    assert await handshake_status(url) == 101
    assert await handshake_status(url) == 403


async def test_ts_outside_the_window_is_403(stack: LocalStack, alice: TestUser) -> None:
    stale = int(time.time()) - CONNECT_WINDOW_SECONDS - 30
    assert await handshake_status(signed_url(stack.ws_url, alice, ts=stale)) == 403


async def test_unknown_user_without_keys_is_403(stack: LocalStack, alice: TestUser) -> None:
    assert await handshake_status(signed_url(stack.ws_url, alice, with_keys=False)) == 403


async def test_refused_connect_records_no_connection(stack: LocalStack, alice: TestUser) -> None:
    await handshake_status(signed_url(stack.ws_url, alice, with_keys=False))
    assert stack.connection_ids() == []
    assert stack.invocations_of("$connect") == []


# --- 2. sending -------------------------------------------------------------------------
# Every flow between two users runs on one cell and across two (docs/protocol.md §6: the same
# frames, whatever the cells): `site.user(name, home=1)` lives in the other cell.


async def test_send_to_online_recipient(site: Site) -> None:
    # Given alice and bob online
    alice, bob = site.user("alice"), site.user("bob", home=1)
    a, b = await site.connect(alice), await site.connect(bob)
    # When alice sends
    frame = message_frame(alice, bob, "hello bob", "msg-0001", sent_at=1_764_190_000_123)
    ack = await a.request(frame)
    # Then alice gets `ack sent`, and bob the message, from alice, decryptable
    assert ack["type"] == "ack" and ack["status"] == "sent" and ack["messageId"] == "msg-0001"
    message = await b.next_of("message")
    assert message["from"] == alice.user_id and message["messageId"] == "msg-0001"
    assert message["sentAt"] == 1_764_190_000_123 and message["serverTs"] == ack["serverTs"]
    assert bob.decrypt_from(alice, message["body"], message["nonce"]) == "hello bob"
    assert message["id"]


async def test_send_reaches_every_connection_of_the_recipient(site: Site) -> None:
    alice, bob = site.user("alice"), site.user("bob", home=1)
    a = await site.connect(alice)
    phone, laptop = await site.connect(bob), await site.connect(bob)
    await a.request(message_frame(alice, bob, "both", "msg-0002"))
    for device in (phone, laptop):
        assert (await device.next_of("message"))["messageId"] == "msg-0002"


async def test_send_to_offline_recipient_then_sync(site: Site) -> None:
    # Given bob registered, then gone
    alice, bob = site.user("alice"), site.user("bob", home=1)
    await (await site.connect(bob)).close()
    a = await site.connect(alice)
    assert (await a.request(message_frame(alice, bob, "while away", "msg-0003")))["type"] == "ack"
    # When bob comes back and syncs
    b = await site.connect(bob, with_keys=False)
    await b.send({"action": "sync"})
    # Then he gets the message, then syncDone
    message = await b.next()
    assert message["type"] == "message" and message["messageId"] == "msg-0003"
    epoch, dv = site.epoch_of(bob), site.directory_version_of(bob)
    done = {"type": "syncDone", "count": 1, "more": False, "epoch": epoch, "dv": dv}
    assert await b.next() == done
    # And it stays queued until acknowledged: a second sync hands it over again, batched
    await b.send({"action": "sync", "batch": True})
    batch = await b.next()
    assert batch["type"] == "items" and [m["messageId"] for m in batch["items"]] == ["msg-0003"]
    assert await b.next() == done


async def test_resend_gets_the_same_ack_and_no_second_delivery(site: Site) -> None:
    alice, bob = site.user("alice"), site.user("bob", home=1)
    a, b = await site.connect(alice), await site.connect(bob)
    frame = message_frame(alice, bob, "once", "msg-0004")
    first = await a.request(frame)
    second = await a.request(frame)
    assert first == second
    assert (await b.next_of("message"))["messageId"] == "msg-0004"
    await b.nothing_more()


# --- acks and receipts ---------------------------------------------------------------------


async def test_ack_deletes_and_sends_a_delivered_receipt(site: Site) -> None:
    alice, bob = site.user("alice"), site.user("bob", home=1)
    a, b = await site.connect(alice), await site.connect(bob)
    await a.request(message_frame(alice, bob, "read me", "msg-0005"))
    message = await b.next_of("message")
    # When bob acknowledges it
    await b.send({"action": "ack", "ids": [message["id"]]})
    # Then alice gets a delivered receipt, and bob's queue is empty
    receipt = await a.next_of("receipt")
    assert receipt["status"] == "delivered" and receipt["messageIds"] == ["msg-0005"]
    assert receipt["by"] == bob.user_id
    # (across cells the receipt is told before bob's cell deletes: receipt first, always;
    # wait for his ack's invocation to end)
    await until(lambda: site.stack.invocations_of("ack"))
    await b.send({"action": "sync"})
    assert await b.next_of("syncDone") == {
        "type": "syncDone",
        "count": 0,
        "more": False,
        "epoch": site.epoch_of(bob),
        "dv": site.directory_version_of(bob),
    }


async def test_receipt_waits_for_an_offline_sender(site: Site) -> None:
    # Given alice sent, then left
    alice, bob = site.user("alice"), site.user("bob", home=1)
    a, b = await site.connect(alice), await site.connect(bob)
    await a.request(message_frame(alice, bob, "bye", "msg-0006"))
    await a.close()
    message = await b.next_of("message")
    await b.send({"action": "ack", "ids": [message["id"]]})
    # (an ack has no answer to wait for: wait for its invocation to end)
    await until(lambda: site.stack.invocations_of("ack"))
    # When alice comes back and syncs
    a2 = await site.connect(alice, with_keys=False)
    await a2.send({"action": "sync"})
    # Then the receipt is waiting for her, and goes once she acks it
    receipt = await a2.next_of("receipt")
    assert receipt["status"] == "delivered" and receipt["messageIds"] == ["msg-0006"]
    assert (await a2.next_of("syncDone"))["count"] == 1
    await a2.send({"action": "ack", "ids": [receipt["id"]]})
    await until(lambda: len(site.stack.invocations_of("ack")) == 2)
    await a2.send({"action": "sync"})
    assert (await a2.next_of("syncDone"))["count"] == 0


async def test_mark_seen_sends_a_seen_receipt(site: Site) -> None:
    alice, bob = site.user("alice"), site.user("bob", home=1)
    a, b = await site.connect(alice), await site.connect(bob)
    await a.request(message_frame(alice, bob, "seen?", "msg-0007"))
    await b.next_of("message")
    await b.send({"action": "markSeen", "to": alice.user_id, "messageIds": ["msg-0007"]})
    receipt = await a.next_of("receipt")
    assert receipt["status"] == "seen" and receipt["messageIds"] == ["msg-0007"]
    assert receipt["by"] == bob.user_id


# --- presence and keys ----------------------------------------------------------------------


async def test_presence_answers_and_follows_changes(site: Site) -> None:
    # Given bob registered and offline
    alice, bob = site.user("alice"), site.user("bob", home=1)
    nobody = site.user("nobody", home=1)
    await (await site.connect(bob)).close()
    a = await site.connect(alice)
    # When alice asks about bob and nobody, subscribing
    answer = await a.request(
        {"action": "getPresence", "userIds": [bob.user_id, nobody.user_id], "subscribe": True}
    )
    assert answer["type"] == "presence"
    entries = {entry["userId"]: entry for entry in answer["users"]}
    assert entries[bob.user_id]["online"] is False
    assert isinstance(entries[bob.user_id]["lastSeen"], int)
    assert entries[nobody.user_id] == {"userId": nobody.user_id, "online": False, "lastSeen": None}
    # Then bob coming online is news, a second device is not, the last one leaving is
    phone = await site.connect(bob, with_keys=False)
    online = await a.next_of("presence")
    assert online["users"] == [{"userId": bob.user_id, "online": True, "lastSeen": None}]
    laptop = await site.connect(bob, with_keys=False)
    await laptop.close()
    await phone.close()
    offline = await a.next_of("presence")
    assert offline["users"][0]["online"] is False
    assert isinstance(offline["users"][0]["lastSeen"], int)
    await a.nothing_more()


async def test_get_keys(site: Site) -> None:
    alice, bob = site.user("alice"), site.user("bob", home=1)
    await (await site.connect(bob)).close()
    a = await site.connect(alice)
    keys = await a.request({"action": "getKeys", "userId": bob.user_id})
    assert keys == {
        "type": "keys",
        "userId": bob.user_id,
        "signKey": bob.sign_key_b64,
        "boxKey": bob.box_key_b64,
    }
    nobody = site.user("nobody", home=1)
    unknown = await a.request({"action": "getKeys", "userId": nobody.user_id})
    assert unknown["type"] == "error" and unknown["code"] == "UNKNOWN_USER"


async def test_ping(connect: Connect, alice: TestUser) -> None:
    assert await (await connect(alice)).request({"action": "ping"}) == {"type": "pong", "dv": 0}


async def test_register_push_answers_push_registered(connect: Connect, alice: TestUser) -> None:
    a = await connect(alice)
    token = secrets.token_hex(32)
    answer = await a.request({"action": "registerPush", "platform": "APNS", "token": token})
    assert answer == {"type": "pushRegistered", "platform": "APNS"}


# --- errors ---------------------------------------------------------------------------------


async def test_unknown_action(connect: Connect, alice: TestUser) -> None:
    error = await (await connect(alice)).request({"action": "dance"})
    assert error["type"] == "error" and error["code"] == "UNKNOWN_ACTION"
    assert error["ref"] == "dance"


async def test_not_json_is_bad_request(connect: Connect, alice: TestUser) -> None:
    error = await (await connect(alice)).request("hello?")
    assert error["type"] == "error" and error["code"] == "BAD_REQUEST"
    assert "ref" not in error  # nothing to name: absent (docs/protocol.md §3)


async def test_an_error_names_the_action_however_long_and_nothing_when_there_is_none(
    connect: Connect, alice: TestUser
) -> None:
    a = await connect(alice)
    long_action = "dance" * 20
    assert (await a.request({"action": long_action}))["ref"] == long_action
    for nameless in ("[1, 2]", json.dumps({"action": 5}), json.dumps({"to": "bob"})):
        error = await a.request(nameless)
        assert error["code"] in {"UNKNOWN_ACTION", "BAD_REQUEST"}, error
        assert "ref" not in error, error


async def test_malformed_frame_is_bad_request_with_ref(site: Site) -> None:
    alice, bob = site.user("alice"), site.user("bob", home=1)
    frame = message_frame(alice, bob, "x", "msg-0008") | {"nonce": "short"}
    error = await (await site.connect(alice)).request(frame)
    assert error["code"] == "BAD_REQUEST" and error["ref"] == "msg-0008"


async def test_unknown_recipient(site: Site) -> None:
    alice, nobody = site.user("alice"), site.user("nobody", home=1)
    a = await site.connect(alice)
    error = await a.request(message_frame(alice, nobody, "hi", "msg-0009"))
    assert error["code"] == "UNKNOWN_RECIPIENT" and error["ref"] == "msg-0009"
    seen = await a.request({"action": "markSeen", "to": nobody.user_id, "messageIds": ["msg-0009"]})
    assert seen["code"] == "UNKNOWN_RECIPIENT"


async def test_body_over_the_limit_is_too_large(site: Site) -> None:
    alice, bob = site.user("alice"), site.user("bob", home=1)
    await (await site.connect(bob)).close()
    a = await site.connect(alice)
    frame = message_frame(alice, bob, "x", "msg-0010")
    frame["body"] = b64url_encode(secrets.token_bytes(MAX_BODY_BYTES + 3))  # still < 32 KB
    error = await a.request(frame)
    assert error["code"] == "TOO_LARGE" and error["ref"] == "msg-0010"


async def test_sender_comes_from_the_connection_not_the_frame(site: Site) -> None:
    alice, bob = site.user("alice"), site.user("bob", home=1)
    a, b = await site.connect(alice), await site.connect(bob)
    await a.request(message_frame(alice, bob, "it's me", "msg-0011") | {"from": "carol"})
    assert (await b.next_of("message"))["from"] == alice.user_id


async def test_the_largest_message_fits_one_frame(site: Site) -> None:
    # Given users with the longest ids (in c0 and c1 with two cells), and a body of
    # exactly MAX_BODY_BYTES
    sender, recipient = site.user("s" * 64), site.user("u" * 64, home=1)
    assert len(sender.user_id) == len(recipient.user_id) == 64
    a, b = await site.connect(sender), await site.connect(recipient)
    frame = message_frame(sender, recipient, "x", "m" * 64, sent_at=2**53)
    frame["body"] = b64url_encode(secrets.token_bytes(MAX_BODY_BYTES))
    assert len(json.dumps(frame).encode()) <= MAX_FRAME_BYTES
    # Then it goes through API Gateway's frame limit, both ways
    assert (await a.request(frame))["type"] == "ack"
    assert (await b.next_of("message"))["body"] == frame["body"]


async def test_each_invocation_is_logged_with_its_outcome(
    stack: LocalStack, connect: Connect, alice: TestUser
) -> None:
    a = await connect(alice)
    await a.request({"action": "dance"})
    [logged] = stack.invocations_of("$default")
    assert logged.outcome == "error UNKNOWN_ACTION" and logged.user == "alice"
    assert logged.connection_id == a.connection_id
    assert re.fullmatch(
        rf"\d\d:\d\d:\d\d\.\d{{3}} \$default +conn={a.connection_id} user=alice  "
        r"200 error UNKNOWN_ACTION  \d+\.\dms",
        logged.line(),
    )


async def test_idle_timeout_takes_a_user_offline_for_watchers(
    shared_aws: EmbeddedAws, alice: TestUser, bob: TestUser
) -> None:
    # Given a stage whose connections idle out after 0.6 s, bob connected, alice watching
    async with LocalStack(aws=shared_aws, idle_timeout=0.6) as short_lived:
        b = await connect_as(short_lived.ws_url, bob)
        a = await connect_as(short_lived.ws_url, alice)
        watching = await a.request({"action": "getPresence", "userIds": ["bob"], "subscribe": True})
        assert watching["users"][0]["online"] is True
        # When bob stays silent while alice keeps sending
        keep_alive = asyncio.create_task(_ping_every(a, 0.2))
        try:
            # Then API Gateway closes bob's connection, and alice hears he went offline
            assert (await b.closed())[0] == 1001
            offline = await a.next_of("presence")
        finally:
            keep_alive.cancel()
        assert offline["users"][0]["userId"] == "bob"
        assert offline["users"][0]["online"] is False
        await a.close()


async def _ping_every(client: WsClient, seconds: float) -> None:
    while True:
        await asyncio.sleep(seconds)
        await client.send({"action": "ping"})
