"""The directory in two regions (issue 21, docs/availability.md "The directory in two
regions") in the templates: a bucket per region, one distribution whose directory paths
fail over from the first bucket to the second, the versions table as a DynamoDB global
table with multi-Region strong consistency, a publisher and a scheduled reconcile in each
region signing with the directory key's replica there, their alarms, and their grants.

Names, regions and ARNs are written out from the design, not computed with infra/.
"""

from __future__ import annotations

from typing import Any

import pytest

from infra.config import cells_from_context
from infra.nag import flatten_cfn
from tests.infra.conftest import (
    C0_ACCOUNT,
    C1_ACCOUNT,
    DIRECTORY_SECOND_REGION,
    DIRECTORY_WITNESS,
    ORGANIZATION,
    Synthesized,
    SynthesizedCells,
    stack_of,
)
from tests.infra.test_permissions import grants_of, statements_of

pytestmark = pytest.mark.infra

FIRST_REGION = "us-east-1"
FIRST_BUCKET = f"messenger-prod-directory-{C0_ACCOUNT}-{FIRST_REGION}"
SECOND_BUCKET = f"messenger-prod-directory-{C0_ACCOUNT}-{DIRECTORY_SECOND_REGION}"
SECOND_STACK = f"Messenger-prod-Directory-{DIRECTORY_SECOND_REGION}"
VERSIONS_TABLE = "messenger-prod-directory-versions"
PUBLISH_HANDLER = "messenger_directory.handlers.publish"
RECONCILE_HANDLER = "messenger_directory.handlers.reconcile_buckets"
LEDGER = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"}


@pytest.fixture(scope="module")
def first(directory_two_regions: SynthesizedCells) -> Synthesized:
    return directory_two_regions.directory


@pytest.fixture(scope="module")
def second(directory_two_regions: SynthesizedCells) -> Synthesized:
    app = directory_two_regions
    return stack_of(app.acknowledgements, app.config, app.outdir, SECOND_STACK)


def function_by_handler(stack: Synthesized, handler: str) -> tuple[str, dict[str, Any]]:
    (found,) = [
        (logical_id, resource["Properties"])
        for logical_id, resource in stack.resources("AWS::Lambda::Function").items()
        if resource["Properties"].get("Handler") == handler
    ]
    return found


def environment_of(stack: Synthesized, handler: str) -> dict[str, Any]:
    variables: dict[str, Any] = function_by_handler(stack, handler)[1]["Environment"]["Variables"]
    return variables


def bucket_names(stack: Synthesized) -> set[str]:
    return {
        resource["Properties"].get("BucketName")
        for resource in stack.resources("AWS::S3::Bucket").values()
    } - {None}


# --- the stacks and the buckets -------------------------------------------------------


def test_given_two_directory_regions_then_each_has_a_stack_and_a_bucket(
    directory_two_regions, first, second
):
    artifacts = directory_two_regions.manifest()["artifacts"]
    assert artifacts["Messenger-prod-Directory"]["environment"] == (
        f"aws://{C0_ACCOUNT}/{FIRST_REGION}"
    )
    assert artifacts[SECOND_STACK]["environment"] == (
        f"aws://{C0_ACCOUNT}/{DIRECTORY_SECOND_REGION}"
    )
    assert FIRST_BUCKET in bucket_names(first)
    assert SECOND_BUCKET in bucket_names(second)
    # The second names the first's key and distribution: it deploys after it.
    assert "Messenger-prod-Directory" in artifacts[SECOND_STACK]["dependencies"]


def test_given_the_second_bucket_then_it_is_private_encrypted_versioned_and_read_by_cloudfront(
    second,
):
    ((logical_id, bucket),) = [
        (key, value)
        for key, value in second.resources("AWS::S3::Bucket").items()
        if value["Properties"].get("BucketName") == SECOND_BUCKET
    ]
    properties = bucket["Properties"]
    assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
    assert properties["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert properties["BucketEncryption"]
    (policy,) = [
        value["Properties"]["PolicyDocument"]["Statement"]
        for value in second.resources("AWS::S3::BucketPolicy").values()
        if value["Properties"]["Bucket"] == {"Ref": logical_id}
    ]
    (cloudfront,) = [s for s in policy if s.get("Sid") == "CloudFrontReadsDirectoryJson"]
    assert cloudfront["Action"] == "s3:GetObject"
    assert sorted(flatten_cfn(r) for r in cloudfront["Resource"]) == [
        f"<{logical_id}.Arn>/directory.json",
        f"<{logical_id}.Arn>/directory/*",
    ]
    # Only the directory's distribution, named from the first region's stack.
    source = flatten_cfn(cloudfront["Condition"]["StringEquals"]["AWS:SourceArn"])
    assert source.startswith(f"arn:aws:cloudfront::{C0_ACCOUNT}:distribution/")
    assert "Messenger-prod-Directory" in source


# --- CloudFront's origin group --------------------------------------------------------


def test_given_two_regions_then_directory_paths_fail_over_from_the_first_bucket_to_the_second(
    first,
):
    (distribution,) = first.resources("AWS::CloudFront::Distribution").values()
    config = distribution["Properties"]["DistributionConfig"]
    origins = {origin["Id"]: origin for origin in config["Origins"]}
    (group,) = config["OriginGroups"]["Items"]
    assert sorted(group["FailoverCriteria"]["StatusCodes"]["Items"]) == [
        403,
        404,
        500,
        502,
        503,
        504,
    ]
    primary, fallback = (origins[m["OriginId"]] for m in group["Members"]["Items"])
    assert flatten_cfn(primary["DomainName"]) == "<Bucket83908E77.RegionalDomainName>"
    assert flatten_cfn(fallback["DomainName"]) == (
        f"{SECOND_BUCKET}.s3.{DIRECTORY_SECOND_REGION}.amazonaws.com"
    )
    # Both through the one origin access control (SigV4), neither through an identity.
    assert primary["OriginAccessControlId"] == fallback["OriginAccessControlId"]
    for origin in (primary, fallback):
        assert origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}
    behaviors = {b["PathPattern"]: b for b in config["CacheBehaviors"]}
    assert behaviors["/directory.json"]["TargetOriginId"] == group["Id"]
    assert behaviors["/directory/*"]["TargetOriginId"] == group["Id"]
    # The web app is the first region's only (docs/availability.md says so).
    assert config["DefaultCacheBehavior"]["TargetOriginId"] != group["Id"]


def test_given_one_directory_region_then_the_distribution_has_no_origin_group(cells_prod):
    # One region synthesizes as before: no group, no table, no replica key, no reconcile.
    directory = cells_prod.directory
    (distribution,) = directory.resources("AWS::CloudFront::Distribution").values()
    assert "OriginGroups" not in distribution["Properties"]["DistributionConfig"]
    assert not directory.resources("AWS::DynamoDB::GlobalTable")
    (key,) = [
        value
        for value in directory.resources("AWS::KMS::Key").values()
        if value["Properties"].get("KeySpec") == "ECC_NIST_EDWARDS25519"
    ]
    assert "MultiRegion" not in key["Properties"]
    assert set(environment_of(directory, PUBLISH_HANDLER)) == {
        "DIRECTORY_BUCKET",
        "DIRECTORY_KEY_ID",
    }
    assert not [
        f
        for f in directory.resources("AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == RECONCILE_HANDLER
    ]
    stacks = cells_prod.manifest()["artifacts"]
    assert not [name for name in stacks if name.startswith("Messenger-prod-Directory-")]


# --- the versions table ---------------------------------------------------------------


def test_given_two_regions_then_versions_are_reserved_in_a_strongly_consistent_global_table(
    first, second
):
    ((_, table),) = first.resources("AWS::DynamoDB::GlobalTable").items()
    properties = table["Properties"]
    assert properties["TableName"] == VERSIONS_TABLE
    assert properties["MultiRegionConsistency"] == "STRONG"
    assert properties["GlobalTableWitnesses"] == [{"Region": DIRECTORY_WITNESS}]
    assert sorted(r["Region"] for r in properties["Replicas"]) == [
        FIRST_REGION,
        DIRECTORY_SECOND_REGION,
    ]
    assert properties["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert table["DeletionPolicy"] == "Retain"  # prod
    for replica in properties["Replicas"]:
        assert replica["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    # The second region has its replica, not a table of its own.
    assert not second.resources("AWS::DynamoDB::GlobalTable")


def test_given_two_regions_then_each_publisher_reserves_in_its_replica_and_mirrors_to_the_other(
    first, second
):
    for stack, own, mirror, mirror_region in (
        (first, FIRST_BUCKET, SECOND_BUCKET, DIRECTORY_SECOND_REGION),
        (second, SECOND_BUCKET, FIRST_BUCKET, FIRST_REGION),
    ):
        for handler in (PUBLISH_HANDLER, RECONCILE_HANDLER):
            environment = environment_of(stack, handler)
            assert environment["DIRECTORY_BUCKET"] == own
            assert environment["DIRECTORY_VERSIONS_TABLE"] == VERSIONS_TABLE
            assert environment["DIRECTORY_MIRROR_BUCKET"] == mirror
            assert environment["DIRECTORY_MIRROR_REGION"] == mirror_region


# --- the keys ---------------------------------------------------------------------------


def test_given_two_regions_then_the_key_is_multi_region_and_replicated_into_the_second(
    first, second
):
    ((key_id, key),) = [
        (logical_id, value)
        for logical_id, value in first.resources("AWS::KMS::Key").items()
        if value["Properties"].get("KeySpec") == "ECC_NIST_EDWARDS25519"
    ]
    assert key["Properties"]["MultiRegion"] is True
    assert key["DeletionPolicy"] == "Retain"
    ((_, replica),) = second.resources("AWS::KMS::ReplicaKey").items()
    assert replica["DeletionPolicy"] == "Retain"
    # The primary key's ARN, read from the first region's stack by CloudFormation.
    output = replica["Properties"]["PrimaryKeyArn"]["Fn::GetStackOutput"]
    assert output["StackName"] == "Messenger-prod-Directory"
    assert output["Region"] == FIRST_REGION
    assert key_id in output["OutputName"]
    # Each region's functions sign with their own region's key (no cross-region call).
    (sign,) = [
        s for s in statements_of(second, publisher(second)) if s.get("Sid") == "SignDirectory"
    ]
    assert sign["Resource"] == {"Fn::GetAtt": ["KeyReplica", "Arn"]}
    assert sign["Action"] == "kms:Sign"
    assert sign["Condition"] == {"StringEquals": {"kms:SigningAlgorithm": "ED25519_SHA_512"}}
    (sign,) = [s for s in statements_of(first, publisher(first)) if s.get("Sid") == "SignDirectory"]
    assert sign["Resource"] == {"Fn::GetAtt": [key_id, "Arn"]}


# --- the reconcile's schedule and the alarms --------------------------------------------


def publisher(stack: Synthesized) -> str:
    return function_by_handler(stack, PUBLISH_HANDLER)[0]


def reconciler(stack: Synthesized) -> str:
    return function_by_handler(stack, RECONCILE_HANDLER)[0]


@pytest.mark.parametrize("region", ["first", "second"])
def test_given_each_region_then_its_reconcile_runs_every_five_minutes(request, region):
    stack: Synthesized = request.getfixturevalue(region)
    function = reconciler(stack)
    (rule,) = [
        value["Properties"]
        for value in stack.resources("AWS::Events::Rule").values()
        if "ScheduleExpression" in value["Properties"]
    ]
    assert rule["ScheduleExpression"] == "rate(5 minutes)"
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [function, "Arn"]}
    properties = stack.json["Resources"][function]["Properties"]
    assert properties["ReservedConcurrentExecutions"] == 1


@pytest.mark.parametrize("region", ["first", "second"])
def test_given_each_region_then_publisher_and_reconcile_errors_alarm_its_topic(request, region):
    stack: Synthesized = request.getfixturevalue(region)
    (topic,) = stack.resources("AWS::SNS::Topic")
    alarmed = {}
    for alarm in stack.resources("AWS::CloudWatch::Alarm").values():
        properties = alarm["Properties"]
        if properties.get("MetricName") != "Errors":
            continue
        (dimension,) = properties["Dimensions"]
        alarmed[dimension["Value"]["Ref"]] = properties
    for function in (publisher(stack), reconciler(stack)):
        properties = alarmed[function]
        assert properties["Namespace"] == "AWS/Lambda"
        assert properties["Threshold"] == 1
        assert properties["AlarmActions"] == [{"Ref": topic}]


# --- least privilege --------------------------------------------------------------------


@pytest.mark.parametrize("region", ["first", "second"])
def test_given_each_region_then_its_publisher_may_touch_its_bucket_the_mirror_and_its_replica(
    request, region
):
    stack: Synthesized = request.getfixturevalue(region)
    own_region, mirror = (
        (FIRST_REGION, SECOND_BUCKET)
        if region == "first"
        else (DIRECTORY_SECOND_REGION, FIRST_BUCKET)
    )
    grants = grants_of(stack, publisher(stack))
    table = f"arn:aws:dynamodb:{own_region}:{C0_ACCOUNT}:table/{VERSIONS_TABLE}"
    assert grants[table] == LEDGER
    assert grants[f"arn:aws:s3:::{mirror}/directory.json"] == {"s3:GetObject", "s3:PutObject"}
    assert grants[f"arn:aws:s3:::{mirror}/directory/*"] == {"s3:GetObject", "s3:PutObject"}
    assert grants[f"arn:aws:s3:::{mirror}"] == {"s3:ListBucket"}
    # Nothing of the mirror's entries (only the first region's cells write those), no
    # other table, no wildcard action.
    assert not [r for r in grants if r.startswith(f"arn:aws:s3:::{mirror}/cells/")]
    assert not [r for r in grants if ":dynamodb:" in r and r != table]
    assert all("*" not in action for actions in grants.values() for action in actions)
    # The reconcile runs as the publisher: the same grants, and its own log group.
    assert (
        stack.json["Resources"][reconciler(stack)]["Properties"]["Role"]
        == (stack.json["Resources"][publisher(stack)]["Properties"]["Role"])
    )


def test_given_the_second_region_then_nothing_but_its_functions_may_sign(second):
    signers = [
        statement
        for policy in second.resources("AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if "kms:Sign"
        in (statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]])
    ]
    assert len(signers) == 1


# --- placement ------------------------------------------------------------------------


def two_regions(**values: str):
    context = {
        "env": "prod",
        "organization": ORGANIZATION,
        "directorySecondRegion": DIRECTORY_SECOND_REGION,
        "directoryWitness": DIRECTORY_WITNESS,
        **values,
    }
    return cells_from_context(context.get, {})


def test_given_a_primary_with_a_standby_in_a_directory_region_then_synthesis_refuses():
    # c1's primary in the directory's second region, its standby elsewhere.
    with pytest.raises(ValueError, match="a directory region may not host a primary"):
        two_regions(
            cells=f"c0:{C0_ACCOUNT}/us-east-1,c1:{C1_ACCOUNT}/{DIRECTORY_SECOND_REGION}",
            **{"standby:c1": f"{C1_ACCOUNT}/eu-central-1"},
        )
    # The first region's cell with a standby: refused the same way.
    with pytest.raises(ValueError, match="a directory region may not host a primary"):
        two_regions(
            cells=f"c0:{C0_ACCOUNT}/us-east-1,c1:{C1_ACCOUNT}/eu-west-1",
            **{"standby:c0": f"{C0_ACCOUNT}/eu-central-1"},
        )


def test_given_two_directory_regions_then_a_standby_may_run_in_one():
    # A standby (not a primary) in a directory region: the region that loses the
    # primary still has the other directory region.
    cells = two_regions(
        cells=f"c0:{C0_ACCOUNT}/us-east-1,c1:{C1_ACCOUNT}/eu-west-1",
        **{"standby:c1": f"{C1_ACCOUNT}/{DIRECTORY_SECOND_REGION}"},
    )
    assert cells.directory_regions == ("us-east-1", DIRECTORY_SECOND_REGION)


def test_given_a_witness_outside_the_regions_set_then_synthesis_refuses():
    with pytest.raises(ValueError, match="multi-Region strong consistency region sets"):
        two_regions(
            cells=f"c0:{C0_ACCOUNT}/us-east-1,c1:{C1_ACCOUNT}/eu-west-1",
            directoryWitness="eu-west-2",
        )


# --- one region is what it was ------------------------------------------------------------

# What a second region changes in the first region's template, resource by resource; any
# other difference would reach one-region deployments too (or replace something).
CHANGED_BY_A_SECOND_REGION = {
    "Key9BCD29C7",  # MultiRegion: true
    "PublishFunctionB6602567",  # the versions table and the mirror in its environment
    "PublishRoleDefaultPolicy9257B12D",  # the table's replica, the mirror, the log group
    "Distribution830FAC52",  # the origin group
}


def test_given_a_second_region_then_the_first_regions_template_only_gains_what_it_names(
    standby_prod, first
):
    # The same deployment with and without the two context keys: every resource of the
    # one-region directory is in the two-region one, unchanged but for the named few.
    one_region = standby_prod.directory.json["Resources"]
    two_regions = first.json["Resources"]
    assert set(one_region) <= set(two_regions)
    changed = {
        logical_id
        for logical_id, resource in one_region.items()
        if two_regions[logical_id] != resource
    }
    assert changed == CHANGED_BY_A_SECOND_REGION
    added = {two_regions[logical_id]["Type"] for logical_id in set(two_regions) - set(one_region)}
    assert added == {
        "AWS::DynamoDB::GlobalTable",
        "AWS::Lambda::Function",
        "AWS::Logs::LogGroup",
        "AWS::Events::Rule",
        "AWS::Lambda::Permission",
        "AWS::CloudWatch::Alarm",
    }


# --- a switch publishes through either region (the entries in the versions table) -----

SWITCH_HANDLER = "messenger_directory.failover.failover"
STANDBY_STACK = "Messenger-prod-c1-standby"
PUBLISHERS = [
    f"arn:aws:lambda:{region}:{C0_ACCOUNT}:function:messenger-prod-directory-publish"
    for region in (FIRST_REGION, DIRECTORY_SECOND_REGION)
]


@pytest.fixture(scope="module")
def standby(directory_two_regions: SynthesizedCells) -> Synthesized:
    return directory_two_regions.stacks[STANDBY_STACK]


def test_given_two_regions_then_the_switch_tries_the_first_region_then_the_second(standby):
    # In this order: the first region's bucket and function first, the second's when
    # either fails.
    variables = environment_of(standby, SWITCH_HANDLER)
    assert variables["FAILOVER_DIRECTORY_PUBLISHERS"] == ",".join(PUBLISHERS)
    assert variables["FAILOVER_DIRECTORY_BUCKETS"] == f"{FIRST_BUCKET},{SECOND_BUCKET}"


def test_given_two_regions_then_the_switch_may_write_its_entry_and_invoke_in_both_only(standby):
    switch, _ = function_by_handler(standby, SWITCH_HANDLER)
    grants = grants_of(standby, switch)
    for arn in PUBLISHERS:
        assert grants[arn] == {"lambda:InvokeFunction"}
    invoked = {r for r, actions in grants.items() if "lambda:InvokeFunction" in actions}
    assert invoked == set(PUBLISHERS)
    # Its own cell's entry in each bucket, nothing else of the directory's (no
    # directory.json, no numbered copy: the publishers write those).
    written = {r for r, actions in grants.items() if any(a.startswith("s3:") for a in actions)}
    assert written == {
        f"arn:aws:s3:::{bucket}/cells/c1.json" for bucket in (FIRST_BUCKET, SECOND_BUCKET)
    }
    for resource in written:
        assert grants[resource] == {"s3:PutObject"}


def test_given_one_region_then_the_switch_still_writes_its_entry_into_the_bucket(standby_prod):
    stack = standby_prod.stacks[STANDBY_STACK]
    switch, _ = function_by_handler(stack, SWITCH_HANDLER)
    grants = grants_of(stack, switch)
    assert grants[f"arn:aws:s3:::{FIRST_BUCKET}/cells/c1.json"] == {"s3:PutObject"}
    assert not [r for r, actions in grants.items() if "lambda:InvokeFunction" in actions]
    assert "FAILOVER_DIRECTORY_PUBLISHERS" not in environment_of(stack, SWITCH_HANDLER)


@pytest.mark.parametrize("region", ["first", "second"])
def test_given_each_region_then_its_publisher_admits_the_organizations_callers(request, region):
    # A cell of another account (c1's Switch, a Mover) may invoke either region's
    # function: one permission for the organization, none per cell.
    stack: Synthesized = request.getfixturevalue(region)
    function = publisher(stack)
    permissions = [
        value["Properties"]
        for value in stack.resources("AWS::Lambda::Permission").values()
        if value["Properties"]["FunctionName"] == {"Fn::GetAtt": [function, "Arn"]}
        and "PrincipalOrgID" in value["Properties"]
    ]
    assert [(p["Action"], p["Principal"], p["PrincipalOrgID"]) for p in permissions] == [
        ("lambda:InvokeFunction", "*", ORGANIZATION)
    ]


@pytest.mark.parametrize("region", ["first", "second"])
def test_given_each_region_then_its_publisher_may_write_back_only_its_own_buckets_entries(
    request, region
):
    stack: Synthesized = request.getfixturevalue(region)
    grants = grants_of(stack, publisher(stack))
    entries = [r for r in grants if r.endswith("/cells/*.json")]
    assert len(entries) == 1
    (own,) = [
        logical_id
        for logical_id in stack.resources("AWS::S3::Bucket")
        if logical_id.startswith("Bucket")
    ]
    assert entries == [f"<{own}.Arn>/cells/*.json"]
    assert grants[entries[0]] == {"s3:GetObject", "s3:PutObject"}


def _writes(statement: dict[str, Any], action: str) -> bool:
    actions = (
        statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
    )
    return statement["Effect"] == "Allow" and (action in actions or "s3:*" in actions)


def test_given_two_regions_then_nothing_but_the_publishers_writes_the_directory_or_the_table(
    directory_two_regions, second
):
    # Every identity policy of every stack of the deployment: the cells', the standby's,
    # both directory regions'. Only the publishers' roles (the reconciles run as them)
    # may put directory.json or a numbered copy, or write the versions table (numbers
    # and the cells' entries).
    stacks = {**directory_two_regions.stacks, SECOND_STACK: second}
    writers = set()
    for name, stack in stacks.items():
        for policy in stack.resources("AWS::IAM::Policy").values():
            roles = tuple(flatten_cfn(role) for role in policy["Properties"]["Roles"])
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                resources = statement["Resource"]
                resources = resources if isinstance(resources, list) else [resources]
                flat = [flatten_cfn(resource) for resource in resources]
                documents = [r for r in flat if r.endswith(("/directory.json", "/directory/*"))]
                if documents and _writes(statement, "s3:PutObject"):
                    writers.add((name, roles))
                table = [r for r in flat if r.endswith(f":table/{VERSIONS_TABLE}")]
                if table and any(
                    _writes(statement, action)
                    for action in ("dynamodb:PutItem", "dynamodb:UpdateItem")
                ):
                    writers.add((name, roles))
    publishers = {
        ("Messenger-prod-Directory", (f"<{role_of(first_stack(directory_two_regions))}>",)),
        (SECOND_STACK, (f"<{role_of(second)}>",)),
    }
    assert writers == publishers


def first_stack(app: SynthesizedCells) -> Synthesized:
    return app.directory


def role_of(stack: Synthesized) -> str:
    role: str = stack.json["Resources"][publisher(stack)]["Properties"]["Role"]["Fn::GetAtt"][0]
    return role


def test_given_two_regions_then_each_bucket_admits_the_switches_to_their_own_entry_only(
    first, second
):
    # A standby's Switch of another account writes its cell's entry into whichever
    # region it publishes through: each bucket admits it, by its role's cell tag, to
    # that one entry.
    for stack, roles in (
        (
            first,
            [
                "arn:aws:iam::*:role/messenger-prod-*-directory-entry",
                "arn:aws:iam::*:role/messenger-prod-*-failover",
            ],
        ),
        (second, "arn:aws:iam::*:role/messenger-prod-*-failover"),
    ):
        (statement,) = [
            s
            for policy in stack.resources("AWS::S3::BucketPolicy").values()
            for s in policy["Properties"]["PolicyDocument"]["Statement"]
            if s.get("Sid") == "CellEntryWriters"
        ]
        assert statement["Condition"]["ArnLike"]["aws:PrincipalArn"] == roles
        assert statement["Condition"]["StringEquals"] == {"aws:PrincipalOrgID": ORGANIZATION}
        assert sorted(statement["Action"]) == ["s3:GetObject", "s3:PutObject"]
        assert flatten_cfn(statement["Resource"]).endswith(
            "/cells/<aws:PrincipalTag/messenger-cell>.json"
        )


# --- the cells read their shard map from either region ------------------------------------


@pytest.mark.parametrize("stack_name", ["Messenger-prod-c0", "Messenger-prod-c1", STANDBY_STACK])
def test_given_two_regions_then_the_cells_may_read_the_signed_directory_in_either_bucket(
    directory_two_regions, stack_name
):
    stack = directory_two_regions.stacks[stack_name]
    functions = stack.resources("AWS::Lambda::Function").values()
    # Every function of the cell (CELL_ID and the directory's bucket: the Mover, which asks
    # the directory function for the map instead, has MOVER_CELL_ID; infra/mover.py).
    variables_of = [f["Properties"].get("Environment", {}).get("Variables", {}) for f in functions]
    readers = [v for v in variables_of if "CELL_ID" in v and "MESH_BUCKET" in v]
    assert readers
    for variables in readers:
        assert variables["MESH_BUCKET"] == FIRST_BUCKET
        assert variables["MESH_FALLBACK_BUCKET"] == SECOND_BUCKET
        assert variables["MESH_FALLBACK_REGION"] == DIRECTORY_SECOND_REGION
    grants = stack.policy_statements("ReadSignedDirectory")
    assert grants
    for statement in grants:
        assert statement["Action"] == "s3:GetObject"
        assert statement["Resource"] == [
            f"arn:aws:s3:::{FIRST_BUCKET}/directory.json",
            f"arn:aws:s3:::{SECOND_BUCKET}/directory.json",
        ]


def test_given_two_regions_then_the_second_bucket_lets_the_organization_read_the_directory(
    second,
):
    # (With the Relay records: the first bucket's statement, tests/infra/test_relay_records_*)
    (statement,) = [
        s
        for policy in second.resources("AWS::S3::BucketPolicy").values()
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s.get("Sid") == "RelayRecordReaders"
    ]
    assert statement["Action"] == "s3:GetObject"
    assert statement["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": ORGANIZATION}}
    assert any(flatten_cfn(r).endswith("/directory.json") for r in statement["Resource"])


def test_given_one_region_then_the_cells_have_no_fallback_bucket(standby_prod):
    for function in standby_prod.cell("c1").resources("AWS::Lambda::Function").values():
        variables = function["Properties"].get("Environment", {}).get("Variables", {})
        assert "MESH_FALLBACK_BUCKET" not in variables


# --- each vantage's probe reads its cell's entry in either bucket ---------------------

PROBE_HANDLER = "messenger_directory.probe.probe"


@pytest.mark.parametrize("stack_name", ["Messenger-prod-c1", STANDBY_STACK])
def test_given_two_regions_then_each_probe_may_read_its_cells_entry_in_either_bucket(
    directory_two_regions, stack_name
):
    stack = directory_two_regions.stacks[stack_name]
    probe, _ = function_by_handler(stack, PROBE_HANDLER)
    variables = environment_of(stack, PROBE_HANDLER)
    assert (variables["PROBE_DIRECTORY_BUCKET"], variables["PROBE_DIRECTORY_REGION"]) == (
        FIRST_BUCKET,
        FIRST_REGION,
    )
    assert (
        variables["PROBE_DIRECTORY_FALLBACK_BUCKET"],
        variables["PROBE_DIRECTORY_FALLBACK_REGION"],
    ) == (SECOND_BUCKET, DIRECTORY_SECOND_REGION)
    (statement,) = [s for s in statements_of(stack, probe) if s.get("Sid") == "ReadCellEntry"]
    assert statement["Action"] == "s3:GetObject"
    assert statement["Resource"] == [
        f"arn:aws:s3:::{bucket}/cells/c1.json" for bucket in (FIRST_BUCKET, SECOND_BUCKET)
    ]
    assert statement["Condition"] == {"StringEquals": {"s3:ResourceAccount": C0_ACCOUNT}}


def test_given_two_regions_then_each_bucket_admits_the_probes_to_their_cells_entry(first, second):
    admitted = []
    for stack in (first, second):
        (statement,) = [
            s
            for policy in stack.resources("AWS::S3::BucketPolicy").values()
            for s in policy["Properties"]["PolicyDocument"]["Statement"]
            if s.get("Sid") == "CellEntryProbes"
        ]
        admitted.append(
            (
                statement["Action"],
                statement["Condition"],
                flatten_cfn(statement["Resource"]).split(">", 1)[1],
            )
        )
    assert admitted[0] == admitted[1]
    assert admitted[0] == (
        "s3:GetObject",
        {
            "StringEquals": {"aws:PrincipalOrgID": ORGANIZATION},
            "ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/messenger-prod-*-probe-*"},
        },
        "/cells/<aws:PrincipalTag/messenger-cell>.json",
    )


def test_given_one_region_then_the_probe_has_no_fallback_bucket(standby_prod):
    for stack_name in ("Messenger-prod-c1", STANDBY_STACK):
        variables = environment_of(standby_prod.stacks[stack_name], PROBE_HANDLER)
        assert "PROBE_DIRECTORY_FALLBACK_BUCKET" not in variables
