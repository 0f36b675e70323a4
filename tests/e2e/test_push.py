"""Mobile push through the local stack: registerPush over a real WebSocket, an offline
send, and the push as moto's SNS server recorded it (fetched over its /moto-api/)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from messenger.contract import SERVICE_NAME, USERS_TABLE
from messenger.dal.profiles import PROFILE, user_key
from messenger_local import LocalStack
from messenger_local.push_log import push_lines
from messenger_protocol.connect import canonical_endpoint, with_query
from tests.support.devices import LinkedDevice, device_list
from tests.support.identities import TestUser
from tests.support.push import apns_token, fcm_token, moto_server_pushes
from tests.support.stack_fixtures import Connect
from tests.support.waiting import until
from tests.support.ws_client import WsClient, message_frame, open_socket

pytestmark = pytest.mark.e2e

SECRET = "meet me at the old mill"


@pytest.fixture
def push_log_lines() -> Iterator[list[str]]:
    """The console lines `messenger local` prints for pushes, at its default INFO level."""
    functions_logger = logging.getLogger(SERVICE_NAME)
    level = functions_logger.level
    functions_logger.setLevel(logging.INFO)
    lines: list[str] = []
    try:
        with push_lines(lines.append):
            yield lines
    finally:
        functions_logger.setLevel(level)


async def pushes_to(stack: LocalStack, token: str) -> list[dict[str, Any]]:
    # A send's ack goes out ahead of its push (handlers/send_message.py): the pushes are
    # all made once every invocation started so far has ended.
    await stack.settled()
    recorded = await asyncio.to_thread(moto_server_pushes, stack.aws_endpoint)
    return recorded.get(token, [])


async def close_and_wait(stack: LocalStack, client: WsClient) -> None:
    """Close a client and wait for its $disconnect to have run: the user is offline."""
    done = len(stack.invocations_of("$disconnect"))
    await client.close()
    await until(lambda: len(stack.invocations_of("$disconnect")) > done)


async def register(client: WsClient, platform: str, token: str) -> None:
    reply = await client.request({"action": "registerPush", "platform": platform, "token": token})
    assert reply == {"type": "pushRegistered", "platform": platform}


async def test_offline_send_pushes_each_device_without_content(
    stack: LocalStack,
    connect: Connect,
    alice: TestUser,
    bob: TestUser,
    push_log_lines: list[str],
) -> None:
    # Given bob registered an iPhone and an Android phone, then went offline
    iphone, android = apns_token(), fcm_token()
    b = await connect(bob)
    await register(b, "APNS", iphone)
    await register(b, "GCM", android)
    await close_and_wait(stack, b)
    # When alice sends him a message
    a = await connect(alice)
    frame = message_frame(alice, bob, SECRET, "msg-push-1")
    assert (await a.request(frame))["type"] == "ack"
    # Then moto's SNS recorded exactly one push per device
    for platform, token in (("APNS", iphone), ("GCM", android)):
        [document] = await pushes_to(stack, token)
        assert set(document) == {"default", platform}
        # saying that something is new, and nothing about what or from whom
        text = json.dumps(document)
        for secret in (SECRET, frame["body"], frame["nonce"], "msg-push-1", "alice"):
            assert secret not in text
    # And the console got one line per push: user, platform, payload size
    assert sorted(line.split("platform=")[1].split()[0] for line in push_log_lines) == [
        "APNS",
        "GCM",
    ]
    assert all(
        " push " in line and "user=bob" in line and " bytes" in line for line in push_log_lines
    )


async def test_a_burst_while_offline_is_one_push(
    stack: LocalStack, connect: Connect, alice: TestUser, bob: TestUser
) -> None:
    token = apns_token()
    b = await connect(bob)
    await register(b, "APNS", token)
    await close_and_wait(stack, b)
    a = await connect(alice)
    for n in range(10):
        assert (await a.request(message_frame(alice, bob, SECRET, f"msg-burst-{n}")))[
            "type"
        ] == "ack"
    assert len(await pushes_to(stack, token)) == 1


async def test_online_recipient_and_receipts_make_no_push(
    stack: LocalStack, connect: Connect, alice: TestUser, bob: TestUser
) -> None:
    # Given both registered phones; bob is online, alice goes offline after sending
    alice_phone, bob_phone = apns_token(), fcm_token()
    a, b = await connect(alice), await connect(bob)
    await register(a, "APNS", alice_phone)
    await register(b, "GCM", bob_phone)
    assert (await a.request(message_frame(alice, bob, SECRET, "msg-push-2")))["type"] == "ack"
    message = await b.next_of("message")
    await close_and_wait(stack, a)
    # When bob acknowledges the message and marks it seen (two receipts for alice)
    await b.send({"action": "ack", "ids": [message["id"]]})
    await b.send({"action": "markSeen", "to": "alice", "messageIds": ["msg-push-2"]})
    await until(lambda: stack.invocations_of("ack") and stack.invocations_of("markSeen"))
    await stack.settled()
    # Then nobody's phone got a push: bob took the message live, receipts never alert
    assert await pushes_to(stack, bob_phone) == []
    assert await pushes_to(stack, alice_phone) == []


async def test_a_stale_connection_answering_gone_falls_back_to_a_push(
    stack: LocalStack, connect: Connect, alice: TestUser, bob: TestUser
) -> None:
    # Given bob offline with a phone, but a connection still recorded on his profile
    # (its $disconnect was lost): the gateway answers 410 Gone for it
    token = apns_token()
    b = await connect(bob)
    await register(b, "APNS", token)
    await close_and_wait(stack, b)
    users = stack.table_names[USERS_TABLE.env.value]
    await asyncio.to_thread(
        stack.aws.client("dynamodb").update_item,
        TableName=users,
        Key={"pk": {"S": user_key("bob")}, "sk": {"S": PROFILE}},
        UpdateExpression="SET conns.#c = :at",
        ExpressionAttributeNames={"#c": "StaleConnId0="},
        ExpressionAttributeValues={":at": {"N": str(int(time.time() * 1000))}},
    )
    # When alice sends
    a = await connect(alice)
    assert (await a.request(message_frame(alice, bob, SECRET, "msg-push-3")))["type"] == "ack"
    # Then the post met Gone, the stale connection was dropped, and bob's phone got a push
    assert len(await pushes_to(stack, token)) == 1
    profile = await asyncio.to_thread(
        stack.aws.client("dynamodb").get_item,
        TableName=users,
        Key={"pk": {"S": user_key("bob")}, "sk": {"S": PROFILE}},
    )
    assert profile["Item"]["conns"]["M"] == {}


async def test_a_removed_device_loses_its_push_token_and_endpoint(
    stack: LocalStack, connect: Connect, alice: TestUser, bob: TestUser
) -> None:
    # Given alice's laptop, a linked device, registered its own push token
    phone = await connect(alice)
    laptop = LinkedDevice(alice, "laptop", aud=canonical_endpoint(stack.ws_url))
    linked = await phone.request(
        {"action": "setDevices", **device_list(alice, 1, laptop).to_wire()}
    )
    assert linked["type"] == "devices"
    on_laptop = WsClient(alice, await open_socket(with_query(stack.ws_url, laptop.connect_query())))
    laptop_token, phone_token = fcm_token(), apns_token()
    await register(on_laptop, "GCM", laptop_token)
    await register(phone, "APNS", phone_token)
    registered = profile_push_map(stack, alice.user_id)
    assert len(registered) == 2
    laptop_arn = next(v["M"]["arn"]["S"] for v in registered.values() if "d" in v["M"])
    # When device 1 removes the laptop from the list
    removed = await phone.request({"action": "setDevices", **device_list(alice, 2).to_wire()})
    assert removed["type"] == "devices" and removed["version"] == 2
    # Then the laptop's token record is gone, device 1's stays, and SNS has no endpoint for it
    [kept] = profile_push_map(stack, alice.user_id).values()
    assert "d" not in kept["M"]
    sns = stack.aws.client("sns")
    with pytest.raises(sns.exceptions.NotFoundException):
        sns.get_endpoint_attributes(EndpointArn=laptop_arn)
    # And a message to alice while offline pushes device 1 only
    await close_and_wait(stack, phone)
    b = await connect(bob)
    frame = message_frame(bob, alice, SECRET, "msg-push-rm")
    assert (await b.request(frame))["type"] == "ack"
    assert len(await pushes_to(stack, phone_token)) == 1
    assert await pushes_to(stack, laptop_token) == []


def profile_push_map(stack: LocalStack, user_id: str) -> dict[str, Any]:
    item = stack.aws.client("dynamodb").get_item(
        TableName=stack.table_names[USERS_TABLE.env.value],
        Key={"pk": {"S": user_key(user_id)}, "sk": {"S": PROFILE}},
        ConsistentRead=True,
    )["Item"]
    push: dict[str, Any] = item.get("push", {}).get("M", {})
    return push
