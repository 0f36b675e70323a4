"""Shard moves (docs/protocol.md §6 "Shard moves", docs/scale.md "Shard moves") on moto:
three cells, each with its own tables and functions, the directory published into a
moto S3 bucket by the directory's own code (store.publish_map), the move's steps as they
run on AWS."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from messenger.dal.range_items import PAGE_ITEMS, RangeItems
from messenger.logic.shard_move import (
    STEPS,
    MoveBusy,
    MoveRefused,
)
from messenger_protocol.cells import ShardMap
from tests.support.moves import (
    ALICE,
    BOB,
    CAROL,
    CELLS,
    Deployment,
    Killed,
    alice_shard,
    items_of,
    moving_deployment,
    queue_for,
    queue_ids,
)

pytestmark = pytest.mark.integration


def alice_range() -> tuple[int, int]:
    """A range of c0's holding alice but not carol."""
    mine = alice_shard()
    return mine, mine


@pytest.fixture
def deployment() -> Iterator[Deployment]:
    with moving_deployment() as running:
        yield running


def test_given_an_offline_user_with_queued_items_then_everything_moves_and_the_old_home_refuses(
    deployment: Deployment,
) -> None:
    # Given alice registered in c0 with a block, offline, with messages from bob queued
    c0, c1, c2 = deployment["c0"], deployment["c1"], deployment["c2"]
    a = c0.connect(ALICE)
    assert c0.send(a, {"action": "setBlocked", "add": [CAROL.user_id]})["type"] == "blocked"
    c0.disconnect(a)
    b = c1.connect(BOB)
    for n in range(3):
        assert c1.send(b, c1.message(b, ALICE, f"queued {n}", f"msg-before-{n}"))["type"] == "ack"
    before_queue = queue_ids(c0, ALICE)
    before_users = {(item["pk"]["S"], item["sk"]["S"]) for item in items_of(c0, ALICE)}
    assert (f"U#{ALICE.user_id}", f"BLOCK#{CAROL.user_id}") in before_users
    carol_before = items_of(c0, CAROL)
    version = deployment.directory.version
    # When alice's range moves from c0 to c2
    result = deployment.move(*alice_range())
    # Then the directory moved on once, and says c2
    assert result.record.version == version + 1 == deployment.directory.version
    assert deployment.mover.status("c0")[0].status == "done"
    # And c2 holds her queue, same keys and order, her profile, block and nonces; c0 nothing
    assert queue_ids(c2, ALICE) == before_queue
    assert c0.queue_of(ALICE) == [] and items_of(c0, ALICE) == []
    assert {(item["pk"]["S"], item["sk"]["S"]) for item in items_of(c2, ALICE)} == before_users
    assert (result.record.users, result.record.items) == (1, 3)
    # And carol, outside the range, stayed in c0 untouched
    assert items_of(c0, CAROL) == carol_before
    # And c0 refuses alice's handshake (403); c2 takes it, with no keys given again
    decision = c0.authorize(ALICE.connect_query(ts=c0.clock.now_s()))
    assert decision["policyDocument"]["Statement"][0]["Effect"] == "Deny"
    again = c2.connect(ALICE, with_keys=False)
    # And bob, whose cell still has the old map, reaches her: c0 forwards to c2, once
    assert c1.send(b, c1.message(b, ALICE, "after", "msg-after-0"))["type"] == "ack"
    assert len(c2.posts.of_type(again.connection_id, "message")) == 1
    assert len(c2.queue_of(ALICE)) == 4 and c0.queue_of(ALICE) == []
    # And a resend of the same frame stores nothing twice
    assert c1.send(b, c1.message(b, ALICE, "after", "msg-after-0"))["type"] == "ack"
    assert len(c2.queue_of(ALICE)) == 4
    # And her ack in c2 of everything gets bob his delivered receipts in c1
    ids = [item["sk"]["S"] for item in c2.queue_of(ALICE)]
    c2.send(again, {"action": "ack", "ids": ids})
    assert c2.queue_of(ALICE) == []
    delivered = {
        message_id
        for receipt in c1.posts.of_type(b.connection_id, "receipt")
        for message_id in receipt["messageIds"]
    }
    assert delivered == {"msg-before-0", "msg-before-1", "msg-before-2", "msg-after-0"}


def test_given_an_open_connection_at_the_old_home_then_moved_and_closed(
    deployment: Deployment,
) -> None:
    # Given alice online in c0
    c0 = deployment["c0"]
    a = c0.connect(ALICE)
    # When her range moves to c2
    deployment.move(*alice_range())
    # Then her connection was told MOVED and closed
    [moved] = c0.posts.of_type(a.connection_id, "error")
    assert moved["code"] == "MOVED"
    assert a.connection_id in c0.posts.deleted
    # And a frame she still sends there is answered MOVED, and writes nothing
    before = deployment.cells.dump()
    reply = c0.send(a, {"action": "ping"})
    refusals = [reply] if reply else c0.posts.of_type(a.connection_id, "error")[1:]
    assert [frame["code"] for frame in refusals] == ["MOVED"]
    assert deployment.cells.dump() == before


def test_given_a_move_in_progress_then_sends_to_the_range_are_rate_limited_and_nothing_stored(
    deployment: Deployment,
) -> None:
    c0, c1 = deployment["c0"], deployment["c1"]
    c0.disconnect(c0.connect(ALICE))
    b = c1.connect(BOB)
    record = deployment.mover.start("c0", "c2", *alice_range())

    def stop_after_fence(current: Any) -> None:
        if current.step == "copy-users":
            raise Killed

    deployment.mover.after_step = stop_after_fence
    with pytest.raises(Killed):
        deployment.mover.run("c0", record.move_id)
    # While the range is fenced, a send to alice is RATE_LIMITED with retryAfter
    refused = c1.send(b, c1.message(b, ALICE, "during", "msg-during-0"))
    assert refused["type"] == "error" and refused["code"] == "RATE_LIMITED"
    assert refused["retryAfter"] > 0
    assert c0.queue_of(ALICE) == [] and deployment["c2"].queue_of(ALICE) == []
    # And her handshake waits (a failure the client retries), registering nobody
    with pytest.raises(Exception):  # noqa: B017  # the authorizer fails: API Gateway's 500
        c0.authorize(ALICE.connect_query(ts=c0.clock.now_s()))
    # When the move resumes and finishes, the same frame sent again is stored once in c2
    deployment.mover.after_step = lambda current: None
    deployment.mover.run("c0", record.move_id)
    assert c1.send(b, c1.message(b, ALICE, "during", "msg-during-0"))["type"] == "ack"
    assert len(deployment["c2"].queue_of(ALICE)) == 1


@pytest.mark.parametrize("stop_at", range(1, len(STEPS)))
def test_given_a_move_killed_after_any_step_then_a_new_run_finishes_it_losing_and_doubling_nothing(
    deployment: Deployment, stop_at: int
) -> None:
    # Given alice with more queued than one page of the copy holds
    c0, c2 = deployment["c0"], deployment["c2"]
    c0.disconnect(c0.connect(ALICE))
    queue_for(c0, ALICE, BOB, PAGE_ITEMS + 50)
    before = queue_ids(c0, ALICE)
    record = deployment.mover.start("c0", "c2", *alice_range())

    def kill(current: Any) -> None:
        if current.step == STEPS[stop_at]:
            raise Killed

    deployment.mover.after_step = kill
    # When the runner dies after the step before STEPS[stop_at]
    with pytest.raises(Killed):
        deployment.mover.run("c0", record.move_id)
    # Then a new run resumes there and finishes
    deployment.mover.after_step = lambda current: None
    result = deployment.mover.run("c0", record.move_id)
    # And every item is in c2 exactly once, in order, and none is left in c0
    assert queue_ids(c2, ALICE) == before
    assert c0.queue_of(ALICE) == []
    assert result.record.items == len(before) and result.record.users == 1


def test_given_a_copy_killed_inside_a_page_then_a_new_run_stores_each_item_once(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    c0, c2 = deployment["c0"], deployment["c2"]
    c0.disconnect(c0.connect(ALICE))
    queue_for(c0, ALICE, BOB, PAGE_ITEMS + 50)
    before = queue_ids(c0, ALICE)
    record = deployment.mover.start("c0", "c2", *alice_range())
    real_put = RangeItems.put_all
    pages = {"queue": 0}

    def dying_put(self: RangeItems, items: list[dict[str, Any]]) -> None:
        if self.role.value == "queue":
            pages["queue"] += 1
            if pages["queue"] == 2:  # the queue's second page, half written
                real_put(self, items[: len(items) // 2])
                raise Killed
        real_put(self, items)

    monkeypatch.setattr(RangeItems, "put_all", dying_put)
    with pytest.raises(Killed):
        deployment.mover.run("c0", record.move_id)
    stored = deployment.mover.status("c0")[0]
    assert stored.step.startswith("copy-") and stored.error and "Killed" in stored.error
    monkeypatch.setattr(RangeItems, "put_all", real_put)
    result = deployment.mover.run("c0", record.move_id)
    assert queue_ids(c2, ALICE) == before
    assert c0.queue_of(ALICE) == []
    assert result.record.items == len(before)


def test_given_a_range_the_cell_does_not_own_then_refused_and_nothing_changes(
    deployment: Deployment,
) -> None:
    before = deployment.cells.dump()
    version = deployment.directory.version
    c1_range = ShardMap.even(list(CELLS)).ranges[1]
    with pytest.raises(MoveRefused, match="does not own"):
        deployment.mover.start("c0", "c2", c1_range.first, c1_range.last)
    with pytest.raises(MoveRefused):
        deployment.mover.start("c0", "c2", 10, 5)
    with pytest.raises(MoveRefused):
        deployment.mover.start("c0", "c9", 0, 5)
    assert deployment.cells.dump() == before
    assert deployment.directory.version == version


def test_given_a_move_running_then_an_overlapping_one_is_busy_and_nothing_changes(
    deployment: Deployment,
) -> None:
    deployment.mover.start("c0", "c2", 0, 100)
    before = deployment.cells.dump()
    with pytest.raises(MoveBusy, match="overlap"):
        deployment.mover.start("c0", "c1", 50, 60)
    assert deployment.cells.dump() == before
    # A range beside it may move
    deployment.mover.start("c0", "c1", 101, 200)
