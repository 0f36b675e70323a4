"""The cell's epoch in syncDone and ack (docs/protocol.md §3, §7), and the directory
version (`dv`, §6) in both: `<region>#<generation>`, where a
failover switch bumps the generation in the region it makes active; read at most once
per 10 s per container."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from messenger.dal.cell_generation import CellGeneration
from messenger.logic.epoch import CACHE_SECONDS, epoch_name
from tests.support.cells import cells_harness, user_homed_in
from tests.support.harness import TABLE_NAMES, Connection, Harness, harness
from tests.support.identities import TestUser

pytestmark = pytest.mark.integration


@pytest.fixture
def h() -> Iterator[Harness]:
    with harness(cell_epoch="us-east-1") as running:
        yield running


def epoch_of(h: Harness, connection: Connection) -> str:
    assert h.send(connection, {"action": "sync"}) is None
    (done,) = h.posts.take(connection.connection_id)
    assert done["type"] == "syncDone"
    epoch: str = done["epoch"]
    return epoch


def generation_reads(h: Harness) -> list[dict[str, Any]]:
    """Every GetItem the functions make of the cell's generation, from now on."""
    reads: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **kwargs: Any) -> None:
        # The epoch's own reads (the fence's, logic/cell_view.py, have their own cache).
        if params.get("Key", {}).get("pk") == {"S": "CELL"} and "ProjectionExpression" in params:
            reads.append(params)

    h.services.dynamodb.meta.events.register("provide-client-params.dynamodb.GetItem", record)
    return reads


def switch_here(h: Harness, side: str) -> int | None:
    """What the failover switch does to this region's replica (messenger_directory.failover),
    this region being the cell's side `side`: it stays the active one, and serves."""
    bumped = CellGeneration(h.dynamodb, TABLE_NAMES["Users"]).bump(side, h.clock.now_ms())
    h.services.cell_view.own_side = side
    h.services.cell_view.forget()
    return bumped


def test_before_any_switch_the_epoch_is_the_region_at_generation_zero(
    h: Harness, bob: TestUser
) -> None:
    b = h.connect(bob)
    assert epoch_of(h, b) == "us-east-1#0" == epoch_name("us-east-1", 0)


def test_a_switch_shows_in_sync_done_within_the_cache_period_and_not_before(
    h: Harness, bob: TestUser
) -> None:
    # Given bob, who saw the epoch once
    b = h.connect(bob)
    assert epoch_of(h, b) == "us-east-1#0"
    # When this region becomes the active one, just after
    assert switch_here(h, "standby") == 1
    # Then his syncs name the old epoch while the container's copy is fresh
    h.clock.advance(CACHE_SECONDS - 1)
    assert epoch_of(h, b) == "us-east-1#0"
    # And the new one once it ran out, and from then on
    h.clock.advance(1)
    assert epoch_of(h, b) == "us-east-1#1"
    h.clock.advance(CACHE_SECONDS * 3)
    assert epoch_of(h, b) == "us-east-1#1"


def test_a_failback_names_a_new_epoch_never_an_earlier_one(h: Harness, bob: TestUser) -> None:
    b = h.connect(bob)
    seen = [epoch_of(h, b)]
    for side in ("standby", "primary", "standby"):
        assert switch_here(h, side) is not None
        h.clock.advance(CACHE_SECONDS)
        seen.append(epoch_of(h, b))
    assert seen == ["us-east-1#0", "us-east-1#1", "us-east-1#2", "us-east-1#3"]


def test_the_same_switch_run_twice_bumps_once(h: Harness, bob: TestUser) -> None:
    assert switch_here(h, "standby") == 1
    assert switch_here(h, "standby") is None
    h.clock.advance(CACHE_SECONDS)
    assert epoch_of(h, h.connect(bob)) == "us-east-1#1"


def test_syncs_cost_one_generation_read_per_cache_period_per_container(
    h: Harness, bob: TestUser
) -> None:
    b = h.connect(bob)
    reads = generation_reads(h)
    # When bob syncs 5 times within the period, then again after it
    for _ in range(5):
        epoch_of(h, b)
        h.clock.advance(1)
    assert len(reads) == 1
    h.clock.advance(CACHE_SECONDS)
    epoch_of(h, b)
    epoch_of(h, b)
    # Then one read each period, of the one item, asking for the generation only
    assert len(reads) == 2
    assert reads[0]["TableName"] == TABLE_NAMES["Users"]
    assert reads[0]["Key"] == {"pk": {"S": "CELL"}, "sk": {"S": "EPOCH"}}
    assert reads[0]["ProjectionExpression"] == "generation"


# --- the epoch and the directory version in `ack` (docs/protocol.md §3, §6, §7) -------


def test_an_ack_names_the_epoch_it_was_stored_under_and_a_resend_the_current_one(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    # Given alice's message to bob, acknowledged under the cell's first epoch
    a = h.connect(alice)
    h.disconnect(h.connect(bob))
    frame = h.message(a, bob, "hi", "msg-epoch-0001")
    first = h.send(a, frame)
    assert (first["type"], first["epoch"]) == ("ack", "us-east-1#0")
    # When the cell switches, and alice sends it again (she had no delivered receipt)
    assert switch_here(h, "standby") == 1
    h.clock.advance(CACHE_SECONDS)
    again = h.send(a, frame)
    # Then the same message is acknowledged (same serverTs, one copy), under the new epoch
    assert again["epoch"] == "us-east-1#1"
    assert again["serverTs"] == first["serverTs"]
    assert len(h.queue_of(bob)) == 1


def test_ack_and_sync_done_carry_the_directory_version_the_cell_knows(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    a, b = h.connect(alice), h.connect(bob)
    # Before any directory: 0
    assert h.send(a, h.message(a, bob, "one", "msg-dv-0001"))["dv"] == 0
    # When the directory publisher sets the stage's `dv` (messenger_directory.stages)
    h.stage_variables["dv"] = "7"
    # Then the next ack and syncDone say 7
    assert h.send(a, h.message(a, bob, "two", "msg-dv-0002"))["dv"] == 7
    h.posts.take(b.connection_id)
    assert h.send(b, {"action": "sync"}) is None
    done = h.posts.take(b.connection_id)[-1]
    assert (done["type"], done["dv"]) == ("syncDone", 7)


def test_across_cells_the_ack_names_the_recipients_home_epoch_and_the_senders_dv() -> None:
    with cells_harness() as cells:
        alice, bob = user_homed_in("c1", "alice"), user_homed_in("c0", "bob")
        a = cells["c1"].connect(alice)
        cells["c0"].disconnect(cells["c0"].connect(bob))
        # Given bob's home, c0, switched once, and c1 knowing directory version 3
        home = cells["c0"]
        CellGeneration(home.dynamodb, home.table_names["Users"]).bump("standby", 1)
        home.services.cell_view.own_side = "standby"
        home.services.cell_view.forget()
        home.clock.advance(CACHE_SECONDS)
        cells["c1"].stage_variables["dv"] = "3"
        # When alice, in c1, sends bob a message
        ack = cells["c1"].send(a, cells["c1"].message(a, bob, "hi", "msg-epoch-0101"))
        # Then the epoch is that of c0, which stored it, and the dv that of her own cell
        assert ack["type"] == "ack"
        assert ack["epoch"].endswith("#1")
        assert ack["dv"] == 3
        assert epoch_of(cells["c1"], a).endswith("#0")
