"""The directory in two regions (functions/messenger_directory/versions.py, replicas.py),
on moto's S3 and DynamoDB: version numbers reserved with conditional writes, each version
published into both buckets, and the reconcile that repairs a bucket that missed one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from nacl.signing import SigningKey

from messenger_directory.replicas import (
    DirectoryBucketAt,
    Replication,
    publish_into,
    reconcile,
)
from messenger_directory.signer import SeedDirectorySigner
from messenger_directory.store import (
    copy_key,
    merge,
    read_copy,
    read_directory,
    write_entry,
)
from messenger_directory.versions import KEY_ATTRIBUTE, VersionLedger, contents_digest
from messenger_protocol.cells import Directory, ShardMap

pytestmark = pytest.mark.integration

OWNER = "123456789012"  # moto's account
EAST, WEST = "us-east-1", "us-west-2"
EAST_BUCKET = f"messenger-dev-directory-{OWNER}-{EAST}"
WEST_BUCKET = f"messenger-dev-directory-{OWNER}-{WEST}"
TABLE = "messenger-dev-directory-versions"
SIGNER = SeedDirectorySigner(SigningKey(bytes(range(32))))
SHARD_MAP = ShardMap.even(["c0", "c1"])
C0_URL = "wss://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com/dev"
C0_NEW_URL = "wss://p6q7r8s9t0.execute-api.us-east-1.amazonaws.com/dev"
C1_URL = "wss://f6g7h8i9j0.execute-api.eu-west-1.amazonaws.com/dev"
C1_STANDBY_URL = "wss://k1l2m3n4o5.execute-api.eu-central-1.amazonaws.com/dev"


@dataclass
class Regions:
    east: DirectoryBucketAt
    west: DirectoryBucketAt
    ledger: VersionLedger


@pytest.fixture
def regions() -> Iterator[Regions]:
    from moto import mock_aws

    with mock_aws():
        buckets = []
        for region, name in ((EAST, EAST_BUCKET), (WEST, WEST_BUCKET)):
            s3 = boto3.client("s3", region_name=region)
            if region == "us-east-1":
                s3.create_bucket(Bucket=name)
            else:
                s3.create_bucket(
                    Bucket=name, CreateBucketConfiguration={"LocationConstraint": "us-west-2"}
                )
            buckets.append(DirectoryBucketAt(s3, name))
        dynamodb = boto3.client("dynamodb", region_name=EAST)
        dynamodb.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": KEY_ATTRIBUTE, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": KEY_ATTRIBUTE, "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield Regions(buckets[0], buckets[1], VersionLedger(dynamodb, TABLE))


def write_entries(target: DirectoryBucketAt, c1_url: str, c1_epoch: str) -> None:
    write_entry(target.s3, target.bucket, "c0", C0_URL, owner=OWNER, epoch=f"{EAST}#0")
    write_entry(
        target.s3,
        target.bucket,
        "c1",
        c1_url,
        owner=OWNER,
        epoch=c1_epoch,
        switched_to="standby" if c1_url == C1_STANDBY_URL else None,
    )


def publish(regions: Regions, own: DirectoryBucketAt, ledger: VersionLedger | None = None) -> Any:
    other = regions.west if own is regions.east else regions.east
    replication = Replication(ledger or regions.ledger, mirrors=[other])
    return merge(own.s3, own.bucket, SHARD_MAP, SIGNER, replication=replication)


def published_version(target: DirectoryBucketAt) -> int | None:
    directory = read_directory(target.s3, target.bucket)
    return None if directory is None else directory.version


def objects(target: DirectoryBucketAt) -> dict[str, bytes]:
    listed = target.s3.list_objects_v2(Bucket=target.bucket).get("Contents", [])
    return {
        item["Key"]: target.s3.get_object(Bucket=target.bucket, Key=item["Key"])["Body"].read()
        for item in listed
        if not item["Key"].startswith("cells/")
    }


def test_a_version_is_reserved_once_for_one_contents(regions):
    # Given version 1 reserved for one document's contents
    ledger = regions.ledger
    first = contents_digest({"c0": C0_URL}, {"c0": "a#0"}, ShardMap.even(["c0"]))
    other = contents_digest({"c0": C0_URL}, {"c0": "a#1"}, ShardMap.even(["c0"]))
    assert ledger.reserve(1, first)

    # Then the same contents may take it again (the same bytes), others may not
    assert ledger.reserve(1, first)
    assert not ledger.reserve(1, other)
    assert ledger.contents_of(1) == first
    assert ledger.reserve_next(0, other) == 2
    assert ledger.latest() == 2


def test_two_regions_racing_for_one_version_one_wins_the_other_takes_the_next(regions):
    # Given both buckets at version 1; then c0 redeployed (east's entry) while c1 failed
    # over (west's entry): two publishers, two different next documents
    write_entries(regions.east, C1_URL, f"{EAST}#0")
    write_entries(regions.west, C1_URL, f"{EAST}#0")
    assert publish(regions, regions.east).directory.version == 1
    write_entry(regions.east.s3, EAST_BUCKET, "c0", C0_NEW_URL, owner=OWNER, epoch=f"{EAST}#0")
    write_entries(regions.west, C1_STANDBY_URL, "eu-central-1#1")

    class EastPublishesMeanwhile(VersionLedger):
        """West has read `latest` (1) when east publishes version 2: the race."""

        raced = False

        def latest(self) -> int:
            seen = super().latest()
            if not EastPublishesMeanwhile.raced:
                EastPublishesMeanwhile.raced = True
                assert publish(regions, regions.east).directory.version == 2
            return seen

    # When west publishes with the number it read
    west = publish(regions, regions.west, EastPublishesMeanwhile(regions.ledger.dynamodb, TABLE))

    # Then east holds 2 (its contents), west was refused 2 and published 3
    assert west.published and west.directory is not None and west.directory.version == 3
    two = Directory.parse(json.loads(read_copy(regions.east.s3, EAST_BUCKET, 2) or b""))
    assert (two.url_of("c0"), two.url_of("c1")) == (C0_NEW_URL, C1_URL)
    assert west.directory.url_of("c1") == C1_STANDBY_URL
    assert regions.ledger.contents_of(2) != regions.ledger.contents_of(3)
    # and both buckets are identical: every numbered copy, and directory.json at 3
    assert objects(regions.east) == objects(regions.west)
    assert published_version(regions.east) == 3
    assert reconcile([regions.east, regions.west], regions.ledger).repaired == []


def test_a_region_that_missed_versions_is_repaired_by_the_reconcile(regions):
    # Given east published twice while the west bucket was unreachable
    write_entries(regions.east, C1_URL, f"{EAST}#0")
    unreachable = DirectoryBucketAt(regions.west.s3, "messenger-dev-directory-gone")
    replication = Replication(regions.ledger, mirrors=[unreachable])
    merge(regions.east.s3, EAST_BUCKET, SHARD_MAP, SIGNER, replication=replication)
    write_entries(regions.east, C1_STANDBY_URL, "eu-central-1#1")
    outcome = merge(regions.east.s3, EAST_BUCKET, SHARD_MAP, SIGNER, replication=replication)
    assert outcome.published and published_version(regions.east) == 2
    assert published_version(regions.west) is None

    # When the reconcile runs
    report = reconcile([regions.east, regions.west], regions.ledger)

    # Then west holds both copies and directory.json 2, byte for byte east's
    assert sorted(report.repaired) == [
        f"{WEST_BUCKET}/directory.json",
        f"{WEST_BUCKET}/{copy_key(1)}",
        f"{WEST_BUCKET}/{copy_key(2)}",
    ]
    assert objects(regions.east) == objects(regions.west)
    # and a second run finds nothing to do
    assert reconcile([regions.east, regions.west], regions.ledger).repaired == []


def test_a_late_mirror_write_never_lowers_directory_json(regions):
    # Given west already at version 2
    write_entries(regions.east, C1_URL, f"{EAST}#0")
    publish(regions, regions.east)
    write_entries(regions.east, C1_STANDBY_URL, "eu-central-1#1")
    publish(regions, regions.east)
    one = read_copy(regions.east.s3, EAST_BUCKET, 1)
    assert one is not None

    # When version 1's mirror write arrives late
    publish_into(regions.west, 1, one)

    # Then west still publishes 2
    assert published_version(regions.west) == 2


def test_the_scheduled_reconcile_repairs_the_other_bucket_then_merges(regions, monkeypatch):
    # Given the east function's environment, and a version east published alone
    from messenger_directory import handlers
    from messenger_directory.config import forget_settings
    from messenger_directory.wiring import forget_clients
    from messenger_local.lambdas import LambdaContext

    key_arn = f"arn:aws:kms:{EAST}:{OWNER}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    for name, value in {
        handlers.DirectoryEnv.BUCKET: EAST_BUCKET,
        handlers.DirectoryEnv.KEY_ID: key_arn,
        handlers.DirectoryEnv.VERSIONS_TABLE: TABLE,
        handlers.DirectoryEnv.MIRROR_BUCKET: WEST_BUCKET,
        handlers.DirectoryEnv.MIRROR_REGION: WEST,
        "AWS_DEFAULT_REGION": EAST,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(handlers, "directory_signer", {key_arn: SIGNER}.__getitem__)
    forget_settings()
    forget_clients()
    write_entries(regions.east, C1_URL, f"{EAST}#0")
    merge(regions.east.s3, EAST_BUCKET, SHARD_MAP, SIGNER, replication=Replication(regions.ledger))
    context = LambdaContext.for_invocation("Reconcile", region=EAST, account_id=OWNER)

    # When the schedule runs the reconcile
    summary = handlers.reconcile_buckets({"source": "aws.events"}, context)

    # Then west got version 1, and the merge found nothing new to publish
    assert summary["repaired"] == [f"{WEST_BUCKET}/{copy_key(1)}", f"{WEST_BUCKET}/directory.json"]
    assert summary["merged"]["version"] == 1 and not summary["merged"]["published"]
    assert objects(regions.east) == objects(regions.west)
    forget_settings()
    forget_clients()
