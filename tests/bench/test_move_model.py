"""bench move's pieces that need no stack: the range it moves, and the modelled move of a
full cell at DynamoDB's write quotas (issue 23)."""

from __future__ import annotations

import pytest

from bench.move import choose_range
from bench.move_model import CellShare, copy_rate, write_units
from messenger_protocol.cells import Directory, ShardMap

pytestmark = pytest.mark.unit

CELLS = ["c0", "c1", "c2"]


def test_the_range_chosen_holds_the_share_asked_of_the_source_cells_users() -> None:
    # Given a directory of three cells and 400 users
    directory = Directory(1, {c: f"ws://x/{c}" for c in CELLS}, ShardMap.even(CELLS))
    users = [f"user-{n:04d}" for n in range(400)]
    # When a quarter of them is asked for, from c0
    chosen = choose_range(directory, users, "c0", "c1", 0.25)
    # Then the range starts at c0's first shard, stays inside c0's range, and holds 100
    c0 = next(r for r in directory.shard_map.ranges if r.cell == "c0")
    assert chosen.lo == c0.first and chosen.hi < c0.last
    assert len(chosen.users) == 100
    assert all(directory.home_of(user) == "c0" for user in chosen.users)
    assert chosen.body() == {"from": "c0", "to": "c1", "lo": c0.first, "hi": chosen.hi}


def test_a_share_larger_than_the_cell_moves_all_but_its_last_shard() -> None:
    directory = Directory(1, {c: f"ws://x/{c}" for c in CELLS}, ShardMap.even(CELLS))
    users = [f"user-{n:04d}" for n in range(90)]
    chosen = choose_range(directory, users, "c0", "c1", 0.9)
    c0 = next(r for r in directory.shard_map.ranges if r.cell == "c0")
    assert chosen.hi <= c0.last - 1
    in_c0 = [u for u in users if directory.home_of(u) == "c0"]
    assert 0 < len(chosen.users) <= len(in_c0)


def test_the_copy_gets_what_the_table_leaves_under_its_quota_and_growth() -> None:
    # The quota minus the live load, when the table has peaked high enough before
    assert copy_rate(40_000, 10_000, 30_000) == 30_000
    # Never more than double the previous peak at once (on-demand scaling)
    assert copy_rate(40_000, 5_000, 10_000) == 15_000
    # Nothing when the live load takes it all
    assert copy_rate(40_000, 45_000, 45_000) == 0


def test_every_item_is_written_once_and_deleted_once_by_its_size() -> None:
    assert (write_units(100), write_units(1024), write_units(1025)) == (1, 1, 2)
    cell = CellShare(
        cells=10,
        users=1_000,
        queued=500,
        user_item_bytes=600,
        queued_item_bytes=1_500,
        peak_wru=1_000,
        busiest_table="Queue",
    )
    # 1,000 users x 5 items x 1 unit, 500 queued x 2 units; each put and deleted
    assert cell.writes(5) == 2 * (5_000 + 1_000)
