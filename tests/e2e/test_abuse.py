"""Abuse through the real stack: frames API Gateway itself refuses, and frames our
functions refuse, all leave the tables as they were."""

from __future__ import annotations

import asyncio
import json

import boto3
import pytest
from websockets.exceptions import ConnectionClosed

from messenger.contract import TABLES
from messenger_local import LocalStack
from tests.support.identities import TestUser
from tests.support.stack_fixtures import Connect

pytestmark = pytest.mark.e2e


def dump(stack: LocalStack) -> dict[str, list[dict]]:
    """Every item of the stack's tables (verification only: a Scan in a test is fine)."""
    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=stack.aws_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    state = {}
    for spec in TABLES:
        name = stack.table_names[spec.env.value]
        items = dynamodb.scan(TableName=name, ConsistentRead=True)["Items"]
        state[name] = sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
    return state


async def closed_with(client, timeout: float = 5.0) -> int | None:
    try:
        await asyncio.wait_for(client.socket.recv(), timeout)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None
    return None


async def test_non_utf8_text_frame_closes_with_1007_and_writes_nothing(
    stack: LocalStack, connect: Connect, alice: TestUser
) -> None:
    client = await connect(alice)
    await stack.settled()
    before = await asyncio.to_thread(dump, stack)
    # A text frame whose payload is not UTF-8 (websockets sends the bytes as they are)
    await client.socket.send(b'{"action":"ping","x":"\xff\xfe"}', text=True)
    assert await closed_with(client) == 1007
    await stack.settled()
    after = await asyncio.to_thread(dump, stack)
    # Nothing but the connection's own departure changed
    users = stack.table_names["USERS_TABLE"]

    def profiles(state: dict[str, list[dict]]) -> list[str]:
        return [item["userId"]["S"] for item in state[users] if item["sk"]["S"] == "PROFILE"]

    assert profiles(after) == profiles(before)
    assert after[stack.table_names["QUEUE_TABLE"]] == before[stack.table_names["QUEUE_TABLE"]]


@pytest.mark.parametrize(
    "body",
    [
        "[" * 5_000 + "]" * 5_000,  # deeply nested JSON, under the frame limit
        json.dumps(
            {
                "action": "sendMessage",
                "messageId": "msg-00000001",
                "to": "bob",
                "from": "bob",
                "body": "A" * 20,
                "nonce": "A" * 32,
                "sentAt": 1,
                "junk": {"a": [{"b": [1] * 2000}]},
            }
        ),
        json.dumps({"action": "ack", "ids": ["m#bob#msg-00000001"] * 101}),
        "\u0000\u0001 not json",
    ],
)
async def test_hostile_frames_are_refused_or_ignored_and_change_nothing(
    stack: LocalStack, connect: Connect, alice: TestUser, bob: TestUser, body: str
) -> None:
    await (await connect(bob)).close()
    client = await connect(alice)
    await stack.settled()
    before = await asyncio.to_thread(dump, stack)
    await client.send(body)
    reply = await client.next()
    await stack.settled()
    assert reply["type"] in {"error", "ack"}
    if reply["type"] == "error":
        assert reply["code"] in {"BAD_REQUEST", "UNKNOWN_ACTION", "UNKNOWN_RECIPIENT"}
        assert await asyncio.to_thread(dump, stack) == before
    else:
        # The impersonation attempt: the message is stored as alice's, not bob's
        queue = (await asyncio.to_thread(dump, stack))[stack.table_names["QUEUE_TABLE"]]
        assert [item["sender"]["S"] for item in queue] == ["alice"]
