"""Two cells in one local stack (PROTOCOL.md §6): each at its own URL with its own tables
and environment, the directory on the same port, and the cell-to-cell call through
Lambda's Invoke API."""

from __future__ import annotations

import asyncio
import json
import os
import urllib.request
from typing import Any

import boto3
import pytest

from messenger.contract import Env
from messenger_local import LocalStack
from messenger_local.aws import FAKE_CREDENTIALS
from messenger_protocol.cells import Directory, ShardMap
from tests.support.cells import user_homed_in
from tests.support.stack_fixtures import Connect, dump_cells
from tests.support.ws_client import handshake_status, message_frame, signed_url

pytestmark = pytest.mark.e2e


def get_json(url: str) -> tuple[dict[str, str], Any]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return dict(response.headers), json.loads(response.read())


async def test_the_directory_names_each_cell_at_its_own_url(cells_stack: LocalStack) -> None:
    # When a client fetches the directory from the stack's port
    headers, document = await asyncio.to_thread(get_json, cells_stack.directory_url)
    # Then it is §6's document: version 1, each cell's URL, an even split of the shards
    directory = Directory.parse(document)
    assert headers["Content-Type"].startswith("application/json")
    assert directory.version == 1
    assert dict(directory.urls) == {
        "c0": f"ws://127.0.0.1:{cells_stack.port}/c0",
        "c1": f"ws://127.0.0.1:{cells_stack.port}/c1",
    }
    assert directory.shard_map == ShardMap.even(["c0", "c1"])
    assert document == cells_stack.directory.to_wire()
    dave = user_homed_in("c1", "dave")
    assert directory.home_url(dave.user_id) == cells_stack.cell_url("c1")


async def test_each_cell_has_its_own_tables_and_environment(cells_stack: LocalStack) -> None:
    c0, c1 = cells_stack.cell("c0"), cells_stack.cell("c1")
    assert set(c0.table_names.values()).isdisjoint(c1.table_names.values())
    for cell, peer in ((c0, c1), (c1, c0)):
        environment = cell.environment
        assert environment[Env.CELL_ID] == cell.cell_id
        assert environment[Env.CELL_SHARD_MAP] == "4096:0-2047=c0,2048-4095=c1"
        assert environment[Env.CELL_PEERS] == f"{peer.cell_id}={peer.relay_arn}"
        assert environment[Env.CELL_EPOCH] == f"local-{cell.cell_id}"
        assert environment[Env.USERS_TABLE] == cell.table_names[Env.USERS_TABLE]
        assert environment[Env.CONNECTIONS_ENDPOINT] == cell.http_url
    # The process itself holds no cell's settings: only what the cells share.
    assert Env.CELL_ID not in os.environ and Env.USERS_TABLE not in os.environ
    assert os.environ["AWS_ENDPOINT_URL_LAMBDA"] == cells_stack.lambda_url


async def test_users_of_two_cells_talk_through_their_own_cells(
    cells_stack: LocalStack, connect_home: Connect
) -> None:
    # Given alice at home in c0 and dave at home in c1, each connected to their own cell
    alice, dave = user_homed_in("c0", "alice"), user_homed_in("c1", "dave")
    a, d = await connect_home(alice), await connect_home(dave)
    assert cells_stack.connection_ids("c0") == [a.connection_id]
    assert cells_stack.connection_ids("c1") == [d.connection_id]
    # When alice writes to dave
    ack = await a.request(message_frame(alice, dave, "hello from c0", "msg-00000001"))
    # Then dave gets it, with the serverTs of the ack that c1 gave
    assert ack["type"] == "ack" and ack["status"] == "sent"
    message = await d.next_of("message")
    assert message["from"] == alice.user_id and message["serverTs"] == ack["serverTs"]
    assert dave.decrypt_from(alice, message["body"], message["nonce"]) == "hello from c0"
    # And so does dave's answer, the other way
    reply_ack = await d.request(message_frame(dave, alice, "hello from c1", "msg-00000002"))
    assert reply_ack["type"] == "ack"
    reply = await a.next_of("message")
    assert reply["from"] == dave.user_id and reply["serverTs"] == reply_ack["serverTs"]
    assert alice.decrypt_from(dave, reply["body"], reply["nonce"]) == "hello from c1"
    # And each send ran in the sender's cell, and reached the recipient's cell's Relay
    await cells_stack.settled()
    [send_in_c0] = cells_stack.invocations_of("sendMessage", cell="c0")
    [relay_in_c1] = cells_stack.invocations_of("Relay", cell="c1")
    assert send_in_c0.user == alice.user_id and relay_in_c1.outcome == "storeMessage: ok"
    [relay_in_c0] = cells_stack.invocations_of("Relay", cell="c0")
    assert relay_in_c0.outcome == "storeMessage: ok"
    # And each message is queued in its recipient's cell only
    state = await dump_cells(cells_stack)
    assert queued_ids(state["c1"], cells_stack, "c1") == ["msg-00000001"]
    assert queued_ids(state["c0"], cells_stack, "c0") == ["msg-00000002"]


def queued_ids(tables: dict[str, list[dict[str, Any]]], stack: LocalStack, cell: str) -> list[str]:
    queue = tables[stack.cell(cell).table_names[Env.QUEUE_TABLE]]
    return sorted(item["messageId"]["S"] for item in queue if "messageId" in item)


async def test_a_peers_relay_is_invoked_by_arn_through_the_invoke_api(
    cells_stack: LocalStack, connect_home: Connect
) -> None:
    # Given dave registered in c1
    dave = user_homed_in("c1", "dave")
    await (await connect_home(dave)).close()
    # When c0 asks c1's Relay for dave's keys, as c0's functions would (boto3's lambda)
    invoker = boto3.client(
        "lambda",
        endpoint_url=cells_stack.lambda_url,
        region_name=cells_stack.aws.region,
        aws_access_key_id=FAKE_CREDENTIALS["aws_access_key_id"],
        aws_secret_access_key=FAKE_CREDENTIALS["aws_secret_access_key"],
    )
    response = await asyncio.to_thread(
        invoker.invoke,
        FunctionName=cells_stack.cell("c1").relay_arn,
        Payload=json.dumps({"op": "keys", "from": "c0", "userId": dave.user_id}),
    )
    # Then c1's Relay answered, from c1's tables
    answer = json.loads(response["Payload"].read())
    assert response["StatusCode"] == 200 and "FunctionError" not in response
    assert answer["ok"]["signKey"] == dave.sign_key_b64
    [relay] = cells_stack.invocations_of("Relay", cell="c1")
    assert relay.outcome == "keys: ok"
    assert cells_stack.invocations_of("Relay", cell="c0") == []


@pytest.mark.parametrize("registered", [False, True])
async def test_connecting_to_another_cell_is_403_and_writes_nothing(
    cells_stack: LocalStack, connect_home: Connect, registered: bool
) -> None:
    # Given alice, at home in c0 (registered there, or not yet)
    alice = user_homed_in("c0", "alice")
    if registered:
        await (await connect_home(alice)).close()
    before = await dump_cells(cells_stack)
    # When she connects to c1, keys and all
    status = await handshake_status(signed_url(cells_stack.cell_url("c1"), alice))
    # Then c1 refuses the handshake, and neither cell's tables changed
    assert status == 403
    assert await dump_cells(cells_stack) == before
    assert cells_stack.invocations_of("authorizer", cell="c1")[-1].outcome == "deny"
    assert cells_stack.invocations_of("$connect", cell="c1") == []
    assert cells_stack.connection_ids() == []
