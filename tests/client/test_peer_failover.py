"""Beyond docs/protocol.md §7: a failover of a *peer's* cell, on the real local stack.

A sender in a healthy cell (c1) whose message was stored and acked in the recipient's
cell (c0) and lost with c0's primary (never replicated) sees no new epoch and no move of
its own home. The SDK reads the directory again when it cannot reach its cell or when a
frame's `dv` names a newer version (docs/protocol.md §6: never on a timer) and sends
again what was not delivered to the users of a cell that moved.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

from messenger_client.client import MessengerClient
from messenger_client.store import MessageStatus
from messenger_local import EmbeddedAws, LocalStack
from messenger_local.cells_harness import id_homed_in
from tests.client.conftest import FAST, Clients
from tests.support.waiting import until

pytestmark = pytest.mark.e2e

# Long enough that nothing written after it is set reaches the standby before the failover.
NEVER_REPLICATED = 3600.0


@pytest.fixture
async def standby_stack(shared_aws: EmbeddedAws) -> AsyncIterator[LocalStack]:
    async with LocalStack(aws=shared_aws, cells=2, standby=True, replication_lag=0.2) as stack:
        yield stack


def sends_by(stack: LocalStack, user: str) -> int:
    return len(stack.invocations_of("sendMessage", user=user))


async def lose_a_stored_message(
    stack: LocalStack, clients: Clients, sender: MessengerClient, recipient: str
) -> str:
    """`sender`'s message to `recipient` (offline, homed in c0), stored and acked in c0's
    primary, then lost with it: c0 fails over before the message is replicated. Its id."""
    c0 = stack.standby("c0")
    # The recipient is registered, and that much reaches the standby ...
    await clients.open(recipient, None, directory_url=stack.directory_url)
    await clients.started.pop().close()
    await stack.settled()
    c0.replicator.flush()
    # ... and nothing written after this does (the replicator reads its lag on each write)
    c0.replicator.lag = NEVER_REPLICATED
    sent = await sender.send_and_wait(recipient, "hello across cells")
    await stack.settled()
    assert c0.replicator.pending > 0
    failover = await stack.fail_over("c0")
    assert failover.dropped_writes > 0
    return sent.message_id


async def test_a_message_lost_with_a_peers_primary_goes_again_when_the_sender_reconnects(
    standby_stack: LocalStack, clients: Clients
) -> None:
    stack = standby_stack
    amy, bob = id_homed_in("c0", "amy"), id_homed_in("c1", "bob")
    assert (stack.directory.home_of(amy), stack.directory.home_of(bob)) == ("c0", "c1")
    # Given bob in c1, and his message to amy (c0) acked by c0's primary and lost in c0's
    # failover
    bob_client = await clients.open(bob, None, directory_url=stack.directory_url)
    message_id = await lose_a_stored_message(stack, clients, bob_client, amy)
    assert bob_client.history(amy)[0].status == MessageStatus.SENT
    # And amy, now at c0's standby, does not have it
    amy_client = await clients.open(amy, None, directory_url=stack.directory_url)
    assert amy_client.history(bob) == []
    sends_before = sends_by(stack, bob)

    # When bob's connection drops and comes back (his home, c1, did not move, nor its
    # epoch: docs/protocol.md §7 alone would resend nothing)
    bob_client.drop_connection()

    # Then he learnt of the new version (`dv` on his syncDone), read it, saw c0 move, and
    # sent the message again: amy
    # gets it once, and bob gets its `delivered` receipt
    await until(lambda: [m.text for m in amy_client.history(bob)] == ["hello across cells"], 30)
    await until(lambda: bob_client.history(amy)[0].status == MessageStatus.DELIVERED, 30)
    assert sends_by(stack, bob) == sends_before + 1
    assert [m.message_id for m in amy_client.history(bob)] == [message_id]


async def test_a_message_lost_with_a_peers_primary_goes_again_while_the_sender_stays_online(
    standby_stack: LocalStack, clients: Clients
) -> None:
    stack = standby_stack
    amy, bob, cat = id_homed_in("c0", "amy"), id_homed_in("c1", "bob"), id_homed_in("c1", "cat")
    # Given bob in c1, pinging every half second (each `pong` names the directory version
    # his cell knows, `dv`), with an undelivered message to cat (c1, offline) and one to
    # amy (c0) lost in c0's failover
    often = dataclasses.replace(
        FAST, connection=dataclasses.replace(FAST.connection, ping_interval=0.5)
    )
    await clients.open(cat, None, directory_url=stack.directory_url)
    await clients.started.pop().close()
    bob_client = await clients.open(bob, None, directory_url=stack.directory_url, settings=often)
    await bob_client.send_and_wait(cat, "to a cell that stays")
    await stack.settled()  # its ack went out ahead of the push, before the invocation ended
    sends_before = sends_by(stack, bob)
    connects_before = len(stack.invocations_of("$connect"))
    message_id = await lose_a_stored_message(stack, clients, bob_client, amy)

    # When amy connects to c0's standby, bob still connected to c1 all along
    amy_client = await clients.open(amy, None, directory_url=stack.directory_url)

    # Then bob learnt of the new version from a pong, read its numbered copy, saw c0
    # move and sent again the message to amy only (not
    # the one to cat, whose cell did not move); amy has it once
    await until(lambda: [m.message_id for m in amy_client.history(bob)] == [message_id], 30)
    await until(lambda: bob_client.history(amy)[0].status == MessageStatus.DELIVERED, 30)
    await stack.settled()
    bob_sends = stack.invocations_of("sendMessage", user=bob)
    assert len(bob_sends) == sends_before + 2  # the lost message, and its one resend
    assert bob_client.history(cat)[0].status == MessageStatus.SENT
    assert bob not in [i.user for i in stack.invocations_of("$connect")[connects_before:]]
    assert len(amy_client.history(bob)) == 1
