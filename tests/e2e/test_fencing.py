"""Fencing on the real loopback stack (docs/protocol.md §7, issue 21): `messenger local
--cells 2 --standby`, where each cell's standby serves nothing while its primary is active,
and a partial failover (`?keepPrimary=true`, a gray failure) leaves the old primary
reachable but fenced: 403 to handshakes, `MOVED` then 1012 to its connections, Relay
calls refused, so no write is accepted by both sides."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from messenger.contract import GATEWAY_ROUTES_BY_KEY, Env
from messenger.dal.cell_generation import EPOCH_PK
from messenger_local import LocalStack
from messenger_local.activity import dump_tables
from tests.support.cells import user_homed_in
from tests.support.identities import TestUser
from tests.support.ws_client import (
    WsClient,
    connect_as,
    handshake_status,
    message_frame,
    signed_url,
)

pytestmark = pytest.mark.e2e


def queue_items(stack: LocalStack, table: str) -> list[dict[str, Any]]:
    """Every item of a Queue table (a test's look; no request path scans)."""
    items: list[dict[str, Any]] = stack.aws.client("dynamodb").scan(TableName=table)["Items"]
    return items


async def test_an_id_cannot_be_registered_at_the_standby_while_the_primary_serves(
    standby_stack: LocalStack,
) -> None:
    victim = user_homed_in("c0", "victim")
    c0 = standby_stack.standby("c0")
    # Given the victim registered at c0's primary
    victim_client = await connect_as(c0.primary.ws_url, victim)
    # When an attacker registers the same id with its own keys at the standby, at once
    attacker = TestUser(victim.user_id)
    # Then it is refused 403
    assert await handshake_status(signed_url(c0.standby.ws_url, attacker)) == 403
    # And so is the victim's own connect query replayed at the standby
    replayed = signed_url(c0.primary.ws_url, victim).replace(c0.primary.ws_url, c0.standby.ws_url)
    assert await handshake_status(replayed) == 403
    # And once replication carried everything, the standby holds the victim's keys only
    await standby_stack.settled()
    c0.replicator.flush()
    users = c0.standby.table_names[Env.USERS_TABLE.value]
    profile = await asyncio.to_thread(
        standby_stack.aws.client("dynamodb").get_item,
        TableName=users,
        Key={"pk": {"S": f"U#{victim.user_id}"}, "sk": {"S": "PROFILE"}},
    )
    assert "Item" in profile
    assert attacker.sign_key_b64 not in str(profile["Item"])
    await victim_client.close()


async def send_until_acked(sender: WsClient, recipient: TestUser, message_id: str) -> None:
    """Send, and resend on INTERNAL (a side starting or unreachable), until acked."""
    for _ in range(20):
        await sender.send(message_frame(sender.user, recipient, "gray", message_id))
        while True:
            frame = await sender.next()
            if frame.get("type") == "ack" and frame.get("messageId") == message_id:
                return
            if frame.get("type") == "error" and frame.get("ref") == message_id:
                break
        await asyncio.sleep(0.2)
    raise AssertionError(f"{message_id} never acked")


async def test_a_gray_failure_fences_the_old_primary_and_loses_nothing(
    standby_stack: LocalStack,
) -> None:
    amy, bob = user_homed_in("c0", "amy"), user_homed_in("c1", "bob")
    c0 = standby_stack.standby("c0")
    # Given amy at c0's primary, bob at c1, both registered and replicated
    amy_primary = await connect_as(c0.primary.ws_url, amy)
    bob_client = await connect_as(standby_stack.cell_url("c1"), bob)
    await send_until_acked(bob_client, amy, "gray-before-1")
    assert (await amy_primary.next_of("message"))["messageId"] == "gray-before-1"
    await standby_stack.settled()
    c0.replicator.flush()
    primary_queue = c0.primary.table_names[Env.QUEUE_TABLE.value]
    # When c0 fails over partially: its primary stays reachable
    failover = await standby_stack.fail_over("c0", keep_primary=True)
    assert failover.kept_primary
    after_switch = await asyncio.to_thread(queue_items, standby_stack, primary_queue)
    # Then amy's connection to the primary gets MOVED, then closes 1012
    moved = await amy_primary.next_of("error")
    assert moved["code"] == "MOVED"
    assert (await amy_primary.closed())[0] == 1012
    # And the primary, still answering, refuses her handshake 403
    assert await handshake_status(signed_url(c0.primary.ws_url, amy, with_keys=False)) == 403
    # And its stage, fenced by the switch, answers a ping MOVED where no function runs (on
    # AWS a connection it still holds only pinging), the standby's `pong`
    ping = GATEWAY_ROUTES_BY_KEY["ping"]
    assert json.loads(c0.primary.gateway.answer_itself(ping))["code"] == "MOVED"
    assert json.loads(c0.standby.gateway.answer_itself(ping))["type"] == "pong"
    # And bob's messages sent meanwhile go to the standby (c1's Relay call to the fenced
    # primary is refused MOVED, then tried at the standby)
    sent = [f"gray-after-{n}" for n in range(5)]
    for message_id in sent:
        await send_until_acked(bob_client, amy, message_id)
    # And the standby stored each of them exactly once
    standby_queue = c0.standby.table_names[Env.QUEUE_TABLE.value]
    stored = await asyncio.to_thread(queue_items, standby_stack, standby_queue)
    for message_id in sent:
        assert sum(f"#{message_id}" in str(item["sk"]) for item in stored) == 1, message_id
    # And amy, at the standby, gets every one of them
    amy_standby = await connect_as(c0.standby.ws_url, amy, with_keys=False)
    await amy_standby.send({"action": "sync"})
    received: set[str] = set()
    while not set(sent) <= received:
        frame = await amy_standby.next()
        if frame.get("type") == "message":
            received.add(frame["messageId"])
        elif frame.get("type") == "items":
            received |= {item["messageId"] for item in frame["items"] if "messageId" in item}
    # (gray-before-1 too: never acked, it was replicated, and the standby gives it again)
    assert received <= {*sent, "gray-before-1"}
    # And the demoted primary accepted no write after the switch
    await standby_stack.settled()
    assert await asyncio.to_thread(queue_items, standby_stack, primary_queue) == after_switch
    relays = standby_stack.invocations_of("Relay", cell="c0")
    assert relays, "c1 called c0's primary Relay, which refused"
    for client in (amy_standby, bob_client):
        await client.close()


async def test_the_connections_a_demoted_primary_closes_write_nothing_there(
    standby_stack: LocalStack,
) -> None:
    """§7: from the switch on, the side that is not active accepts no write, so that writes
    are never accepted by both sides. Its tables are replicas of the active side's (global
    tables: the last writer of an item wins, whole), so a profile a closing connection
    updated there (lastSeen, its connection removed) would overwrite, in the new active
    side, what the user changed there since."""
    amy, bob = user_homed_in("c0", "amy"), user_homed_in("c1", "bob")
    c0 = standby_stack.standby("c0")
    # Given amy online at c0's primary, watched by bob from c1, all replicated
    amy_primary = await connect_as(c0.primary.ws_url, amy)
    bob_client = await connect_as(standby_stack.cell_url("c1"), bob)
    await bob_client.send({"action": "getPresence", "userIds": [amy.user_id]})
    assert (await bob_client.next_of("presence"))["users"][0]["online"]
    await standby_stack.settled()
    c0.replicator.flush()
    before = await asyncio.to_thread(dump_tables, standby_stack.aws, c0.primary)
    # When c0 fails over partially, and its primary closes amy's connection (MOVED, 1012)
    await standby_stack.fail_over("c0", keep_primary=True)
    assert (await amy_primary.next_of("error"))["code"] == "MOVED"
    assert (await amy_primary.closed())[0] == 1012
    # And amy, and a newcomer registering, try handshakes there: refused 403
    assert await handshake_status(signed_url(c0.primary.ws_url, amy)) == 403
    newcomer = user_homed_in("c0", "newcomer")
    assert await handshake_status(signed_url(c0.primary.ws_url, newcomer)) == 403
    await standby_stack.settled()
    # Then the demoted primary's tables hold what they held, but the switch's own record
    after = await asyncio.to_thread(dump_tables, standby_stack.aws, c0.primary)
    switch_record = {
        name: [item for item in items if item["pk"]["S"] != EPOCH_PK]
        for name, items in after.items()
    }
    assert switch_record == before
    await bob_client.close()
