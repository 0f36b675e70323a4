"""docs/protocol.md §7 on the real local stack: a `seen` receipt lost with a failover is
sent again, a message refused UNKNOWN_RECIPIENT after the recipient's cell failed over
is kept and delivered once the recipient is back, and a one-shot `messenger` command
says what it resent."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from messenger_client.store import MessageStatus
from messenger_local import LocalStack
from messenger_local.cells_harness import id_homed_in
from tests.client.conftest import FAST, Clients
from tests.client.test_peer_failover import NEVER_REPLICATED
from tests.support.cli import MESSENGER, environment
from tests.support.stack_fixtures import standby_stack
from tests.support.waiting import until

pytestmark = pytest.mark.e2e

__all__ = ["standby_stack"]

# A client that looks at the directory again only when it connects (or after an hour).
RARELY = dataclasses.replace(FAST, directory_interval=3600.0)


async def test_a_seen_receipt_lost_with_the_senders_primary_is_sent_again(
    standby_stack: LocalStack, clients: Clients
) -> None:
    stack = standby_stack
    amy, bob = id_homed_in("c0", "amy"), id_homed_in("c1", "bob")
    # Given amy (c0)'s message read by bob (c1) while amy is offline
    bob_client = await clients.open(bob, None, directory_url=stack.directory_url, settings=RARELY)
    amy_client = await clients.open(amy, None, directory_url=stack.directory_url)
    sent = await amy_client.send_and_wait(bob, "did you read this?")
    await until(lambda: amy_client.history(bob)[0].status == MessageStatus.DELIVERED, 30)
    await clients.started.pop().close()
    await stack.settled()
    c0 = stack.standby("c0")
    c0.replicator.flush()
    c0.replicator.lag = NEVER_REPLICATED
    await bob_client.mark_seen(amy)
    # And its seen receipt, queued in c0's primary (seenStored answered), lost with it
    await until(lambda: bob_client.store.resends_outstanding().seen_marks == 0, 30)
    answered = bob_client.store._db.execute(
        "SELECT seen_epoch, seen_cell FROM messages WHERE message_id = ?", (sent.message_id,)
    ).fetchone()
    assert tuple(answered) == ("local-c0#0", "c0")
    await stack.settled()
    assert (await stack.fail_over("c0")).dropped_writes > 0
    marks_before = len(stack.invocations_of("markSeen", user=bob))

    # When bob's connection comes back (his own cell and epoch unchanged)
    bob_client.drop_connection()

    # Then he saw c0 move in the directory and sent his mark again, now stored by the
    # standby; amy, back at c0's standby, sees her message seen
    await until(lambda: len(stack.invocations_of("markSeen", user=bob)) == marks_before + 1, 30)
    await until(lambda: bob_client.store.resends_outstanding().seen_marks == 0, 30)
    amy_client = await clients.open(amy, None, directory_url=stack.directory_url)
    await until(lambda: amy_client.history(bob)[0].status == MessageStatus.SEEN, 30)


async def test_unknown_recipient_after_the_recipients_cell_failed_over_is_kept_and_delivered(
    standby_stack: LocalStack, clients: Clients
) -> None:
    stack = standby_stack
    cat, bob = id_homed_in("c0", "cat"), id_homed_in("c1", "bob")
    # Given cat registered at c0's primary, and c0 failed over before it was replicated
    c0 = stack.standby("c0")
    c0.replicator.lag = NEVER_REPLICATED
    bob_client = await clients.open(bob, None, directory_url=stack.directory_url, settings=RARELY)
    cat_client = await clients.open(cat, None, directory_url=stack.directory_url)
    await bob_client.peer_keys(cat)  # pinned while cat is known
    await clients.started.pop().close()
    await stack.settled()
    assert (await stack.fail_over("c0")).dropped_writes > 0
    del cat_client

    # When bob writes to cat, whom c0's standby does not know
    message = await bob_client.send(cat, "are you there?")
    await until(lambda: bob_client.store.resends_outstanding().kept == 1, 30)

    # Then the refusal is not final: the message stays pending, kept for another try
    assert bob_client.history(cat)[0].status == MessageStatus.PENDING
    # And once cat connects again (and registers anew with the same keys), it arrives
    cat_client = await clients.open(cat, None, directory_url=stack.directory_url)
    await until(lambda: [m.text for m in cat_client.history(bob)] == ["are you there?"], 30)
    await until(lambda: bob_client.history(cat)[0].status == MessageStatus.DELIVERED, 30)
    assert bob_client.store.resends_outstanding().kept == 0
    assert bob_client.history(cat)[0].message_id == message.message_id


async def test_a_one_shot_send_waits_for_the_resends_it_starts_and_says_so(
    standby_stack: LocalStack, clients: Clients, home: Path
) -> None:
    stack = standby_stack
    ann, bob = id_homed_in("c0", "ann"), id_homed_in("c1", "bob")

    async def messenger(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            MESSENGER,
            "--directory",
            stack.directory_url,
            "--profile",
            ann,
            *args,
            env=environment(home),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    # Given bob (c1) registered and offline, and ann's first message to him stored in c1's
    # primary by a one-shot `send`, then lost with it
    await clients.open(bob, None, directory_url=stack.directory_url)
    await clients.started.pop().close()
    await stack.settled()
    c1 = stack.standby("c1")
    c1.replicator.flush()
    c1.replicator.lag = NEVER_REPLICATED
    assert (await messenger("init"))[0] == 0
    first = await messenger("send", bob, "first")
    assert first[0] == 0 and "again" not in first[2]
    await stack.settled()
    assert (await stack.fail_over("c1")).dropped_writes > 0

    # When ann sends again with a new one-shot command
    code, _out, err = await messenger("send", bob, "second")

    # Then it saw c1 move, sent the first message again, waited for its ack, and says so
    assert code == 0, err
    assert "sent 1 messages again after a failover: 1 answered" in err
    assert "left for the next run" not in err
    # And bob, back at c1's standby, has both, once each
    bob_client = await clients.open(bob, None, directory_url=stack.directory_url)
    await until(lambda: [m.text for m in bob_client.history(ann)] == ["first", "second"], 30)
