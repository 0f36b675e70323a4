"""A standby for each cell, and `POST /_local/failover/CELL` (issue 14 part 5): the
standby has its own stage, tables and epoch; a failover drops what was not replicated,
switches the directory and the epoch, closes the primary's connections with 1001 and
refuses new ones there, and peers' Relay calls go to the standby."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from typing import Any

import pytest

from messenger.contract import Env
from messenger.dal.cell_generation import CellGeneration
from messenger_directory.store import DIRECTORY_KEY, entry_key
from messenger_local import EmbeddedAws, LocalStack
from messenger_protocol.cells import Directory
from messenger_protocol.mesh import relay_record_key
from tests.support.cells import user_homed_in
from tests.support.identities import TestUser
from tests.support.local_control import post_local
from tests.support.ws_client import (
    WsClient,
    connect_as,
    handshake_status,
    message_frame,
    signed_url,
)

pytestmark = pytest.mark.e2e


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


async def sync_epoch(client: WsClient) -> str:
    await client.send({"action": "sync"})
    done = await client.next_of("syncDone")
    return str(done["epoch"])


async def send_and_ack(sender: WsClient, recipient: TestUser, message_id: str) -> None:
    frame = message_frame(sender.user, recipient, "hello", message_id)
    await sender.send(frame)
    ack = await sender.next_of("ack")
    assert ack["messageId"] == message_id


async def test_each_cell_has_a_standby_with_its_own_stage_tables_and_epoch(
    standby_stack: LocalStack,
) -> None:
    for cell_id in standby_stack.cell_ids:
        pair = standby_stack.standby(cell_id)
        primary, standby = pair.primary, pair.standby
        assert standby.ws_url == f"ws://127.0.0.1:{standby_stack.port}/{cell_id}-standby"
        assert set(primary.table_names.values()).isdisjoint(standby.table_names.values())
        assert standby.environment[Env.CELL_ID] == cell_id
        assert standby.environment[Env.CELL_EPOCH] == f"local-{cell_id}-standby"
        assert primary.environment[Env.CELL_EPOCH] == f"local-{cell_id}"
        assert standby.environment[Env.CONNECTIONS_ENDPOINT] == standby.http_url
    # Each side of a cell publishes its own Relay record; no variable names a peer
    c0, c1 = standby_stack.standby("c0"), standby_stack.standby("c1")
    s3 = standby_stack.aws.client("s3")
    for side, relay in (("primary", c1.primary.relay_arn), ("standby", c1.standby.relay_arn)):
        record = s3.get_object(
            Bucket=standby_stack.directory_bucket, Key=relay_record_key("c1", side)
        )
        assert json.loads(record["Body"].read())["function"] == relay
        for own in (c0.primary, c0.standby):
            assert not any(relay in value for value in own.environment.values())
    # And the directory names the primaries
    directory = Directory.parse(await asyncio.to_thread(get_json, standby_stack.directory_url))
    assert directory.version == 1
    assert directory.url_of("c0") == c0.primary.ws_url


async def test_a_failover_switches_directory_epoch_and_connections(
    standby_stack: LocalStack,
) -> None:
    amy, bob = user_homed_in("c0", "amy"), user_homed_in("c1", "bob")
    c0 = standby_stack.standby("c0")
    # Given amy connected to c0's primary, bob to c1, and a message bob -> amy replicated
    amy_primary = await connect_as(c0.primary.ws_url, amy)
    bob_client = await connect_as(standby_stack.cell_url("c1"), bob)
    primary_epoch = await sync_epoch(amy_primary)
    await send_and_ack(bob_client, amy, "m-before-1")
    await amy_primary.next_of("message")
    await standby_stack.settled()
    c0.replicator.flush()
    # When c0 fails over
    status, answer = await asyncio.to_thread(
        post_local, f"http://127.0.0.1:{standby_stack.port}/_local/failover/c0"
    )
    # Then it answers what it did
    assert status == 200
    assert answer["cell"] == "c0"
    assert answer["url"] == c0.standby.ws_url
    assert answer["epoch"] == "local-c0-standby#1"
    assert answer["droppedWrites"] == 0
    # And amy's connection to the primary closed with 1001, and the primary refuses
    assert (await amy_primary.closed())[0] == 1001
    assert await handshake_status(signed_url(c0.primary.ws_url, amy)) == 503
    # And the directory sends c0's users to the standby, one version later
    directory = Directory.parse(await asyncio.to_thread(get_json, standby_stack.directory_url))
    assert directory.version == 2
    assert directory.home_url(amy.user_id) == c0.standby.ws_url
    # And at the standby amy is known (replicated), and syncDone names another epoch
    amy_standby = await connect_as(c0.standby.ws_url, amy, with_keys=False)
    standby_epoch = await sync_epoch(amy_standby)
    assert standby_epoch == answer["epoch"] != primary_epoch
    # And bob's next message reaches amy through the standby (c1's Relay call to the
    # lost primary fails, then goes to the standby)
    await send_and_ack(bob_client, amy, "m-after-1")
    first, second = await amy_standby.next_of("message"), await amy_standby.next_of("message")
    # (amy never acked the first: it was replicated, and the standby's sync gave it again)
    assert [first["messageId"], second["messageId"]] == ["m-before-1", "m-after-1"]
    relays = standby_stack.invocations_of("Relay", cell="c0-standby")
    assert any(invocation.status == 200 for invocation in relays)
    # And failing over again answers the same, and says it had
    status, again = await asyncio.to_thread(
        post_local, f"http://127.0.0.1:{standby_stack.port}/_local/failover/c0"
    )
    assert answer["alreadyFailedOver"] is False
    assert (status, again) == (200, {**answer, "alreadyFailedOver": True})
    assert standby_stack.directory.version == 2
    for client in (amy_standby, bob_client):
        await client.close()


async def test_a_failover_drops_what_was_not_replicated(shared_aws: EmbeddedAws) -> None:
    async with LocalStack(aws=shared_aws, cells=2, standby=True, replication_lag=60) as stack:
        amy, bob = user_homed_in("c0", "amy"), user_homed_in("c0", "bob")
        c0 = stack.standby("c0")
        # Given writes in c0's primary that a long lag keeps from the standby
        amy_client = await connect_as(c0.primary.ws_url, amy)
        await connect_as(c0.primary.ws_url, bob)  # registered: amy may write to bob
        await send_and_ack(amy_client, bob, "m-lost-1")
        await stack.settled()
        pending = c0.replicator.pending
        assert pending > 0
        # When c0 fails over
        failover = await stack.fail_over("c0")
        # Then every one of them is dropped, and the standby never sees them
        assert failover.dropped_writes == pending
        assert c0.replicator.pending == 0
        users = c0.standby.table_names[Env.USERS_TABLE.value]
        dynamodb = shared_aws.client("dynamodb")
        known = await asyncio.to_thread(
            dynamodb.query,
            TableName=users,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"U#{amy.user_id}"}},
        )
        assert known["Count"] == 0
        # And a user unknown to the standby registers again by connecting with its keys
        again = await connect_as(c0.standby.ws_url, amy)
        assert await sync_epoch(again) == "local-c0-standby#1"
        await again.close()


async def test_a_failover_runs_the_deployed_switch_on_the_stacks_own_table_and_bucket(
    standby_stack: LocalStack,
) -> None:
    # Given the directory the stack published when it started: each cell's entry in its
    # bucket, merged into directory.json (as the directory function does on AWS)
    s3 = standby_stack.aws.client("s3")
    bucket = standby_stack.directory_bucket
    c0 = standby_stack.standby("c0")

    def stored(key: str) -> Any:
        return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    assert await asyncio.to_thread(stored, entry_key("c0")) == {
        "url": c0.primary.ws_url,
        "epoch": "local-c0#0",
    }
    assert (await asyncio.to_thread(stored, DIRECTORY_KEY))["version"] == 1
    # When c0 fails over
    failover = await standby_stack.fail_over("c0")
    # Then every step of the switch ran on the stack's own AWS: the standby's Users table
    # holds generation 1 with the standby active, c0's entry names the standby, and
    # directory.json is that, one version later
    users = c0.standby.table_names[Env.USERS_TABLE.value]
    generations = CellGeneration(standby_stack.aws.client("dynamodb"), users)
    assert await asyncio.to_thread(generations.read) == 1
    assert failover.epoch == "local-c0-standby#1"
    assert await asyncio.to_thread(stored, entry_key("c0")) == {
        "url": c0.standby.ws_url,
        "epoch": "local-c0-standby#1",
    }
    published = await asyncio.to_thread(stored, DIRECTORY_KEY)
    assert published == standby_stack.directory.to_wire()
    assert published["version"] == 2
    assert published["cells"]["c0"]["epoch"] == failover.epoch
    # And the primary's replica was not asked anything (its region is gone)
    primary_users = c0.primary.table_names[Env.USERS_TABLE.value]
    primary_generations = CellGeneration(standby_stack.aws.client("dynamodb"), primary_users)
    assert await asyncio.to_thread(primary_generations.read) == 0


async def test_failing_over_an_unknown_cell_is_404(standby_stack: LocalStack) -> None:
    status, answer = await asyncio.to_thread(
        post_local, f"http://127.0.0.1:{standby_stack.port}/_local/failover/c9"
    )
    assert status == 404
    assert "c9" in answer["message"]
    assert standby_stack.directory.version == 1


def test_a_standby_needs_cells() -> None:
    with pytest.raises(ValueError, match="cells"):
        LocalStack(standby=True)
