"""The peers' Relay records with the directory in two regions (issue 21, docs/availability.md
"The directory in two regions"): each side's deploy writes its record into both buckets,
first then second (messenger_directory.mesh), and a cell reads the second when the first
cannot be read (messenger.dal.relay_directory, messenger_aws/directory_buckets.py). Real moto S3
through boto3; a lost region is a bucket that is gone or an endpoint that does not answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws
from nacl.signing import SigningKey

from messenger.config import settings_from
from messenger.contract import USERS_TABLE, Env, create_table_request
from messenger.dal.relay_directory import RelayDirectory
from messenger.logic.clock import FixedClock
from messenger_aws.directory_buckets import BucketsUnreadable
from messenger_directory.config import forget_settings
from messenger_directory.mesh import RelayRecordProperty, publish_relay_record
from messenger_directory.store import write_relay_record
from messenger_directory.wiring import forget_clients
from messenger_local.lambdas import LambdaContext
from messenger_protocol.mesh import InvalidRelayRecord, RelayRecord, relay_public_key

pytestmark = pytest.mark.integration

FIRST_REGION, SECOND_REGION = "us-east-1", "us-west-2"
FIRST, SECOND = "messenger-prod-directory-r1", "messenger-prod-directory-r2"
OWNER = "111111111111"
C1_PRIMARY = "arn:aws:lambda:eu-west-1:222222222222:function:messenger-prod-c1-relay:live"
USERS = "messenger-prod-c1-users"


def s3_in(region: str) -> Any:
    return boto3.client("s3", region_name=region)


def record_of(cell: str, side: str, relay: str = C1_PRIMARY) -> RelayRecord:
    return RelayRecord(cell, side, relay, relay_public_key(SigningKey.generate()))


class Calls:
    """Counts the GetObject calls an S3 client makes (a botocore before-call hook)."""

    def __init__(self) -> None:
        self.count = 0

    def client(self, region: str) -> Any:
        client = s3_in(region)
        client.meta.events.register("before-call.s3.GetObject", self._count)
        return client

    def _count(self, **kwargs: Any) -> None:
        self.count += 1


@pytest.fixture
def buckets() -> Iterator[tuple[Any, Any]]:
    """moto's S3 with the directory's two buckets, each in its region."""
    forget_settings()
    forget_clients()
    with mock_aws():
        first, second = s3_in(FIRST_REGION), s3_in(SECOND_REGION)
        first.create_bucket(Bucket=FIRST)
        second.create_bucket(
            Bucket=SECOND, CreateBucketConfiguration={"LocationConstraint": SECOND_REGION}
        )
        yield first, second
    forget_settings()
    forget_clients()


def directory_of(first: Any, first_bucket: str, second_calls: Calls) -> RelayDirectory:
    return RelayDirectory(
        lambda: first,
        first_bucket,
        OWNER,
        FixedClock(1_000_000),
        fallback=(lambda: second_calls.client(SECOND_REGION), SECOND),
    )


def unreachable_s3() -> Any:
    """An S3 client whose endpoint answers nothing (a closed loopback port): what a lost
    region's endpoint looks like to botocore (EndpointConnectionError)."""
    return boto3.client(
        "s3",
        region_name=FIRST_REGION,
        endpoint_url="http://127.0.0.1:9",
        config=Config(connect_timeout=1, retries={"max_attempts": 1}),
    )


def test_given_the_first_bucket_gone_then_the_record_is_read_from_the_second(buckets):
    first, second = buckets
    # Given c1's record in the second bucket, and a first bucket that does not exist
    record = record_of("c1", "primary")
    write_relay_record(second, SECOND, record, owner=OWNER)
    calls = Calls()
    directory = directory_of(first, "messenger-prod-directory-gone", calls)
    # When a cell reads c1's sides
    sides = directory.sides_of("c1")
    # Then it has the second bucket's record (both sides asked there: primary and standby)
    assert sides == (record,)
    assert calls.count == 2


def test_given_the_first_region_unreachable_then_the_record_is_read_from_the_second(buckets):
    _, second = buckets
    record = record_of("c1", "primary")
    write_relay_record(second, SECOND, record, owner=OWNER)
    calls = Calls()
    directory = directory_of(unreachable_s3(), FIRST, calls)
    assert directory.sides_of("c1") == (record,)
    assert calls.count == 2


def test_given_a_record_missing_in_the_first_bucket_then_it_is_missing_and_the_second_unasked(
    buckets,
):
    first, second = buckets
    # Given c1's primary in the first bucket, and a standby record in the second only
    primary = record_of("c1", "primary")
    write_relay_record(first, FIRST, primary, owner=OWNER)
    write_relay_record(second, SECOND, record_of("c1", "standby"), owner=OWNER)
    calls = Calls()
    directory = directory_of(first, FIRST, calls)
    # When a cell reads c1's sides, and c2's (in no bucket)
    assert directory.sides_of("c1") == (primary,)
    assert directory.sides_of("c2") == ()
    # Then the first bucket's answers stand: the second is never read
    assert calls.count == 0


@pytest.mark.parametrize(
    "body",
    [
        json.dumps(record_of("c2", "primary").to_wire()).encode(),
        json.dumps(record_of("c1", "standby").to_wire()).encode(),
        b"{not json",
        json.dumps({"cell": "c1"}).encode(),
    ],
    ids=["another-cell", "another-side", "not-json", "not-a-record"],
)
def test_given_a_forged_or_invalid_record_in_the_second_then_it_is_refused(buckets, body):
    _, second = buckets
    second.put_object(Bucket=SECOND, Key="relays/c1/primary.json", Body=body)
    directory = directory_of(unreachable_s3(), FIRST, Calls())
    with pytest.raises(InvalidRelayRecord, match="c1/primary"):
        directory.sides_of("c1")


def test_given_neither_bucket_readable_then_the_read_fails_naming_both(buckets):
    calls = Calls()
    directory = RelayDirectory(
        unreachable_s3,
        FIRST,
        OWNER,
        FixedClock(1_000_000),
        fallback=(lambda: calls.client(SECOND_REGION), "messenger-prod-directory-gone"),
    )
    with pytest.raises(BucketsUnreadable) as refused:
        directory.sides_of("c1")
    assert f"s3://{FIRST}/relays/c1/primary.json" in str(refused.value)
    assert "s3://messenger-prod-directory-gone/relays/c1/primary.json" in str(refused.value)


def test_a_cells_settings_with_a_fallback_bucket_give_its_readers_the_second_region(buckets):
    _, second = buckets
    record = record_of("c1", "primary")
    write_relay_record(second, SECOND, record, owner=OWNER)
    environment = {
        Env.USERS_TABLE.value: "users",
        Env.QUEUE_TABLE.value: "queue",
        Env.LIMITS_TABLE.value: "limits",
        Env.CELL_ID.value: "c0",
        Env.MESH_BUCKET.value: "messenger-prod-directory-gone",
        Env.MESH_BUCKET_REGION.value: FIRST_REGION,
        Env.MESH_BUCKET_OWNER.value: OWNER,
        Env.MESH_FALLBACK_BUCKET.value: SECOND,
        Env.MESH_FALLBACK_REGION.value: SECOND_REGION,
        Env.DIRECTORY_PUBLIC_KEY.value: relay_public_key(SigningKey(bytes(32))),
    }
    mesh = settings_from(environment).cell.mesh
    regions: list[str] = []

    def s3_for(region: str) -> Any:
        regions.append(region)
        return s3_in(region)

    directory = RelayDirectory(
        lambda: s3_for(mesh.region),
        mesh.name,
        mesh.owner,
        FixedClock(1_000_000),
        fallback=mesh.fallback(s3_for),
    )
    assert directory.sides_of("c1") == (record,)
    assert regions == [FIRST_REGION, SECOND_REGION]


# --- The writer: each side's deploy (Custom::RelayRecord) ---------------------------------


def relay_record_event(response_url: str, **extra: str) -> dict[str, Any]:
    """The side's Custom::RelayRecord event, as CloudFormation sends it."""
    return {
        "RequestType": "Update",
        "ResponseURL": response_url,
        "StackId": "arn:aws:cloudformation:eu-west-1:222222222222:stack/Messenger-prod-c1/x",
        "RequestId": "request-1",
        "LogicalResourceId": "RelayRecord",
        "ResourceType": "Custom::RelayRecord",
        "ResourceProperties": {
            "ServiceToken": "arn:aws:lambda:eu-west-1:222222222222:function:writer",
            RelayRecordProperty.BUCKET.value: FIRST,
            RelayRecordProperty.BUCKET_REGION.value: FIRST_REGION,
            RelayRecordProperty.BUCKET_OWNER.value: OWNER,
            RelayRecordProperty.CELL_ID.value: "c1",
            RelayRecordProperty.SIDE.value: "primary",
            RelayRecordProperty.FUNCTION.value: C1_PRIMARY,
            RelayRecordProperty.USERS_TABLE.value: USERS,
            **extra,
        },
    }


@pytest.fixture
def writer(buckets, monkeypatch) -> Iterator[tuple[Any, Any]]:
    """The two buckets and the side's Users table (where its relay key is made)."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    boto3.client("dynamodb", region_name="eu-west-1").create_table(
        **create_table_request(USERS_TABLE, USERS)
    )
    yield buckets


def written(s3: Any, bucket: str) -> RelayRecord:
    body = s3.get_object(Bucket=bucket, Key="relays/c1/primary.json")["Body"].read()
    return RelayRecord.parse(json.loads(body))


def deploy(event: dict[str, Any]) -> None:
    publish_relay_record(
        event, LambdaContext.for_invocation("Writer", region="eu-west-1", account_id=OWNER)
    )


def test_given_two_directory_regions_then_the_deploy_writes_the_record_into_both(
    writer, cloudformation
):
    first, second = writer
    response_url, answers = cloudformation
    # When the side deploys with the second region's bucket named
    deploy(
        relay_record_event(
            response_url,
            **{
                RelayRecordProperty.FALLBACK_BUCKET.value: SECOND,
                RelayRecordProperty.FALLBACK_BUCKET_REGION.value: SECOND_REGION,
            },
        )
    )
    # Then both buckets hold the same record, and CloudFormation hears of success under
    # the physical id it always had (nothing is replaced)
    assert written(first, FIRST) == written(second, SECOND)
    assert written(first, FIRST).function == C1_PRIMARY
    (answer,) = answers
    assert answer["Status"] == "SUCCESS"
    assert answer["PhysicalResourceId"] == f"s3://{FIRST}/relays/c1/primary.json"


def test_given_one_directory_region_then_the_deploy_writes_the_first_bucket_only(
    writer, cloudformation
):
    first, second = writer
    response_url, answers = cloudformation
    deploy(relay_record_event(response_url))
    assert written(first, FIRST).cell_id == "c1"
    assert second.list_objects_v2(Bucket=SECOND)["KeyCount"] == 0
    (answer,) = answers
    assert answer["Status"] == "SUCCESS"


def test_given_the_second_write_fails_then_the_deploy_fails_saying_why_the_first_written(
    writer, cloudformation
):
    first, _ = writer
    response_url, answers = cloudformation
    # Given a second bucket that cannot be written (its region lost: here, gone)
    deploy(
        relay_record_event(
            response_url,
            **{
                RelayRecordProperty.FALLBACK_BUCKET.value: "messenger-prod-directory-gone",
                RelayRecordProperty.FALLBACK_BUCKET_REGION.value: SECOND_REGION,
            },
        )
    )
    # Then the first bucket has the record, and CloudFormation hears FAILED (it rolls back)
    assert written(first, FIRST).cell_id == "c1"
    (answer,) = answers
    assert answer["Status"] == "FAILED"
    assert f"written into s3://{FIRST}, not into the second" in answer["Reason"]
    assert "s3://messenger-prod-directory-gone" in answer["Reason"]
    assert "NoSuchBucket" in answer["Reason"]
