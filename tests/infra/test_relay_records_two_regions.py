"""The peers' Relay records with the directory in two regions (issue 21, docs/availability.md
"The directory in two regions") in the templates: each side's record writer may put its
own record into both buckets, and is told the second (Custom::RelayRecord); the second
bucket admits the record writers and readers exactly as the first; the cells' functions and
their Mover may read the records in both. Without a second region nothing of this changes.

Names and ARNs are written out from the design, not computed with infra/.
"""

from __future__ import annotations

from typing import Any

import pytest

from infra.nag import flatten_cfn
from tests.infra.conftest import (
    C0_ACCOUNT,
    DIRECTORY_SECOND_REGION,
    Synthesized,
    SynthesizedCells,
    stack_of,
)
from tests.infra.test_permissions import grants_of, statements_of

pytestmark = pytest.mark.infra

FIRST_BUCKET = f"messenger-prod-directory-{C0_ACCOUNT}-us-east-1"
SECOND_BUCKET = f"messenger-prod-directory-{C0_ACCOUNT}-{DIRECTORY_SECOND_REGION}"
SECOND_STACK = f"Messenger-prod-Directory-{DIRECTORY_SECOND_REGION}"
WRITER_HANDLER = "messenger_directory.mesh.publish_relay_record"
# Each stack of the deployment and the record its side writes.
SIDES = {
    "Messenger-prod-c0": "relays/c0/primary.json",
    "Messenger-prod-c1": "relays/c1/primary.json",
    "Messenger-prod-c1-standby": "relays/c1/standby.json",
}


def writer_of(stack: Synthesized) -> str:
    (logical_id,) = [
        logical_id
        for logical_id, resource in stack.resources("AWS::Lambda::Function").items()
        if resource["Properties"].get("Handler") == WRITER_HANDLER
    ]
    return logical_id


def record_properties(stack: Synthesized) -> dict[str, Any]:
    (resource,) = stack.resources("Custom::RelayRecord").values()
    properties: dict[str, Any] = resource["Properties"]
    return properties


def bucket_statements(stack: Synthesized) -> dict[str, dict[str, Any]]:
    """The relay statements of the stack's bucket policies, their bucket's ARN made `<bucket>`."""
    statements = {}
    for policy in stack.resources("AWS::S3::BucketPolicy").values():
        bucket = policy["Properties"]["Bucket"]["Ref"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement.get("Sid") in ("RelayRecordWriters", "RelayRecordReaders"):
                resources = statement["Resource"]
                resources = resources if isinstance(resources, list) else [resources]
                statements[statement["Sid"]] = {
                    **statement,
                    "Resource": sorted(
                        flatten_cfn(resource).replace(f"<{bucket}.Arn>", "<bucket>")
                        for resource in resources
                    ),
                }
    return statements


@pytest.fixture(scope="module")
def second(directory_two_regions: SynthesizedCells) -> Synthesized:
    app = directory_two_regions
    return stack_of(app.acknowledgements, app.config, app.outdir, SECOND_STACK)


@pytest.mark.parametrize("stack_name", sorted(SIDES))
def test_given_two_regions_then_each_side_writes_its_record_into_both_buckets_only(
    directory_two_regions, stack_name
):
    stack = directory_two_regions.stacks[stack_name]
    key = SIDES[stack_name]
    # The writer is told the second bucket (same owner), and keeps its physical id's parts
    properties = record_properties(stack)
    assert properties["Bucket"] == FIRST_BUCKET
    assert properties["FallbackBucket"] == SECOND_BUCKET
    assert properties["FallbackBucketRegion"] == DIRECTORY_SECOND_REGION
    # And its role may put that one record in each bucket, nothing else of S3
    grants = grants_of(stack, writer_of(stack))
    s3_grants = {r: a for r, a in grants.items() if any(x.startswith("s3:") for x in a)}
    assert s3_grants == {
        f"arn:aws:s3:::{FIRST_BUCKET}/{key}": {"s3:PutObject"},
        f"arn:aws:s3:::{SECOND_BUCKET}/{key}": {"s3:PutObject"},
    }
    (statement,) = [
        s for s in statements_of(stack, writer_of(stack)) if s.get("Sid") == "WriteOwnRelayRecord"
    ]
    assert statement["Condition"] == {"StringEquals": {"s3:ResourceAccount": C0_ACCOUNT}}


def test_given_two_regions_then_the_second_bucket_admits_record_writers_and_readers_as_the_first(
    directory_two_regions, second
):
    first = bucket_statements(directory_two_regions.directory)
    assert set(first) == {"RelayRecordWriters", "RelayRecordReaders"}
    assert bucket_statements(second) == first
    assert first["RelayRecordWriters"]["Resource"] == [
        "<bucket>/relays/<aws:PrincipalTag/messenger-cell>/*"
    ]
    assert first["RelayRecordReaders"]["Resource"] == [
        "<bucket>/directory.json",
        "<bucket>/relays/*",
    ]


@pytest.mark.parametrize("stack_name", sorted(SIDES))
def test_given_two_regions_then_the_cells_functions_and_mover_may_read_records_in_both(
    directory_two_regions, stack_name
):
    stack = directory_two_regions.stacks[stack_name]
    grants = stack.policy_statements("ReadRelayRecords")
    assert grants
    for statement in grants:
        assert statement["Action"] == "s3:GetObject"
        assert statement["Resource"] == [
            f"arn:aws:s3:::{FIRST_BUCKET}/relays/*",
            f"arn:aws:s3:::{SECOND_BUCKET}/relays/*",
        ]
    # Every reader knows where the second bucket is (the Mover too)
    for function in stack.resources("AWS::Lambda::Function").values():
        variables = function["Properties"].get("Environment", {}).get("Variables", {})
        if "MESH_BUCKET" in variables:
            assert variables["MESH_FALLBACK_BUCKET"] == SECOND_BUCKET
            assert variables["MESH_FALLBACK_REGION"] == DIRECTORY_SECOND_REGION


@pytest.mark.parametrize("stack_name", sorted(SIDES))
def test_given_one_region_then_the_records_grants_are_the_first_buckets_alone(
    standby_prod, directory_two_regions, stack_name
):
    one, two = standby_prod.stacks[stack_name], directory_two_regions.stacks[stack_name]
    key = SIDES[stack_name]
    # The custom resource has no second bucket (an unchanged resource: no update)
    assert not {"FallbackBucket", "FallbackBucketRegion"} & set(record_properties(one))
    # The writer's policy is the two-region one less the second bucket's record
    writer_one, writer_two = statements_of(one, writer_of(one)), statements_of(two, writer_of(two))
    assert len(writer_one) == len(writer_two)
    (write_one,) = [s for s in writer_one if s.get("Sid") == "WriteOwnRelayRecord"]
    assert write_one["Resource"] == f"arn:aws:s3:::{FIRST_BUCKET}/{key}"
    assert [s for s in writer_one if s is not write_one] == [
        s for s in writer_two if s.get("Sid") != "WriteOwnRelayRecord"
    ]
    # The functions read the first bucket's records only, in as many statements
    reads_one = one.policy_statements("ReadRelayRecords")
    assert len(reads_one) == len(two.policy_statements("ReadRelayRecords"))
    for statement in reads_one:
        assert statement["Resource"] == f"arn:aws:s3:::{FIRST_BUCKET}/relays/*"
    for function in one.resources("AWS::Lambda::Function").values():
        variables = function["Properties"].get("Environment", {}).get("Variables", {})
        assert "MESH_FALLBACK_BUCKET" not in variables
