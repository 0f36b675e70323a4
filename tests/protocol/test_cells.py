"""The shard rule and the directory of docs/protocol.md §6."""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from typing import Any

import pytest
from nacl.signing import SigningKey

from messenger_protocol.cells import (
    DEFAULT_SHARDS,
    Directory,
    InvalidDirectory,
    ShardMap,
    numbered_copy_url,
    shard,
)
from messenger_protocol.encoding import b64url_decode, b64url_encode
from messenger_protocol.limits import DIRECTORY_DIGEST_BYTES

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
    shard_map = ShardMap.even(["c0", "c1"], 4096)
    assert shard_map.to_compact() == "4096:0-2047=c0,2048-4095=c1"
    assert ShardMap.from_compact(shard_map.to_compact()) == shard_map
    for broken in ("", "4096", "4096:0-2047=c0", "x:0-4095=c0", "4096:0-4095"):
        with pytest.raises(InvalidDirectory):
            ShardMap.from_compact(broken)


def test_new_deployments_split_65536_shards() -> None:
    # A thousand cells or more get near-equal shares (docs/protocol.md §6)
    assert DEFAULT_SHARDS == 65536
    shard_map = ShardMap.even([f"c{i}" for i in range(1000)])
    sizes = [entry.last - entry.first + 1 for entry in shard_map.ranges]
    assert shard_map.shards == DEFAULT_SHARDS and (min(sizes), max(sizes)) == (65, 66)


# --- v1.2: epochs, the signature, numbered copies -------------------------------------------

KEY = SigningKey.generate()
PUBLIC_KEY = b64url_encode(bytes(KEY.verify_key))
CELLS = {"c0": "wss://c0.example.test/prod", "c2": "wss://c2.example.test/prod"}
CELLS |= {"c10": "wss://c10.example.test/prod"}
EPOCHS = {"c0": "us-east-1#1", "c2": "eu-west-1#3", "c10": "ap-south-1#1"}
V12 = Directory(
    7,
    CELLS,
    ShardMap(16, tuple(ShardMap.from_compact("16:0-4=c0,5-9=c10,10-15=c2").ranges)),
    EPOCHS,
)


def test_the_signed_text_orders_cells_by_bytes_and_ranges_as_listed() -> None:
    assert V12.signing_text() == (
        b"messenger-directory\n7\n16\n"
        b"c0 wss://c0.example.test/prod us-east-1#1\n"
        b"c10 wss://c10.example.test/prod ap-south-1#1\n"
        b"c2 wss://c2.example.test/prod eu-west-1#3\n"
        b"0 4 c0\n5 9 c10\n10 15 c2\n"
    )
    assert V12.digest() == hashlib.sha512(V12.signing_text()).digest()
    assert len(V12.digest()) == DIRECTORY_DIGEST_BYTES


def test_a_signed_directory_travels_and_verifies_with_the_directory_key_only() -> None:
    # Given a directory signed by the deployment's key
    signed = V12.sign(KEY)
    document = signed.to_wire()
    assert document["cells"]["c10"] == {"url": CELLS["c10"], "epoch": "ap-south-1#1"}
    assert list(document) == ["version", "shards", "cells", "shardMap", "sig"]
    # When a client reads the document
    read = Directory.parse(document)
    # Then it is the same directory, it verifies, and it says each cell's epoch
    assert read == signed and read.verifies(PUBLIC_KEY)
    assert read.epoch_of("c2") == "eu-west-1#3"
    assert not read.verifies(b64url_encode(bytes(SigningKey.generate().verify_key)))
    assert not V12.verifies(PUBLIC_KEY)  # unsigned


@pytest.mark.parametrize(
    "tamper",
    [
        lambda d: dataclasses.replace(d, version=8),
        lambda d: dataclasses.replace(d, epochs=EPOCHS | {"c2": "eu-west-1#4"}),
        lambda d: dataclasses.replace(d, urls=CELLS | {"c0": "wss://evil.example/prod"}),
        lambda d: dataclasses.replace(
            d, shard_map=ShardMap.from_compact("16:0-5=c0,6-9=c10,10-15=c2")
        ),
    ],
)
def test_any_change_to_a_signed_directory_breaks_its_signature(tamper) -> None:
    signed = V12.sign(KEY)
    assert not tamper(signed).verifies(PUBLIC_KEY)


def test_a_key_service_can_sign_the_digest() -> None:
    # Given a service that signs whatever 64 bytes it is handed (as KMS signs a digest)
    handed: list[bytes] = []

    def service(digest: bytes) -> bytes:
        handed.append(digest)
        return KEY.sign(digest).signature

    # Then what it signs is the digest, and the result is the directory signed by its key
    signed = V12.signed_by(service)
    assert handed == [V12.digest()]
    assert signed == V12.sign(KEY) and signed.verifies(PUBLIC_KEY)
    with pytest.raises(ValueError, match="64 bytes"):
        V12.signed_by(lambda digest: b"short")


def test_a_directory_without_every_epoch_cannot_be_signed_and_never_verifies() -> None:
    partial = dataclasses.replace(V12, epochs={"c0": "us-east-1#1"})
    with pytest.raises(InvalidDirectory, match="no epoch"):
        partial.sign(KEY)
    forged = dataclasses.replace(partial, sig=V12.sign(KEY).sig)
    assert not forged.verifies(PUBLIC_KEY)


def test_a_v11_document_still_reads_without_epochs_or_signature() -> None:
    directory = Directory.parse(EXAMPLE)
    assert directory.epoch_of("c0") is None and directory.sig is None
    assert not directory.verifies(PUBLIC_KEY)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"cells": {"c0": {"url": "wss://x", "epoch": "us east"}}}, "epoch of cell c0"),
        ({"cells": {"c0": {"url": "wss://x", "epoch": "e" * 65}}}, "epoch of cell c0"),
        ({"cells": {"c0": {"url": "wss://x", "epoch": 1}}}, "epoch of cell 'c0' is not a string"),
        ({"cells": {"c0": {"url": "wss://x y/prod"}}}, "contains whitespace"),
        ({"cells": {"C0": {"url": "wss://x"}}}, "is not a cell id"),
        ({"shardMap": [[2048, 4095, "c1"], [0, 2047, "c0"]]}, "ascending order"),
        ({"sig": "AAAA"}, "sig must be 64 bytes"),
        ({"sig": 5}, "sig must be a string"),
    ],
)
def test_a_broken_v12_directory_is_refused_with_its_reason(change: dict, says: str) -> None:
    document = EXAMPLE | change
    if "cells" in change:
        document["shardMap"] = [[0, 4095, next(iter(change["cells"]))]]
    with pytest.raises(InvalidDirectory, match=says):
        Directory.parse(document)


def test_an_epoch_for_a_cell_that_is_not_there_is_refused() -> None:
    with pytest.raises(InvalidDirectory, match="not a cell"):
        dataclasses.replace(V12, epochs=EPOCHS | {"c9": "x"})


@pytest.mark.parametrize(
    ("url", "copy"),
    [
        ("https://d.example/directory.json", "https://d.example/directory/7.json"),
        ("http://127.0.0.1:8080/directory.json", "http://127.0.0.1:8080/directory/7.json"),
        (
            "https://cdn.example/prod/directory.json?v=1",
            "https://cdn.example/prod/directory/7.json?v=1",
        ),
    ],
)
def test_every_version_has_its_numbered_copy_beside_the_directory(url: str, copy: str) -> None:
    assert numbered_copy_url(url, 7) == copy


def test_only_a_directory_url_has_numbered_copies() -> None:
    for url in ("https://d.example/dir.json", "https://d.example/directory.json/", ""):
        with pytest.raises(ValueError):
            numbered_copy_url(url, 7)
    with pytest.raises(ValueError):
        numbered_copy_url("https://d.example/directory.json", -1)


def test_the_signature_is_over_the_digest_not_the_text() -> None:
    signed = V12.sign(KEY)
    assert signed.sig is not None
    KEY.verify_key.verify(V12.digest(), b64url_decode(signed.sig))


def test_a_range_given_to_another_cell_splits_and_joins_the_map() -> None:
    # Given three cells' even split of 65,536 shards
    shard_map = ShardMap.even(["c0", "c1", "c2"])
    c0 = shard_map.ranges[0]
    # When the top half of c0's range moves to c1, its neighbour
    middle = (c0.first + c0.last) // 2
    moved = shard_map.reassigned(middle + 1, c0.last, "c1")
    # Then c0 keeps the bottom half and c1's ranges join into one
    assert moved.to_wire()[0] == [0, middle, "c0"]
    assert moved.to_wire()[1] == [middle + 1, shard_map.ranges[1].last, "c1"]
    assert len(moved.ranges) == 3
    # And ownership follows: c0 no longer owns what moved, c1 does
    assert shard_map.owns("c0", middle + 1, c0.last)
    assert not moved.owns("c0", middle + 1, c0.last)
    assert moved.owns("c1", middle + 1, shard_map.ranges[1].last)
    # And a range out of the map is nobody's
    assert not moved.owns("c0", 0, 70000)
    assert not moved.owns("c0", 5, 4)


def test_a_range_in_the_middle_of_another_cells_range_splits_it_in_three() -> None:
    shard_map = ShardMap.even(["c0", "c1"])
    moved = shard_map.reassigned(100, 199, "c1")
    assert moved.to_wire()[:3] == [[0, 99, "c0"], [100, 199, "c1"], [200, 32767, "c0"]]
