"""A cell's shard map, read from the signed directory in the directory's bucket
(messenger.dal.directory_map), on moto's S3: believed only when signed by the directory key
and not older than what it kept, kept a minute, and never guessed (docs/scale.md "The
mesh").
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from nacl.signing import SigningKey

from messenger.config import CellSettings, MeshBucket, settings_from
from messenger.contract import Env
from messenger.dal.directory_map import (
    MAP_TTL_MS,
    RETRY_MS,
    DirectoryShardMap,
    DirectoryUnavailable,
)
from messenger.logic.cells import Cells
from messenger.logic.clock import FixedClock
from messenger_protocol.cells import DIRECTORY_NAME, Directory, ShardMap
from messenger_protocol.encoding import b64url_encode

pytestmark = pytest.mark.integration

REGION = "us-east-1"
OWNER = "123456789012"  # moto's account
BUCKET = "messenger-dev-directory-123456789012-us-east-1"
DIRECTORY_KEY = SigningKey(bytes(range(32)))
PUBLIC_KEY = b64url_encode(bytes(DIRECTORY_KEY.verify_key))
URLS = {
    "c0": "wss://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com/dev",
    "c1": "wss://f6g7h8i9j0.execute-api.eu-west-1.amazonaws.com/dev",
    "c2": "wss://k1l2m3n4o5.execute-api.eu-central-1.amazonaws.com/dev",
}
TWO_CELLS = ShardMap.even(["c0", "c1"])
THREE_CELLS = ShardMap.even(["c0", "c1", "c2"])


class CountingS3:
    """moto's S3 client, counting the reads (what the cache saves)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.reads = 0

    def get_object(self, **kwargs: Any) -> Any:
        self.reads += 1
        return self.client.get_object(**kwargs)


@pytest.fixture
def s3() -> Iterator[CountingS3]:
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket=BUCKET)
        yield CountingS3(client)


def publish(
    s3: CountingS3, version: int, shard_map: ShardMap, key: SigningKey = DIRECTORY_KEY
) -> None:
    """directory.json as the directory function writes it, signed by `key`."""
    cells = shard_map.cells()
    directory = Directory(
        version,
        {cell: URLS[cell] for cell in cells},
        shard_map,
        dict.fromkeys(cells, "us-east-1#0"),
    ).sign(key)
    s3.client.put_object(
        Bucket=BUCKET, Key=DIRECTORY_NAME, Body=json.dumps(directory.to_wire()).encode()
    )


def reader(s3: CountingS3, clock: FixedClock, public_key: str = PUBLIC_KEY) -> DirectoryShardMap:
    return DirectoryShardMap(lambda: s3, BUCKET, OWNER, public_key, clock)  # type: ignore[arg-type,return-value]


def test_given_a_signed_directory_then_the_cell_serves_by_its_map_and_knows_its_peers(s3):
    # Given a published directory of two cells
    publish(s3, 7, TWO_CELLS)
    clock = FixedClock(1_000_000)
    maps = reader(s3, clock)
    cells = Cells(
        CellSettings("c0", None, MeshBucket(BUCKET, REGION, OWNER), PUBLIC_KEY),
        None,
        clock,
        shard_maps=maps,
    )
    # Then c0's view is the directory's
    assert maps.current() == TWO_CELLS
    assert maps.version == 7
    assert cells.peers == ("c1",)
    user = next(u for u in (f"user{n}" for n in range(100)) if TWO_CELLS.home_of(u) == "c1")
    assert cells.home_of(user) == "c1" and not cells.is_home(user)


def test_the_map_is_kept_a_minute_then_read_again(s3):
    # Given a map read once
    publish(s3, 1, TWO_CELLS)
    clock = FixedClock(1_000_000)
    maps = reader(s3, clock)
    maps.current()
    # When a new version is published, within the minute nothing is read
    publish(s3, 2, THREE_CELLS)
    for _ in range(50):
        assert maps.current() == TWO_CELLS
    assert s3.reads == 1
    # Then, once the minute is over, the new version is read and served
    clock.advance(MAP_TTL_MS / 1000)
    assert maps.current() == THREE_CELLS
    assert maps.version == 2 and s3.reads == 2


def test_a_directory_not_signed_by_the_directory_key_is_refused_and_nothing_is_guessed(s3):
    # Given a directory signed by another key (a forger who could write the bucket)
    publish(s3, 10**15, TWO_CELLS, key=SigningKey.generate())
    maps = reader(s3, FixedClock(1_000_000))
    # Then a cold start fails closed, naming why
    with pytest.raises(DirectoryUnavailable, match="not signed by the directory key"):
        maps.current()
    # And again at once without reading S3 again (a forged document costs one read a 5 s)
    with pytest.raises(DirectoryUnavailable):
        maps.current()
    assert s3.reads == 1


def test_a_forged_or_older_directory_later_keeps_the_map_already_believed(s3):
    # Given a cell serving by version 5
    publish(s3, 5, TWO_CELLS)
    clock = FixedClock(1_000_000)
    maps = reader(s3, clock)
    assert maps.current() == TWO_CELLS
    # When a forged version 6 appears, then a properly signed but older version 4
    publish(s3, 6, THREE_CELLS, key=SigningKey.generate())
    clock.advance(MAP_TTL_MS / 1000)
    assert maps.current() == TWO_CELLS
    publish(s3, 4, THREE_CELLS)
    clock.advance(RETRY_MS / 1000)
    assert maps.current() == TWO_CELLS
    # Then version 5 is still what it serves by, until a newer signed one comes
    assert maps.version == 5
    publish(s3, 6, THREE_CELLS)
    clock.advance(RETRY_MS / 1000)
    assert maps.current() == THREE_CELLS and maps.version == 6


def test_a_cell_started_before_the_first_publish_fails_closed(s3):
    # Given an empty bucket (the directory is not published yet)
    maps = reader(s3, FixedClock(1_000_000))
    # Then there is no map to serve by, and the error says where it looked
    with pytest.raises(DirectoryUnavailable, match=re.escape(f"s3://{BUCKET}/{DIRECTORY_NAME}")):
        maps.current()


def test_the_environment_names_no_shard_map_only_where_the_signed_directory_is():
    # Given a cell's environment with the directory's bucket and key
    environment = {
        Env.USERS_TABLE.value: "users",
        Env.QUEUE_TABLE.value: "queue",
        Env.LIMITS_TABLE.value: "limits",
        Env.CELL_ID.value: "c1",
        Env.MESH_BUCKET.value: BUCKET,
        Env.MESH_BUCKET_REGION.value: REGION,
        Env.MESH_BUCKET_OWNER.value: OWNER,
        Env.DIRECTORY_PUBLIC_KEY.value: PUBLIC_KEY,
    }
    # Then the cell reads its map from the directory
    cell = settings_from(environment).cell
    assert cell.reads_directory and cell.directory_key == PUBLIC_KEY
    # And without the key it refuses to start, saying what it needs
    del environment[Env.DIRECTORY_PUBLIC_KEY.value]
    with pytest.raises(ValueError, match=r"DIRECTORY_PUBLIC_KEY .* DirectoryPublicKey"):
        settings_from(environment)
    # And a cell without the directory's bucket is its deployment's only cell
    for name in (Env.MESH_BUCKET, Env.MESH_BUCKET_REGION, Env.MESH_BUCKET_OWNER):
        del environment[name.value]
    alone = settings_from(environment).cell
    assert alone.shard_map == ShardMap.even(["c1"])


# --- the directory in two regions (docs/availability.md "The directory in two regions") --

SECOND_REGION = "us-west-2"
SECOND_BUCKET = f"messenger-dev-directory-{OWNER}-{SECOND_REGION}"


def test_given_the_first_directory_region_lost_then_a_cold_cell_reads_the_second_bucket(s3):
    # Given the directory mirrored into the second region's bucket, and the first
    # region's S3 unreachable (a closed loopback port: connecting is refused)
    second = boto3.client("s3", region_name=SECOND_REGION)
    second.create_bucket(
        Bucket=SECOND_BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"}
    )
    publish(s3, 4, TWO_CELLS)
    second.put_object(
        Bucket=SECOND_BUCKET,
        Key=DIRECTORY_NAME,
        Body=s3.client.get_object(Bucket=BUCKET, Key=DIRECTORY_NAME)["Body"].read(),
    )
    lost = boto3.client(
        "s3",
        region_name=REGION,
        endpoint_url="http://127.0.0.1:9",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    maps = DirectoryShardMap(
        lambda: lost,
        BUCKET,
        OWNER,
        PUBLIC_KEY,
        FixedClock(1_000_000),
        fallback=(lambda: second, SECOND_BUCKET),
    )

    # Then a container that never read a map (a cold start) serves by the second's
    assert maps.current() == TWO_CELLS and maps.version == 4


def first_bucket_gone(s3: CountingS3, fallback: Any) -> DirectoryShardMap:
    """A reader whose first bucket does not exist (NoSuchBucket), with `fallback`."""
    return DirectoryShardMap(
        lambda: s3,  # type: ignore[arg-type,return-value]
        "messenger-dev-directory-gone",
        OWNER,
        PUBLIC_KEY,
        FixedClock(1_000_000),
        fallback=fallback,
    )


def test_given_neither_bucket_readable_then_the_cell_still_refuses_saying_both(s3):
    maps = first_bucket_gone(s3, fallback=(lambda: s3, "messenger-dev-directory-gone-too"))
    with pytest.raises(DirectoryUnavailable, match=r"gone/directory\.json.*gone-too/directory"):
        maps.current()


def test_given_a_forged_directory_in_the_second_bucket_then_it_is_refused(s3):
    # The second bucket is believed as the first is: only signed by the directory key.
    second = boto3.client("s3", region_name=SECOND_REGION)
    second.create_bucket(
        Bucket=SECOND_BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"}
    )
    forged = Directory(
        9, {c: URLS[c] for c in ("c0", "c1")}, TWO_CELLS, dict.fromkeys(("c0", "c1"), "x#0")
    ).sign(SigningKey(bytes(32)))
    second.put_object(
        Bucket=SECOND_BUCKET, Key=DIRECTORY_NAME, Body=json.dumps(forged.to_wire()).encode()
    )
    maps = first_bucket_gone(s3, fallback=(lambda: second, SECOND_BUCKET))
    with pytest.raises(DirectoryUnavailable, match="not signed by the directory key"):
        maps.current()


def test_the_fallback_bucket_is_configured_with_its_region_or_not_at_all():
    environment = {
        "CELL_ID": "c0",
        Env.MESH_BUCKET.value: BUCKET,
        Env.MESH_BUCKET_REGION.value: REGION,
        Env.MESH_BUCKET_OWNER.value: OWNER,
        Env.DIRECTORY_PUBLIC_KEY.value: PUBLIC_KEY,
        Env.MESH_FALLBACK_BUCKET.value: SECOND_BUCKET,
    }
    from messenger.config import _cell

    with pytest.raises(ValueError, match="MESH_FALLBACK_BUCKET and MESH_FALLBACK_REGION"):
        _cell(environment)
    cell = _cell({**environment, Env.MESH_FALLBACK_REGION.value: SECOND_REGION})
    assert (cell.mesh.fallback_name, cell.mesh.fallback_region) == (SECOND_BUCKET, SECOND_REGION)
