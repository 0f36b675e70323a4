"""The directory in its bucket (functions/messenger_directory), on moto's S3.

A cell's entry goes in, the directory function merges, directory.json comes out with
`version` + 1: the path of every cell's deploy and, later, of a failover.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from nacl.signing import SigningKey

from messenger_directory import handlers
from messenger_directory.config import forget_settings
from messenger_directory.signer import KmsDirectorySigner, SeedDirectorySigner, raw_public_key
from messenger_directory.store import (
    CACHE_CONTROL,
    COPY_CACHE_CONTROL,
    DIRECTORY_KEY,
    CopyConflict,
    copy_key,
    entry_key,
    merge,
    publish_map,
    read_copy,
    read_directory,
    read_seed,
    write_entry,
    write_seed,
)
from messenger_directory.wiring import forget_clients
from messenger_local.lambdas import LambdaContext
from messenger_protocol.cells import MOVE_MAP, MOVE_REQUEST, Directory, InvalidDirectory, ShardMap

pytestmark = pytest.mark.integration

REGION = "us-east-1"
OWNER = "123456789012"  # moto's account
# The deployment's directory key: here one the test holds (moto has no Ed25519 KMS keys).
DIRECTORY_KEY_SEED = bytes(range(32))
SIGNER = SeedDirectorySigner(SigningKey(DIRECTORY_KEY_SEED))
# A cell's first epoch, as its deploy writes it.
FIRST_EPOCH = "us-east-1#0"
KEY_ARN = f"arn:aws:kms:{REGION}:{OWNER}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
BUCKET = "messenger-dev-directory-123456789012-us-east-1"
SHARD_MAP = ShardMap.even(["c0", "c1"])
C0_URL = "wss://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com/dev"
C1_URL = "wss://f6g7h8i9j0.execute-api.eu-west-1.amazonaws.com/dev"
C1_STANDBY_URL = "wss://k1l2m3n4o5.execute-api.eu-central-1.amazonaws.com/dev"


@pytest.fixture
def s3() -> Iterator[Any]:
    from moto import mock_aws

    # The functions parse their environment and make their clients once per container:
    # each test is a container of its own, under its own moto.
    forget_settings()
    forget_clients()
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket=BUCKET)
        client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        yield client
    forget_settings()
    forget_clients()


def lambda_context(function_name: str) -> LambdaContext:
    """The context Lambda gives one invocation of a directory function."""
    return LambdaContext.for_invocation(function_name, region=REGION, account_id=OWNER)


def published(s3: Any) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        s3.get_object(Bucket=BUCKET, Key=DIRECTORY_KEY)["Body"].read()
    )
    return document


def bucket_dump(s3: Any) -> dict[tuple[str, str], bytes]:
    """Every version of every object, with its bytes (compare before and after)."""
    versions = s3.list_object_versions(Bucket=BUCKET).get("Versions", [])
    return {
        (version["Key"], version["VersionId"]): s3.get_object(
            Bucket=BUCKET, Key=version["Key"], VersionId=version["VersionId"]
        )["Body"].read()
        for version in versions
    }


def test_given_every_cell_wrote_its_entry_when_merged_then_the_directory_is_published(s3):
    # Given
    write_entry(s3, BUCKET, "c0", C0_URL, owner=OWNER, epoch=FIRST_EPOCH)
    write_entry(s3, BUCKET, "c1", C1_URL, owner=OWNER, epoch=FIRST_EPOCH)

    # When
    outcome = merge(s3, BUCKET, SHARD_MAP, SIGNER)

    # Then: the §6 document, version 1, signed by the directory key, cached for seconds
    assert outcome.published and outcome.refused == {}
    document = published(s3)
    assert document == {
        "version": 1,
        "shards": 65536,
        "cells": {
            "c0": {"url": C0_URL, "epoch": FIRST_EPOCH},
            "c1": {"url": C1_URL, "epoch": FIRST_EPOCH},
        },
        "shardMap": [[0, 32767, "c0"], [32768, 65535, "c1"]],
        "sig": document["sig"],
    }
    assert Directory.parse(document).verifies(SIGNER.public_key())
    head = s3.head_object(Bucket=BUCKET, Key=DIRECTORY_KEY)
    assert head["CacheControl"] == CACHE_CONTROL == "max-age=5"
    assert head["ContentType"] == "application/json"


def test_given_a_cell_without_an_entry_yet_then_nothing_is_published(s3):
    # Given only c0 deployed so far
    write_entry(s3, BUCKET, "c0", C0_URL, owner=OWNER, epoch=FIRST_EPOCH)

    # When
    outcome = merge(s3, BUCKET, SHARD_MAP, SIGNER)

    # Then the directory waits for c1: no document that sends users nowhere
    assert (outcome.published, outcome.waiting_for) == (False, ("c1",))
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix=DIRECTORY_KEY)


def test_given_a_cell_moved_to_its_standby_then_the_version_increases(s3):
    # Given a published directory
    write_entry(s3, BUCKET, "c0", C0_URL, owner=OWNER, epoch=FIRST_EPOCH)
    write_entry(s3, BUCKET, "c1", C1_URL, owner=OWNER, epoch=FIRST_EPOCH)
    merge(s3, BUCKET, SHARD_MAP, SIGNER)

    # When c1's entry changes (a failover) and the directory function merges
    write_entry(s3, BUCKET, "c1", C1_STANDBY_URL, owner=OWNER, epoch=FIRST_EPOCH)
    outcome = merge(s3, BUCKET, SHARD_MAP, SIGNER)

    # Then the new URL is out under the next version
    assert outcome.published
    assert published(s3)["version"] == 2
    assert published(s3)["cells"]["c1"]["url"] == C1_STANDBY_URL
    assert published(s3)["cells"]["c0"]["url"] == C0_URL


def test_given_nothing_changed_then_a_merge_writes_no_new_version(s3):
    # Given a published directory
    write_entry(s3, BUCKET, "c0", C0_URL, owner=OWNER, epoch=FIRST_EPOCH)
    write_entry(s3, BUCKET, "c1", C1_URL, owner=OWNER, epoch=FIRST_EPOCH)
    merge(s3, BUCKET, SHARD_MAP, SIGNER)
    before = bucket_dump(s3)

    # When a cell redeploys with the same URL
    write_entry(s3, BUCKET, "c1", C1_URL, owner=OWNER, epoch=FIRST_EPOCH)
    outcome = merge(s3, BUCKET, SHARD_MAP, SIGNER)

    # Then directory.json stays as it was (same bytes, no new object version)
    assert not outcome.published
    assert outcome.directory is not None and outcome.directory.version == 1
    after = bucket_dump(s3)
    assert {k: v for k, v in after.items() if k[0] == DIRECTORY_KEY} == {
        k: v for k, v in before.items() if k[0] == DIRECTORY_KEY
    }


def test_given_a_new_shard_map_then_it_is_published_under_the_next_version(s3):
    write_entry(s3, BUCKET, "c0", C0_URL, owner=OWNER, epoch=FIRST_EPOCH)
    write_entry(s3, BUCKET, "c1", C1_URL, owner=OWNER, epoch=FIRST_EPOCH)
    merge(s3, BUCKET, SHARD_MAP, SIGNER)

    moved = ShardMap.from_compact("4096:0-1023=c0,1024-4095=c1")
    outcome = publish_map(s3, BUCKET, moved, SIGNER)

    assert outcome.published
    assert published(s3)["version"] == 2
    assert published(s3)["shardMap"] == [[0, 1023, "c0"], [1024, 4095, "c1"]]
    # The numbered copy is the very document published.
    assert (
        read_copy(s3, BUCKET, 2) == s3.get_object(Bucket=BUCKET, Key=DIRECTORY_KEY)["Body"].read()
    )


MOVED_MAP = ShardMap.from_compact("4096:0-1023=c0,1024-4095=c1")


def test_given_a_published_move_when_an_entry_is_merged_then_the_moved_map_stays(s3):
    # Given a directory whose map a shard move changed
    write_entry(s3, BUCKET, "c0", C0_URL, owner=OWNER, epoch=FIRST_EPOCH)
    write_entry(s3, BUCKET, "c1", C1_URL, owner=OWNER, epoch=FIRST_EPOCH)
    merge(s3, BUCKET, SHARD_MAP, SIGNER)
    publish_map(s3, BUCKET, MOVED_MAP, SIGNER)

    # When a cell's entry changes (a failover) and the directory function merges, with
    # the configured map it was deployed with
    write_entry(
        s3, BUCKET, "c1", C1_STANDBY_URL, owner=OWNER, epoch="eu-central-1#1", switched_to="standby"
    )
    outcome = merge(s3, BUCKET, SHARD_MAP, SIGNER)

    # Then the new URL is published with the moved map, not the configured one
    assert outcome.published
    document = published(s3)
    assert document["version"] == 3
    assert document["shardMap"] == [[0, 1023, "c0"], [1024, 4095, "c1"]]
    assert document["cells"]["c1"]["url"] == C1_STANDBY_URL
    # And a merge with nothing new publishes nothing, whatever map it is configured with
    assert not merge(s3, BUCKET, SHARD_MAP, SIGNER).published
    assert published(s3)["version"] == 3


def test_given_the_map_already_published_when_published_again_then_nothing_changes(s3):
    # Given a move's publish that ran once
    write_entry(s3, BUCKET, "c0", C0_URL, owner=OWNER, epoch=FIRST_EPOCH)
    write_entry(s3, BUCKET, "c1", C1_URL, owner=OWNER, epoch=FIRST_EPOCH)
    merge(s3, BUCKET, SHARD_MAP, SIGNER)
    publish_map(s3, BUCKET, MOVED_MAP, SIGNER)
    copy_versions = [
        v for v in s3.list_object_versions(Bucket=BUCKET)["Versions"] if v["Key"] == copy_key(2)
    ]

    # When the step runs again (a crash after the publish, before its record)
    outcome = publish_map(s3, BUCKET, MOVED_MAP, SIGNER)

    # Then it answers the version published, and the numbered copy was written once
    assert not outcome.published
    assert outcome.directory is not None and outcome.directory.version == 2
    assert [
        v for v in s3.list_object_versions(Bucket=BUCKET)["Versions"] if v["Key"] == copy_key(2)
    ] == copy_versions
    assert len(copy_versions) == 1


def test_given_a_map_naming_a_cell_without_entry_then_nothing_is_published(s3):
    write_entry(s3, BUCKET, "c0", C0_URL, owner=OWNER, epoch=FIRST_EPOCH)
    write_entry(s3, BUCKET, "c1", C1_URL, owner=OWNER, epoch=FIRST_EPOCH)
    merge(s3, BUCKET, SHARD_MAP, SIGNER)

    outcome = publish_map(
        s3, BUCKET, ShardMap.from_compact("4096:0-1023=c0,1024-2047=c2,2048-4095=c1"), SIGNER
    )

    assert not outcome.published
    assert outcome.waiting_for == ("c2",)
    assert published(s3)["version"] == 1


@pytest.mark.parametrize(
    "body",
    [
        b'{"url": "https://not-a-websocket.example.com"}',
        b'{"address": "wss://a.example.com"}',
        b"not json",
        b'["wss://a.example.com"]',
    ],
    ids=["https-url", "no-url", "not-json", "not-an-object"],
)
def test_given_an_invalid_entry_then_it_is_refused_and_directory_json_is_unchanged(s3, body):
    # Given a published directory
    write_entry(s3, BUCKET, "c0", C0_URL, owner=OWNER, epoch=FIRST_EPOCH)
    write_entry(s3, BUCKET, "c1", C1_URL, owner=OWNER, epoch=FIRST_EPOCH)
    merge(s3, BUCKET, SHARD_MAP, SIGNER)
    before = published(s3)
    versions_before = [
        v["VersionId"]
        for v in s3.list_object_versions(Bucket=BUCKET, Prefix=DIRECTORY_KEY)["Versions"]
    ]

    # When c1's entry is overwritten by something that is not a cell's entry
    s3.put_object(Bucket=BUCKET, Key=entry_key("c1"), Body=body)
    outcome = merge(s3, BUCKET, SHARD_MAP, SIGNER)

    # Then it is refused, and c1 keeps the URL it had: directory.json is not rewritten
    assert list(outcome.refused) == ["c1"]
    assert not outcome.published
    assert published(s3) == before
    versions_after = [
        v["VersionId"]
        for v in s3.list_object_versions(Bucket=BUCKET, Prefix=DIRECTORY_KEY)["Versions"]
    ]
    assert versions_after == versions_before


def test_given_an_invalid_entry_before_anything_was_published_then_the_directory_waits(s3):
    write_entry(s3, BUCKET, "c0", C0_URL, owner=OWNER, epoch=FIRST_EPOCH)
    s3.put_object(Bucket=BUCKET, Key=entry_key("c1"), Body=b'{"url": "http://plain"}')

    outcome = merge(s3, BUCKET, SHARD_MAP, SIGNER)

    assert outcome.waiting_for == ("c1",) and list(outcome.refused) == ["c1"]
    assert read_directory(s3, BUCKET) is None


@pytest.mark.parametrize(
    ("cell", "url"),
    [("c1", "https://f6g7.execute-api.eu-west-1.amazonaws.com/dev"), ("C1", C1_URL)],
    ids=["not-a-websocket-url", "not-a-cell-id"],
)
def test_given_an_invalid_entry_then_writing_it_is_refused_and_writes_nothing(s3, cell, url):
    before = bucket_dump(s3)

    with pytest.raises(InvalidDirectory):
        write_entry(s3, BUCKET, cell, url, owner=OWNER, epoch=FIRST_EPOCH)

    assert bucket_dump(s3) == before


def test_given_an_entry_of_a_cell_outside_the_shard_map_then_it_is_not_published(s3):
    write_entry(s3, BUCKET, "c0", C0_URL, owner=OWNER, epoch=FIRST_EPOCH)
    write_entry(s3, BUCKET, "c1", C1_URL, owner=OWNER, epoch=FIRST_EPOCH)
    write_entry(s3, BUCKET, "c2", "wss://c2.example.com/dev", owner=OWNER, epoch=FIRST_EPOCH)

    merge(s3, BUCKET, SHARD_MAP, SIGNER)

    assert sorted(published(s3)["cells"]) == ["c0", "c1"]


def test_given_a_broken_directory_json_then_merges_stop_until_someone_fixes_it(s3):
    # Given directory.json edited by hand into something else
    write_entry(s3, BUCKET, "c0", C0_URL, owner=OWNER, epoch=FIRST_EPOCH)
    write_entry(s3, BUCKET, "c1", C1_URL, owner=OWNER, epoch=FIRST_EPOCH)
    s3.put_object(Bucket=BUCKET, Key=DIRECTORY_KEY, Body=b'{"version": "seven"}')
    before = bucket_dump(s3)

    # Then no version can be trusted to increase from it: the merge refuses, says where
    with pytest.raises(InvalidDirectory, match=DIRECTORY_KEY):
        merge(s3, BUCKET, SHARD_MAP, SIGNER)
    assert bucket_dump(s3) == before


# --- the Lambda entry points ----------------------------------------------------------


def test_given_the_directory_function_when_an_entry_was_written_then_it_merges(
    s3, monkeypatch, cloudformation
):
    # Given the function's environment, as the directory stack sets it: no shard map
    monkeypatch.setenv(handlers.DirectoryEnv.BUCKET, BUCKET)
    monkeypatch.setenv(handlers.DirectoryEnv.KEY_ID, KEY_ARN)
    # And before anything is seeded, a merge refuses, saying what is missing
    with pytest.raises(InvalidDirectory, match=r"seed/shard-map\.json: deploy"):
        handlers.publish({"source": "aws.s3"}, lambda_context("Directory"))
    assert bucket_dump(s3) == {}
    # And the first map seeded by the directory stack's custom resource, one object
    response_url, answers = cloudformation
    handlers.seed_map(
        seed_event("Create", response_url, SHARD_MAP.to_compact()), lambda_context("Seed")
    )
    assert [answer["Status"] for answer in answers] == ["SUCCESS"]
    assert read_seed(s3, BUCKET) == SHARD_MAP
    # moto has no Ed25519 KMS keys: the key in KMS is stood for by one the test holds
    monkeypatch.setattr(handlers, "directory_signer", {KEY_ARN: SIGNER}.__getitem__)
    write_entry(s3, BUCKET, "c0", C0_URL, owner=OWNER, epoch=FIRST_EPOCH)
    write_entry(s3, BUCKET, "c1", C1_URL, owner=OWNER, epoch=FIRST_EPOCH)

    # When EventBridge delivers S3's "Object Created" for c1's entry
    event = {
        "source": "aws.s3",
        "detail-type": "Object Created",
        "detail": {"bucket": {"name": BUCKET}, "object": {"key": entry_key("c1")}},
    }
    summary = handlers.publish(event, lambda_context("Directory"))

    # Then (moto has no UpdateStage: no stage could be set, and the publish stands)
    assert summary == {
        "version": 1,
        "published": True,
        "waitingFor": [],
        "refused": {},
        "stages": [],
    }
    assert published(s3)["version"] == 1


def test_given_a_move_when_it_asks_the_directory_function_then_it_reads_and_publishes_maps(
    s3, monkeypatch
):
    # Given the directory function, which published the seeded map
    monkeypatch.setenv(handlers.DirectoryEnv.BUCKET, BUCKET)
    monkeypatch.setenv(handlers.DirectoryEnv.KEY_ID, KEY_ARN)
    write_seed(s3, BUCKET, SHARD_MAP)
    monkeypatch.setattr(handlers, "directory_signer", {KEY_ARN: SIGNER}.__getitem__)
    write_entry(s3, BUCKET, "c0", C0_URL, owner=OWNER, epoch=FIRST_EPOCH)
    write_entry(s3, BUCKET, "c1", C1_URL, owner=OWNER, epoch=FIRST_EPOCH)
    handlers.publish({"source": "aws.s3"}, lambda_context("Directory"))
    context = lambda_context("Directory")

    # When a Mover reads the map, then publishes the moved one
    current = handlers.publish({MOVE_REQUEST: "current"}, context)
    summary = handlers.publish({MOVE_REQUEST: "publish", MOVE_MAP: MOVED_MAP.to_compact()}, context)

    # Then
    assert current == {MOVE_MAP: SHARD_MAP.to_compact(), "version": 1}
    assert summary["version"] == 2 and summary["published"]
    assert handlers.publish({MOVE_REQUEST: "current"}, context) == {
        MOVE_MAP: MOVED_MAP.to_compact(),
        "version": 2,
    }
    # And a malformed request writes nothing
    before = bucket_dump(s3)
    with pytest.raises(InvalidDirectory):
        handlers.publish({MOVE_REQUEST: "publish", MOVE_MAP: "nonsense"}, context)
    with pytest.raises(ValueError, match="shardMove"):
        handlers.publish({MOVE_REQUEST: "drop"}, context)
    assert bucket_dump(s3) == before


def custom_resource_event(request_type: str, response_url: str, url: str) -> dict[str, Any]:
    properties = handlers.EntryProperty
    return {
        "RequestType": request_type,
        "ResponseURL": response_url,
        "StackId": "arn:aws:cloudformation:eu-west-1:222222222222:stack/Messenger-dev-c1/x",
        "RequestId": "request-1",
        "LogicalResourceId": "DirectoryEntry",
        "ResourceType": "Custom::DirectoryEntry",
        "ResourceProperties": {
            "ServiceToken": "arn:aws:lambda:eu-west-1:222222222222:function:entry",
            properties.BUCKET: BUCKET,
            properties.BUCKET_REGION: REGION,
            properties.BUCKET_OWNER: OWNER,
            properties.CELL_ID: "c1",
            properties.URL: url,
            properties.EPOCH: "eu-west-1#0",
        },
    }


def seed_event(request_type: str, response_url: str, shard_map: str) -> dict[str, Any]:
    """The directory stack's Custom::DirectorySeed event."""
    return {
        "RequestType": request_type,
        "ResponseURL": response_url,
        "StackId": "arn:aws:cloudformation:us-east-1:111111111111:stack/Messenger-dev-Directory/x",
        "RequestId": "request-1",
        "LogicalResourceId": "SeedMap",
        "ResourceType": "Custom::DirectorySeed",
        "ResourceProperties": {
            "ServiceToken": "arn:aws:lambda:us-east-1:111111111111:function:seed",
            handlers.SeedProperty.BUCKET: BUCKET,
            handlers.SeedProperty.SHARD_MAP: shard_map,
        },
    }


def test_a_seed_that_is_not_a_map_is_refused_and_cloudformation_told(s3, cloudformation):
    response_url, answers = cloudformation
    handlers.seed_map(seed_event("Create", response_url, "4096:0-99=c0"), lambda_context("Seed"))
    (answer,) = answers
    assert answer["Status"] == "FAILED" and "not seeded" in answer["Reason"]
    assert bucket_dump(s3) == {}


def test_given_a_cells_deploy_then_its_entry_is_written_and_cloudformation_told(s3, cloudformation):
    response_url, answers = cloudformation

    handlers.publish_entry(
        custom_resource_event("Create", response_url, C1_URL), lambda_context("DirectoryEntry")
    )

    assert json.loads(s3.get_object(Bucket=BUCKET, Key=entry_key("c1"))["Body"].read()) == {
        "url": C1_URL,
        "epoch": "eu-west-1#0",
    }
    (answer,) = answers
    assert answer["Status"] == "SUCCESS"
    assert answer["PhysicalResourceId"] == f"s3://{BUCKET}/cells/c1.json"
    assert (answer["RequestId"], answer["LogicalResourceId"]) == ("request-1", "DirectoryEntry")
    # The pre-signed URL is signed for an empty content type
    assert answer["contentType"] == ""


def test_given_an_invalid_url_then_the_deploy_fails_with_why_and_nothing_is_written(
    s3, cloudformation
):
    response_url, answers = cloudformation
    before = bucket_dump(s3)

    handlers.publish_entry(
        custom_resource_event("Update", response_url, "https://not-a-socket/dev"),
        lambda_context("DirectoryEntry"),
    )

    (answer,) = answers
    assert answer["Status"] == "FAILED"
    assert "ws:// or wss://" in answer["Reason"]
    assert bucket_dump(s3) == before


def test_given_a_cell_stack_deleted_then_its_entry_stays(s3, cloudformation):
    response_url, answers = cloudformation
    write_entry(s3, BUCKET, "c1", C1_URL, owner=OWNER, epoch=FIRST_EPOCH)
    before = bucket_dump(s3)

    handlers.publish_entry(
        custom_resource_event("Delete", response_url, C1_URL), lambda_context("DirectoryEntry")
    )

    assert answers[0]["Status"] == "SUCCESS"
    assert bucket_dump(s3) == before


def test_given_a_published_directory_then_each_cells_stage_is_set_to_its_version() -> None:
    # moto has no UpdateStage: real clients whose answers botocore's Stubber gives, after
    # checking each request against the API's own model and the parameters expected.
    from botocore.stub import Stubber

    from messenger_directory.stages import StageAddress, set_directory_version, stage_of

    # Given cells behind two regions' APIs, two cells on one stage, and a custom domain
    urls = {
        "c0": "wss://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com/dev",
        "c1": "wss://f6g7h8i9j0.execute-api.eu-west-1.amazonaws.com/dev",
        "c2": "wss://f6g7h8i9j0.execute-api.eu-west-1.amazonaws.com/dev/",
        "c3": "wss://chat.example.com/dev",
    }
    directory = Directory.parse(
        {
            "version": 7,
            "shards": 4,
            "cells": {cell_id: {"url": url} for cell_id, url in urls.items()},
            "shardMap": [[n, n, f"c{n}"] for n in range(4)],
        }
    )
    clients, stubbers = {}, {}
    for region, api_id in (("us-east-1", "a1b2c3d4e5"), ("eu-west-1", "f6g7h8i9j0")):
        clients[region] = boto3.client(
            "apigatewayv2",
            region_name=region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        stubbers[region] = Stubber(clients[region])
        stubbers[region].add_response(
            "update_stage",
            {"StageName": "dev", "StageVariables": {"dv": "7"}},
            {"ApiId": api_id, "StageName": "dev", "StageVariables": {"dv": "7"}},
        )
        stubbers[region].activate()
    # When the directory function sets the version on the stages
    updated = set_directory_version(clients.__getitem__, directory)
    # Then each execute-api stage was set once to dv = 7; the custom domain names none
    assert updated == [
        StageAddress("eu-west-1", "f6g7h8i9j0", "dev"),
        StageAddress("us-east-1", "a1b2c3d4e5", "dev"),
    ]
    for stubber in stubbers.values():
        stubber.assert_no_pending_responses()
    assert stage_of(urls["c3"]) is None


def test_given_a_stage_that_refuses_then_every_other_stage_is_still_set() -> None:
    """§6: every cell knows the newest version within 5 seconds. One stage the directory
    function cannot update (another account's, a deleted API, a throttled call) must not
    keep the version from the stages after it."""
    from botocore.stub import Stubber

    from messenger_directory.stages import StageAddress, set_directory_version

    # Given two cells, the first stage in order (eu-west-1's) refusing UpdateStage
    urls = {
        "c0": "wss://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com/dev",
        "c1": "wss://f6g7h8i9j0.execute-api.eu-west-1.amazonaws.com/dev",
    }
    directory = Directory.parse(
        {
            "version": 8,
            "shards": 2,
            "cells": {cell_id: {"url": url} for cell_id, url in urls.items()},
            "shardMap": [[0, 0, "c0"], [1, 1, "c1"]],
        }
    )
    clients, stubbers = {}, {}
    for region in ("us-east-1", "eu-west-1"):
        clients[region] = boto3.client(
            "apigatewayv2",
            region_name=region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        stubbers[region] = Stubber(clients[region])
    stubbers["eu-west-1"].add_client_error(
        "update_stage", service_error_code="AccessDeniedException", http_status_code=403
    )
    stubbers["us-east-1"].add_response(
        "update_stage",
        {"StageName": "dev", "StageVariables": {"dv": "8"}},
        {"ApiId": "a1b2c3d4e5", "StageName": "dev", "StageVariables": {"dv": "8"}},
    )
    for stubber in stubbers.values():
        stubber.activate()
    # When the directory function sets the version on the stages
    updated = set_directory_version(clients.__getitem__, directory)
    # Then us-east-1's stage is set all the same, and only it is reported set
    assert updated == [StageAddress("us-east-1", "a1b2c3d4e5", "dev")]
    for stubber in stubbers.values():
        stubber.assert_no_pending_responses()


# --- the signed directory and its numbered copies (docs/protocol.md §6) ------------------


def test_given_two_versions_then_each_is_kept_forever_as_its_numbered_copy(s3):
    # Given version 1 published
    write_entry(s3, BUCKET, "c0", C0_URL, owner=OWNER, epoch=FIRST_EPOCH)
    write_entry(s3, BUCKET, "c1", C1_URL, owner=OWNER, epoch=FIRST_EPOCH)
    merge(s3, BUCKET, SHARD_MAP, SIGNER)
    first = s3.get_object(Bucket=BUCKET, Key=DIRECTORY_KEY)["Body"].read()

    # When c1 moves (version 2)
    write_entry(s3, BUCKET, "c1", C1_STANDBY_URL, owner=OWNER, epoch="eu-central-1#1")
    merge(s3, BUCKET, SHARD_MAP, SIGNER)

    # Then directory/1.json is still exactly version 1, directory/2.json is directory.json,
    # both cacheable forever, both signed
    copy_1 = s3.get_object(Bucket=BUCKET, Key=copy_key(1))
    copy_2 = s3.get_object(Bucket=BUCKET, Key=copy_key(2))
    assert copy_1["Body"].read() == first
    assert copy_2["Body"].read() == s3.get_object(Bucket=BUCKET, Key=DIRECTORY_KEY)["Body"].read()
    assert copy_1["CacheControl"] == COPY_CACHE_CONTROL == "public, max-age=31536000, immutable"
    assert read_copy(s3, BUCKET, 3) is None
    for version in (1, 2):
        document = json.loads(read_copy(s3, BUCKET, version) or b"")
        assert document["version"] == version
        assert Directory.parse(document).verifies(SIGNER.public_key())


def test_given_a_version_number_already_taken_by_other_bytes_then_nothing_is_published(s3):
    # Given version 1 published, and a directory/2.json someone else wrote
    write_entry(s3, BUCKET, "c0", C0_URL, owner=OWNER, epoch=FIRST_EPOCH)
    write_entry(s3, BUCKET, "c1", C1_URL, owner=OWNER, epoch=FIRST_EPOCH)
    merge(s3, BUCKET, SHARD_MAP, SIGNER)
    s3.put_object(Bucket=BUCKET, Key=copy_key(2), Body=b'{"version": 2}')
    write_entry(s3, BUCKET, "c1", C1_STANDBY_URL, owner=OWNER, epoch=FIRST_EPOCH)
    before = bucket_dump(s3)

    # When the next merge would publish version 2
    with pytest.raises(CopyConflict):
        merge(s3, BUCKET, SHARD_MAP, SIGNER)

    # Then a version names one document: neither the copy nor directory.json changed
    assert bucket_dump(s3) == before
    assert published(s3)["version"] == 1


def test_given_an_unsigned_directory_then_the_next_merge_publishes_it_signed(s3):
    # Given a v1.1 deployment's directory.json: no epochs, no signature
    s3.put_object(
        Bucket=BUCKET,
        Key=DIRECTORY_KEY,
        Body=json.dumps(
            {
                "version": 7,
                "shards": 65536,
                "cells": {"c0": {"url": C0_URL}, "c1": {"url": C1_URL}},
                "shardMap": SHARD_MAP.to_wire(),
            }
        ).encode(),
    )
    write_entry(s3, BUCKET, "c0", C0_URL, owner=OWNER, epoch=FIRST_EPOCH)
    write_entry(s3, BUCKET, "c1", C1_URL, owner=OWNER, epoch=FIRST_EPOCH)

    # When the URLs are unchanged and the directory function merges
    outcome = merge(s3, BUCKET, SHARD_MAP, SIGNER)

    # Then version 8 is out, signed; a merge after it writes nothing
    assert outcome.published and published(s3)["version"] == 8
    assert Directory.parse(published(s3)).verifies(SIGNER.public_key())
    assert not merge(s3, BUCKET, SHARD_MAP, SIGNER).published


def test_given_a_directory_signed_by_another_key_then_the_next_merge_signs_it_again(s3):
    write_entry(s3, BUCKET, "c0", C0_URL, owner=OWNER, epoch=FIRST_EPOCH)
    write_entry(s3, BUCKET, "c1", C1_URL, owner=OWNER, epoch=FIRST_EPOCH)
    merge(s3, BUCKET, SHARD_MAP, SeedDirectorySigner(SigningKey.generate()))

    outcome = merge(s3, BUCKET, SHARD_MAP, SIGNER)

    assert outcome.published and published(s3)["version"] == 2
    assert Directory.parse(published(s3)).verifies(SIGNER.public_key())


def test_given_a_switch_wrote_an_epoch_then_a_deploy_keeps_it(s3):
    # Given c0 switched back to its primary at generation 2
    write_entry(s3, BUCKET, "c0", C0_URL, owner=OWNER, epoch="us-east-1#2", switched_to="primary")

    # When c0's stack deploys again (its custom resource names the first epoch)
    write_entry(s3, BUCKET, "c0", C0_URL, owner=OWNER, epoch=FIRST_EPOCH)

    # Then the entry keeps the epoch the switch wrote
    entry = json.loads(s3.get_object(Bucket=BUCKET, Key=entry_key("c0"))["Body"].read())
    assert entry == {"url": C0_URL, "epoch": "us-east-1#2"}


def test_given_an_entry_without_an_epoch_then_the_cell_keeps_what_was_published(s3):
    write_entry(s3, BUCKET, "c0", C0_URL, owner=OWNER, epoch=FIRST_EPOCH)
    write_entry(s3, BUCKET, "c1", C1_URL, owner=OWNER, epoch=FIRST_EPOCH)
    merge(s3, BUCKET, SHARD_MAP, SIGNER)
    s3.put_object(Bucket=BUCKET, Key=entry_key("c1"), Body=json.dumps({"url": C1_STANDBY_URL}))

    outcome = merge(s3, BUCKET, SHARD_MAP, SIGNER)

    assert not outcome.published and "no epoch" in outcome.refused["c1"]
    assert published(s3)["cells"]["c1"] == {"url": C1_URL, "epoch": FIRST_EPOCH}


# --- the directory key in KMS ------------------------------------------------------------


def test_the_kms_signer_asks_for_pure_ed25519_over_the_digest_and_clients_verify_it():
    """moto has no Ed25519 KMS keys: a real boto3 KMS client with botocore's Stubber
    checks the request and gives the answer KMS would (pure Ed25519 of the 64 bytes)."""
    from botocore.stub import Stubber

    kms = boto3.client("kms", region_name=REGION)
    directory = Directory(1, {"c0": C0_URL}, ShardMap.even(["c0"]), {"c0": FIRST_EPOCH})
    key = SigningKey(DIRECTORY_KEY_SEED)
    spki = bytes.fromhex("302a300506032b6570032100") + bytes(key.verify_key)
    with Stubber(kms) as stub:
        stub.add_response(
            "sign",
            {"Signature": key.sign(directory.digest()).signature},
            {
                "KeyId": KEY_ARN,
                "Message": directory.digest(),
                "MessageType": "RAW",
                "SigningAlgorithm": "ED25519_SHA_512",
            },
        )
        stub.add_response("get_public_key", {"PublicKey": spki}, {"KeyId": KEY_ARN})
        signer = KmsDirectorySigner(kms, KEY_ARN)

        signed = directory.signed_by(signer.sign_digest)

        assert signer.public_key() == SIGNER.public_key()
        assert signed.verifies(signer.public_key())
        stub.assert_no_pending_responses()


def test_a_public_key_that_is_not_ed25519_is_refused():
    with pytest.raises(ValueError):
        raw_public_key(bytes(44))
