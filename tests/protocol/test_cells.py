"""The shard rule and the directory of docs/protocol.md §6."""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

import pytest

from messenger_protocol.cells import Directory, InvalidDirectory, ShardMap, shard

pytestmark = pytest.mark.unit

EXAMPLE: dict[str, Any] = {
    "version": 7,
    "shards": 4096,
    "cells": {
        "c0": {"url": "wss://a1b2.execute-api.us-east-1.amazonaws.com/prod"},
        "c1": {"url": "wss://c3d4.execute-api.eu-west-1.amazonaws.com/prod"},
    },
    "shardMap": [[0, 2047, "c0"], [2048, 4095, "c1"]],
}


def test_the_shard_is_the_first_four_bytes_of_sha256_big_endian_modulo_shards() -> None:
    digest = hashlib.sha256(b"alice").digest()
    assert shard("alice", 4096) == int.from_bytes(digest[:4], "big") % 4096
    assert shard("alice", 1) == 0


def test_the_protocols_example_directory_reads_and_routes_every_user_home() -> None:
    directory = Directory.parse(EXAMPLE)
    for user in ("alice", "bob", "carol", "dave", "0", "z" * 64):
        cell = "c0" if shard(user, 4096) <= 2047 else "c1"
        assert directory.home_of(user) == cell
        assert directory.home_url(user) == EXAMPLE["cells"][cell]["url"]
    assert directory.to_wire() == EXAMPLE


def test_an_even_split_covers_every_shard_once_and_spreads_users() -> None:
    shard_map = ShardMap.even(["c0", "c1", "c2"], 4096)
    assert shard_map.to_wire() == [[0, 1364, "c0"], [1365, 2729, "c1"], [2730, 4095, "c2"]]
    homes = Counter(shard_map.home_of(f"user{i}") for i in range(9000))
    assert min(homes.values()) > 2700


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"shardMap": [[0, 2046, "c0"], [2048, 4095, "c1"]]}, "no gap or overlap"),
        ({"shardMap": [[0, 2048, "c0"], [2048, 4095, "c1"]]}, "no gap or overlap"),
        ({"shardMap": [[0, 2047, "c0"], [2048, 4094, "c1"]]}, "end at 4094"),
        ({"shardMap": [[0, 4095, "c9"]]}, "no url"),
        ({"cells": {"c0": {"url": "https://x"}, "c1": {"url": "wss://y"}}}, "not ws://"),
        ({"version": -1}, "version"),
        ({"shards": 0}, "shards"),
        ({"cells": []}, "cells must be"),
    ],
)
def test_a_broken_directory_is_refused_with_its_reason(change: dict, says: str) -> None:
    with pytest.raises(InvalidDirectory, match=says):
        Directory.parse(EXAMPLE | change)


def test_a_shard_map_travels_as_one_line_of_configuration() -> None:
    shard_map = ShardMap.even(["c0", "c1"])
    assert shard_map.to_compact() == "4096:0-2047=c0,2048-4095=c1"
    assert ShardMap.from_compact(shard_map.to_compact()) == shard_map
    for broken in ("", "4096", "4096:0-2047=c0", "x:0-4095=c0", "4096:0-4095"):
        with pytest.raises(InvalidDirectory):
            ShardMap.from_compact(broken)
