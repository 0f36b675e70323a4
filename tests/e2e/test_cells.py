"""Two cells in one local stack (docs/protocol.md §6): each at its own URL with its own tables
and environment, the directory on the same port, and the cell-to-cell call through
Lambda's Invoke API."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
import urllib.error
import urllib.request
from typing import Any

import boto3
import pytest

from messenger.contract import Env
from messenger.logic.relay_callers import CALLERS_BUCKET_OWNER
from messenger.transport.relay_records import request_payload
from messenger_local import LocalStack
from messenger_local.aws import FAKE_CREDENTIALS
from messenger_protocol.cells import Directory, ShardMap, numbered_copy_url
from messenger_protocol.encoding import b64url_encode
from messenger_protocol.limits import MAX_BODY_BYTES
from messenger_protocol.mesh import relay_record_key
from messenger_protocol.names import RelayOperation
from tests.support.cells import user_homed_in
from tests.support.identities import TestUser
from tests.support.stack_fixtures import Connect, dump_cells
from tests.support.ws_client import handshake_status, message_frame, signed_url

pytestmark = pytest.mark.e2e


def get_json(url: str) -> tuple[dict[str, str], Any]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return dict(response.headers), json.loads(response.read())


def relay_calls(stack: LocalStack, cell: str) -> list[Any]:
    """The Relay invocations of `cell` that a message, a receipt or a question made: not
    the registration counts a first connect may ask of the cell that keeps its address's
    budget (docs/limits.md)."""
    return [
        invocation
        for invocation in stack.invocations_of("Relay", cell=cell)
        if RelayOperation.COUNT_REGISTRATION.value not in (invocation.outcome or "")
    ]


async def test_the_directory_names_each_cell_at_its_own_url(cells_stack: LocalStack) -> None:
    # When a client fetches the directory from the stack's port
    headers, document = await asyncio.to_thread(get_json, cells_stack.directory_url)
    # Then it is §6's document: version 1, each cell's URL and epoch, an even split of the
    # shards, signed by the key the stack serves at /directory.key
    directory = Directory.parse(document)
    assert directory.verifies(cells_stack.directory_public_key)
    assert directory.epochs == {"c0": "local-c0#0", "c1": "local-c1#0"}
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


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


async def test_the_directory_key_and_numbered_copies_are_served(cells_stack: LocalStack) -> None:
    version = cells_stack.directory.version
    base = cells_stack.directory_url.removesuffix("directory.json")
    # The public key, as text, for tools
    status, _, key = await asyncio.to_thread(get, f"{base}directory.key")
    assert (status, key.decode().strip()) == (200, cells_stack.directory_public_key)
    # The current version's numbered copy: the same document, cacheable forever
    status, headers, body = await asyncio.to_thread(
        get, numbered_copy_url(cells_stack.directory_url, version)
    )
    assert status == 200
    assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert json.loads(body) == cells_stack.directory.to_wire()
    assert Directory.parse(json.loads(body)).verifies(cells_stack.directory_public_key)
    # A version never published is not there
    for missing in (f"{version + 1}", "x"):
        status, _, _ = await asyncio.to_thread(get, f"{base}directory/{missing}.json")
        assert status == 404


async def test_the_web_app_connects_through_the_directory(cells_stack: LocalStack) -> None:
    # When a browser asks the page's configuration from the stack's port
    origin = f"http://127.0.0.1:{cells_stack.port}"
    headers, config = await asyncio.to_thread(get_json, f"{origin}/config.json")
    # Then it names the directory, and the page may fetch it and connect to the cells
    assert config == {
        "directoryUrl": cells_stack.directory_url,
        "directoryKey": cells_stack.directory_public_key,
    }
    connect_src = headers["Content-Security-Policy"].split("connect-src ")[1].split(";")[0]
    assert set(connect_src.split()) == {origin, f"ws://127.0.0.1:{cells_stack.port}"}


def relay_record(stack: LocalStack, cell_id: str, side: str) -> dict[str, str]:
    """A side's Relay record, as the peers read it from the directory's bucket."""
    s3 = stack.aws.client("s3")
    body = s3.get_object(Bucket=stack.directory_bucket, Key=relay_record_key(cell_id, side))
    return json.loads(body["Body"].read())


async def test_each_cell_has_its_own_tables_and_environment(cells_stack: LocalStack) -> None:
    c0, c1 = cells_stack.cell("c0"), cells_stack.cell("c1")
    assert set(c0.table_names.values()).isdisjoint(c1.table_names.values())
    for cell, peer in ((c0, c1), (c1, c0)):
        environment = cell.environment
        assert environment[Env.CELL_ID] == cell.cell_id
        # No shard map either: the cell reads it from the signed directory, as on AWS
        assert not any("c0" in value and "c1" in value for value in environment.values())
        assert environment[Env.DIRECTORY_PUBLIC_KEY] == cells_stack.directory_public_key
        assert cell.services.cells.shard_map == ShardMap.even(["c0", "c1"])
        # No variable names a peer: the directory's bucket holds each side's Relay record
        assert environment[Env.MESH_BUCKET] == cells_stack.directory_bucket
        assert not any(peer.relay_arn in value for value in environment.values())
        assert relay_record(cells_stack, peer.cell_id, "primary")["function"] == peer.relay_arn
        assert environment[Env.CELL_EPOCH] == f"local-{cell.cell_id}"
        assert environment[Env.USERS_TABLE] == cell.table_names[Env.USERS_TABLE]
        assert environment[Env.CONNECTIONS_ENDPOINT] == cell.http_url
    # The process itself holds no cell's settings, nor what the cells share.
    assert Env.CELL_ID not in os.environ and Env.USERS_TABLE not in os.environ
    assert "AWS_ENDPOINT_URL_LAMBDA" not in os.environ
    for cell in (c0, c1):
        assert cell.environment["AWS_ENDPOINT_URL_LAMBDA"] == cells_stack.lambda_url


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
    [relay_in_c1] = relay_calls(cells_stack, "c1")
    assert send_in_c0.user == alice.user_id and relay_in_c1.outcome == "ok (storeMessage)"
    [relay_in_c0] = relay_calls(cells_stack, "c0")
    assert relay_in_c0.outcome == "ok (storeMessage)"
    # And each message is queued in its recipient's cell only
    state = await dump_cells(cells_stack)
    assert queued_ids(state["c1"], cells_stack, "c1") == ["msg-00000001"]
    assert queued_ids(state["c0"], cells_stack, "c0") == ["msg-00000002"]


def queued_ids(tables: dict[str, list[dict[str, Any]]], stack: LocalStack, cell: str) -> list[str]:
    queue = tables[stack.cell(cell).table_names[Env.QUEUE_TABLE]]
    return sorted(item["messageId"]["S"] for item in queue if "messageId" in item)


def relay_invoker(stack: LocalStack) -> Any:
    """A boto3 `lambda` client on the stack's Invoke API, as a cell's functions have."""
    return boto3.client(
        "lambda",
        endpoint_url=stack.lambda_url,
        region_name=stack.aws.region,
        aws_access_key_id=FAKE_CREDENTIALS["aws_access_key_id"],
        aws_secret_access_key=FAKE_CREDENTIALS["aws_secret_access_key"],
    )


def signed_as(
    stack: LocalStack,
    signer: str,
    operation: RelayOperation,
    fields: dict[str, Any],
    *,
    to: str,
    caller: str | None = None,
) -> dict[str, Any]:
    """A Relay request from `caller` (default: `signer`) signed with `signer`'s relay key,
    which only `signer`'s functions can read (its Users table): a forgery if they differ."""
    key = stack.cell(signer).services.relay_signing_key()
    now_ms = int(time.time() * 1000)
    return request_payload(operation, caller or signer, to, fields, key, now_ms)


async def test_a_peers_relay_is_invoked_by_arn_through_the_invoke_api(
    cells_stack: LocalStack, connect_home: Connect
) -> None:
    # Given dave registered in c1
    dave = user_homed_in("c1", "dave")
    await (await connect_home(dave)).close()
    # When c0 asks c1's Relay for dave's keys, as c0's functions would (boto3's lambda,
    # the request signed with c0's relay key)
    invoker = relay_invoker(cells_stack)
    request = signed_as(cells_stack, "c0", RelayOperation.KEYS, {"userId": dave.user_id}, to="c1")
    response = await asyncio.to_thread(
        invoker.invoke, FunctionName=cells_stack.cell("c1").relay_arn, Payload=json.dumps(request)
    )
    # Then c1's Relay answered, from c1's tables
    answer = json.loads(response["Payload"].read())
    assert response["StatusCode"] == 200 and "FunctionError" not in response
    assert answer["ok"]["signKey"] == dave.sign_key_b64
    [relay] = relay_calls(cells_stack, "c1")
    assert relay.outcome == "ok (keys)"
    assert relay_calls(cells_stack, "c0") == []


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


# --- refusals across cells change nothing, in either cell ------------------------------------


def frames_refused_across_cells(
    alice: TestUser, dave: TestUser, nobody: TestUser, queued_for_dave: str
) -> list[tuple[dict[str, Any] | str, str | None]]:
    """Frames alice (c0) sends that name users of c1, and the error code each gets
    (None: no answer, and nothing to do)."""
    too_large = message_frame(alice, dave, "x", "msg-00000003")
    too_large["body"] = b64url_encode(secrets.token_bytes(MAX_BODY_BYTES + 3))
    return [
        (message_frame(alice, nobody, "anyone there?", "msg-00000002"), "UNKNOWN_RECIPIENT"),
        (message_frame(alice, dave, "x", "msg-00000004") | {"nonce": "short"}, "BAD_REQUEST"),
        (too_large, "TOO_LARGE"),
        (message_frame(alice, dave, "x", "msg-00000005") | {"to": "Not An Id!"}, "BAD_REQUEST"),
        (
            {"action": "markSeen", "to": nobody.user_id, "messageIds": ["msg-00000002"]},
            "UNKNOWN_RECIPIENT",
        ),
        ({"action": "getKeys", "userId": nobody.user_id}, "UNKNOWN_USER"),
        ({"action": "getKeys", "userId": "Not An Id!"}, "BAD_REQUEST"),
        # dave's item, acknowledged by alice: not hers to delete (an ack has no answer)
        ({"action": "ack", "ids": [queued_for_dave]}, None),
        ({"action": "dance", "to": dave.user_id}, "UNKNOWN_ACTION"),
        ("not json at all", "BAD_REQUEST"),
    ]


def peer_requests_refused(alice: TestUser, dave: TestUser) -> list[tuple[str, Any]]:
    """Relay requests a peer may not make: (the cell whose Relay is asked, the payload)."""
    frame = message_frame(alice, dave, "x", "msg-00000006")
    del frame["action"]
    return [
        # a sender who is not a user of the calling cell
        ("c1", {"op": "storeMessage", "from": "c0", "sender": dave.user_id, "frame": frame}),
        # a recipient who is not a user of the asked cell
        ("c0", {"op": "storeMessage", "from": "c1", "sender": dave.user_id, "frame": frame}),
        # the asked cell calling itself (answered, as during a move) is held to the same
        # rules: alice is not its user
        ("c1", {"op": "storeMessage", "from": "c1", "sender": alice.user_id, "frame": frame}),
        ("c1", {"op": "keys", "from": "c0", "userId": alice.user_id}),
        ("c1", {"op": "deleteEverything", "from": "c0"}),
        ("c1", ["not", "an", "object"]),
    ]


def without_caller_budgets(tables: dict[str, Any]) -> dict[str, Any]:
    """A cell's tables without the budgets its Relay keeps per calling cell."""
    return {
        name: [item for item in items if CALLERS_BUCKET_OWNER not in json.dumps(item)]
        for name, items in tables.items()
    }


async def test_refusals_across_cells_change_nothing_in_either_cell(
    cells_stack: LocalStack, connect_home: Connect
) -> None:
    # Given alice at home in c0, dave in c1 with a message from alice queued (not acked)
    alice, dave = user_homed_in("c0", "alice"), user_homed_in("c1", "dave")
    nobody = user_homed_in("c1", "nobody")
    a, d = await connect_home(alice), await connect_home(dave)
    await a.request(message_frame(alice, dave, "keep me", "msg-00000001"))
    queued_for_dave = (await d.next_of("message"))["id"]
    before = await dump_cells(cells_stack)
    relays_before = len(relay_calls(cells_stack, "c1"))
    # When alice sends frames that name c1's users wrongly, and peers ask the Relays
    # what they may not
    for frame, code in frames_refused_across_cells(alice, dave, nobody, queued_for_dave):
        if code is None:
            await a.send(frame)
            continue
        error = await a.request(frame)
        assert error["type"] == "error" and error["code"] == code, (frame, error)
    invoker = relay_invoker(cells_stack)
    for cell, payload in peer_requests_refused(alice, dave):
        if isinstance(payload, dict) and payload["op"] in set(RelayOperation):
            # made by the cell it names, so that only what it asks is wrong
            fields = {name: value for name, value in payload.items() if name not in ("op", "from")}
            payload = signed_as(
                cells_stack, payload["from"], RelayOperation(payload["op"]), fields, to=cell
            )
        response = await asyncio.to_thread(
            invoker.invoke,
            FunctionName=cells_stack.cell(cell).relay_arn,
            Payload=json.dumps(payload),
        )
        answer = json.loads(response["Payload"].read())
        assert answer["error"]["code"] == "BAD_REQUEST", (payload, answer)
    # Then neither cell's tables changed, but for alice's rate-limit buckets in c0 (every
    # well-formed frame counts against her limit, refused or not)
    after = await dump_cells(cells_stack)
    c0_limits = cells_stack.cell("c0").table_names[Env.LIMITS_TABLE]
    assert {name: items for name, items in after["c0"].items() if name != c0_limits} == {
        name: items for name, items in before["c0"].items() if name != c0_limits
    }
    # and for c0's budget in c1's Relay (every call c0 proved it made counts, answered or not)
    assert without_caller_budgets(after["c1"]) == without_caller_budgets(before["c1"])
    # And the refusals that needed c1 came from its Relay (the unknown recipient and user)
    relayed = [i.outcome for i in relay_calls(cells_stack, "c1")[relays_before:]]
    assert "error UNKNOWN_RECIPIENT (storeMessage)" in relayed, relayed
    assert "error UNKNOWN_USER (keys)" in relayed, relayed
    await d.nothing_more()
