"""Blocking across two cells of the real local stack (docs/protocol.md §2 setBlocked): the
recipient's home cell decides, so a blocked sender of another cell gets an ordinary ack
and nothing is stored, delivered or told."""

from __future__ import annotations

import pytest

from messenger.contract import Env
from messenger_local import LocalStack
from tests.support.cells import user_homed_in
from tests.support.stack_fixtures import Connect, dump_cells
from tests.support.ws_client import message_frame

pytestmark = pytest.mark.e2e


async def test_a_blocked_sender_in_another_cell_is_acked_and_nothing_arrives(
    cells_stack: LocalStack, connect_home: Connect
) -> None:
    # Given bob at home in c0 blocks mallory, at home in c1; carol (c1) is not blocked
    bob, mallory = user_homed_in("c0", "bob"), user_homed_in("c1", "mallory")
    carol = user_homed_in("c1", "carol")
    b = await connect_home(bob)
    assert await b.request({"action": "setBlocked", "add": [mallory.user_id]}) == {
        "type": "blocked",
        "count": 1,
    }
    m, c = await connect_home(mallory), await connect_home(carol)
    # When mallory writes to bob, marks a message of his seen and asks for his presence
    ack = await m.request(message_frame(mallory, bob, "let me in", "msg-blk-00001"))
    seen = {"action": "markSeen", "to": bob.user_id, "messageIds": ["msg-bob-00001"]}
    assert (await m.request(seen))["type"] == "seenStored"  # as anyone's would be
    presence = await m.request({"action": "getPresence", "userIds": [bob.user_id]})
    # Then she sees an ordinary ack, and bob (online) looks like an unknown user to her
    assert ack["type"] == "ack" and ack["status"] == "sent"
    assert ack["messageId"] == "msg-blk-00001"
    assert presence["users"] == [{"userId": bob.user_id, "online": False, "lastSeen": None}]
    # While carol, from the same cell, reaches bob as usual
    assert (await c.request(message_frame(carol, bob, "hi", "msg-blk-00002")))["type"] == "ack"
    delivered = await b.next_of("message")
    assert delivered["from"] == carol.user_id
    await b.nothing_more()
    # And bob's queue in c0 holds carol's message only: no message nor receipt of mallory's
    state = await dump_cells(cells_stack)
    queue = state["c0"][cells_stack.cell("c0").table_names[Env.QUEUE_TABLE]]
    assert [item["messageId"]["S"] for item in queue if "messageId" in item] == ["msg-blk-00002"]
    assert [item for item in queue if "by" in item] == []
    # And getSettings reads the list back
    settings = await b.request({"action": "getSettings"})
    assert settings["blocked"] == [mallory.user_id]
