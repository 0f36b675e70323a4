"""Cells (docs/protocol.md §6) in the templates: one stack per cell, the Relay, who may call it.

The expected names, ARNs and variables are written out here from the design (CELLS.md),
not computed with infra/cells.py, so that these tests check it rather than repeat it.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from infra.nag import flatten_cfn
from messenger.contract import AUTHORIZER, RELAY, RELAY_RESERVED_CONCURRENCY, ROUTES, Access, Env
from tests.infra.conftest import (
    C0_ACCOUNT,
    C1_ACCOUNT,
    DIRECTORY_PUBLIC_KEY,
    FUNCTIONS,
    ORGANIZATION,
    Synthesized,
    SynthesizedCells,
)
from tests.infra.test_api import _refs
from tests.infra.test_permissions import _as_list, expected_grants, grants_of, statements_of

pytestmark = pytest.mark.infra

MESSENGER_FUNCTIONS = [
    (AUTHORIZER.function_name, AUTHORIZER.access),
    *((route.function_name, route.access) for route in ROUTES),
    (RELAY.function_name, RELAY.access),
]
# The routes that reach peers, as the contract declares them.
RELAY_CALLERS = {name for name, access in MESSENGER_FUNCTIONS if Access.RELAY in access}
# A cell's only variable: no shard map, which is the signed directory's.
CELL_VARIABLES = {Env.CELL_ID.value, Env.DIRECTORY_PUBLIC_KEY.value}
# Where the peers' Relay records are: the directory's bucket (docs/scale.md "The mesh").
MESH_VARIABLES = {
    Env.MESH_BUCKET.value,
    Env.MESH_BUCKET_REGION.value,
    Env.MESH_BUCKET_OWNER.value,
}

# Where each cell of the two apps is (conftest.CELLS_DEV_CONTEXT, CELLS_PROD_CONTEXT).
PLACES = {
    "c0": (C0_ACCOUNT, "us-east-1"),
    "c1": (C1_ACCOUNT, "eu-west-1"),
    "c2": (C0_ACCOUNT, "eu-west-1"),
}
DEV_RELAYS = {
    "c0": "arn:aws:lambda:us-east-1:111111111111:function:messenger-dev-c0-relay",
    "c1": "arn:aws:lambda:eu-west-1:222222222222:function:messenger-dev-c1-relay",
}
# prod has SnapStart: a peer invokes the Relay's `live` alias, a published version.
PROD_RELAYS = {
    "c0": "arn:aws:lambda:us-east-1:111111111111:function:messenger-prod-c0-relay:live",
    "c1": "arn:aws:lambda:eu-west-1:222222222222:function:messenger-prod-c1-relay:live",
    "c2": "arn:aws:lambda:eu-west-1:111111111111:function:messenger-prod-c2-relay:live",
}
SHARD_MAPS = {
    "dev": "65536:0-32767=c0,32768-65535=c1",
    # An even split of 65,536 shards (the default) into three.
    "prod": "65536:0-21844=c0,21845-43689=c1,43690-65535=c2",
}
# Every Relay of the deployment, whatever the number of cells: what a cell's callers may invoke.
RELAY_PATTERNS = {
    "dev": "arn:aws:lambda:*:*:function:messenger-dev-*-relay",
    "prod": "arn:aws:lambda:*:*:function:messenger-prod-*-relay:live",
}


def directory_bucket_name(app: SynthesizedCells) -> str:
    return f"messenger-{app.config.env}-directory-{C0_ACCOUNT}-us-east-1"


def relays_of(app: SynthesizedCells) -> dict[str, str]:
    return PROD_RELAYS if app.config.env == "prod" else DEV_RELAYS


def cell_ids(app: SynthesizedCells) -> list[str]:
    return [cell.cell_id for cell in app.cells.cells]


def variables(stack: Synthesized, function: str) -> dict[str, Any]:
    environment: dict[str, Any] = stack.json["Resources"][function]["Properties"]["Environment"][
        "Variables"
    ]
    return environment


def relay_target(stack: Synthesized) -> str:
    """The logical id of what peers invoke: the Relay, or its `live` alias."""
    aliases = [
        alias_id
        for alias_id, alias in stack.resources("AWS::Lambda::Alias").items()
        if _refs(alias["Properties"]["FunctionName"]) == [RELAY.function_name]
    ]
    return aliases[0] if aliases else RELAY.function_name


# --- the stacks ---------------------------------------------------------------------


def test_given_cells_then_each_is_a_stack_in_its_account_and_region(each_cells_app):
    artifacts = each_cells_app.manifest()["artifacts"]
    env = each_cells_app.config.env
    stacks = {
        name: artifact["environment"]
        for name, artifact in artifacts.items()
        if artifact["type"] == "aws:cloudformation:stack"
    }

    # Then one stack per cell where context put it, the directory in the first cell's
    # account and region, and no single-cell stack
    for cell_id in cell_ids(each_cells_app):
        account, region = PLACES[cell_id]
        assert stacks[f"Messenger-{env}-{cell_id}"] == f"aws://{account}/{region}"
    assert stacks[f"Messenger-{env}-Directory"] == f"aws://{C0_ACCOUNT}/us-east-1"
    assert f"Messenger-{env}" not in stacks
    # And API Gateway's logging role once per account and region that has a cell
    logging = {name: where for name, where in stacks.items() if name.startswith("ApiGateway")}
    assert sorted(logging.values()) == sorted(
        {
            f"aws://{account}/{region}"
            for cell_id in cell_ids(each_cells_app)
            for account, region in [PLACES[cell_id]]
        }
    )


def test_given_cells_then_each_deploys_after_the_directory_and_its_logging_role(
    each_cells_app,
):
    env = each_cells_app.config.env
    for cell_id in cell_ids(each_cells_app):
        account, region = PLACES[cell_id]
        dependencies = each_cells_app.cell(cell_id).dependencies()
        assert sorted(dependencies) == sorted(
            [f"Messenger-{env}-Directory", f"ApiGatewayLogging-{account}-{region}"]
        )
    assert each_cells_app.directory.dependencies() == []


def test_given_a_cell_then_its_api_is_named_after_its_stack(cells_dev):
    for cell_id in cell_ids(cells_dev):
        (api,) = cells_dev.cell(cell_id).resources("AWS::ApiGatewayV2::Api").values()
        assert api["Properties"]["Name"] == f"Messenger-dev-{cell_id}"


# --- the Relay ------------------------------------------------------------------------


def test_given_a_cell_then_its_relay_has_the_name_peers_compute(each_cells_app):
    env = each_cells_app.config.env
    for cell_id in cell_ids(each_cells_app):
        stack = each_cells_app.cell(cell_id)
        properties = stack.json["Resources"][RELAY.function_name]["Properties"]
        assert properties["FunctionName"] == f"messenger-{env}-{cell_id}-relay"
        assert properties["Handler"] == RELAY.handler == "messenger.handlers.relay.handler"
        # Its ARN is what its record publishes
        assert relays_of(each_cells_app)[cell_id].split(":")[3:5] == list(PLACES[cell_id][::-1])


def test_given_a_cell_then_every_function_learns_the_cell_map_and_where_peers_are_not_who(
    each_cells_app,
):
    env = each_cells_app.config.env
    relays = relays_of(each_cells_app)
    for cell_id in cell_ids(each_cells_app):
        stack = each_cells_app.cell(cell_id)
        for name, _ in MESSENGER_FUNCTIONS:
            found = variables(stack, name)
            assert found[Env.CELL_ID.value] == cell_id, name
            # No shard map: the functions read it from the signed directory, and believe
            # it by the directory key's public half the deployment gave (-c directoryKey)
            assert "CELL_SHARD_MAP" not in found, name
            assert SHARD_MAPS[env] not in json.dumps(found), name
            assert found.get(Env.DIRECTORY_PUBLIC_KEY.value) == (
                DIRECTORY_PUBLIC_KEY if env == "prod" else None
            ), name
            assert {variable: found[variable] for variable in MESH_VARIABLES} == {
                Env.MESH_BUCKET.value: directory_bucket_name(each_cells_app),
                Env.MESH_BUCKET_REGION.value: "us-east-1",
                Env.MESH_BUCKET_OWNER.value: C0_ACCOUNT,
            }, name
            # No peer is named: neither its Relay nor its function name
            text = json.dumps(found)
            for peer, arn in relays.items():
                assert arn not in text and f"-{peer}-relay" not in text, (cell_id, name)


def test_given_a_cell_then_its_relay_knows_its_own_connections_api(each_cells_app):
    env = each_cells_app.config.env
    for cell_id in cell_ids(each_cells_app):
        stack = each_cells_app.cell(cell_id)
        (api,) = stack.resources("AWS::ApiGatewayV2::Api")
        region = PLACES[cell_id][1]
        endpoint = variables(stack, RELAY.function_name)[Env.CONNECTIONS_ENDPOINT.value]
        assert flatten_cfn(endpoint) == (
            f"https://<{api}>.execute-api.{region}.<AWS::URLSuffix>/{env}"
        )
        # The routes build it from their API event, as in a single cell
        for name, _ in MESSENGER_FUNCTIONS:
            if name != RELAY.function_name:
                assert Env.CONNECTIONS_ENDPOINT.value not in variables(stack, name), name


def test_given_a_cell_then_its_relay_admits_the_organization_once_and_only_invoke(
    each_cells_app,
):
    for cell_id in cell_ids(each_cells_app):
        stack = each_cells_app.cell(cell_id)
        target = relay_target(stack)
        admitted = []
        for logical_id, permission in stack.resources("AWS::Lambda::Permission").items():
            properties = permission["Properties"]
            if properties["Principal"].endswith(".amazonaws.com"):
                # A service's (API Gateway invoking a route): never the Relay's
                assert _refs(properties["FunctionName"]) != [target], logical_id
                continue
            # Anything else is the Relay's resource policy: invoke only, by the organization
            assert _refs(properties["FunctionName"]) == [target], logical_id
            assert properties["Action"] == "lambda:InvokeFunction", logical_id
            admitted.append((properties["Principal"], properties["PrincipalOrgID"]))
        # One statement, whatever the number of cells or accounts
        assert admitted == [("*", ORGANIZATION)]


def test_given_a_cells_relay_then_its_concurrency_is_reserved(each_cells_app):
    for cell_id in cell_ids(each_cells_app):
        properties = each_cells_app.cell(cell_id).json["Resources"][RELAY.function_name][
            "Properties"
        ]
        assert properties["ReservedConcurrentExecutions"] == RELAY_RESERVED_CONCURRENCY


def _mesh_grants(app: SynthesizedCells, access: frozenset[Access]) -> dict[str, set[str]]:
    grants: dict[str, set[str]] = {}
    if Access.RELAY in access:
        grants[RELAY_PATTERNS[app.config.env]] = {"lambda:InvokeFunction"}
    if Access.MESH_READ in access:
        grants[f"arn:aws:s3:::{directory_bucket_name(app)}/relays/*"] = {"s3:GetObject"}
    if Access.SHARD_MAP in access:
        # The signed directory, the one object the shard map is read from
        grants[f"arn:aws:s3:::{directory_bucket_name(app)}/directory.json"] = {"s3:GetObject"}
    return grants


def test_given_a_cell_then_each_function_grants_exactly_its_needs_and_the_mesh_once(
    each_cells_app,
):
    for cell_id in cell_ids(each_cells_app):
        stack = each_cells_app.cell(cell_id)
        account, region = PLACES[cell_id]
        for name, access in MESSENGER_FUNCTIONS:
            expected = expected_grants(stack, name, access, account=account, region=region)
            expected.update(_mesh_grants(each_cells_app, access))
            assert grants_of(stack, name) == expected, (cell_id, name)


def test_given_a_cell_then_no_function_may_invoke_anything_but_relays_and_its_own_presence(
    each_cells_app,
):
    pattern = RELAY_PATTERNS[each_cells_app.config.env]
    for cell_id in cell_ids(each_cells_app):
        stack = each_cells_app.cell(cell_id)
        account, region = PLACES[cell_id]
        alias = ":live" if each_cells_app.config.snap_start else ""
        own_presence = (
            f"arn:aws:lambda:{region}:{account}:function:{stack.stack_name}-PresenceChanged{alias}"
        )
        for name, _ in MESSENGER_FUNCTIONS:
            for statement in statements_of(stack, name):
                actions = _as_list(statement["Action"])
                if any(action.startswith("lambda:") for action in actions):
                    assert actions == ["lambda:InvokeFunction"], (cell_id, name)
                    resources = set(_as_list(statement["Resource"]))
                    assert resources <= {pattern, own_presence}, (cell_id, name)


# --- the cell's Relay record ---------------------------------------------------------


def test_given_a_cell_then_it_publishes_its_relay_record_and_its_writer_may_do_only_that(
    each_cells_app,
):
    env = each_cells_app.config.env
    bucket = directory_bucket_name(each_cells_app)
    for cell_id in cell_ids(each_cells_app):
        stack = each_cells_app.cell(cell_id)
        ((_, record),) = stack.resources("Custom::RelayRecord").items()
        properties = record["Properties"]
        assert properties["CellId"] == cell_id and properties["Side"] == "primary"
        assert properties["Function"] == relays_of(each_cells_app)[cell_id]
        assert (properties["Bucket"], properties["BucketOwner"]) == (bucket, C0_ACCOUNT)
        (function,) = _refs(properties["ServiceToken"])
        role = stack.json["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]
        role_properties = stack.json["Resources"][role]["Properties"]
        assert role_properties["RoleName"] == f"messenger-{env}-{cell_id}-relay-record"
        assert {"Key": "messenger-cell", "Value": cell_id} in role_properties["Tags"]
        statements = {statement["Sid"]: statement for statement in statements_of(stack, function)}
        assert set(statements) == {"OwnLogGroup", "OwnRelayKey", "WriteOwnRelayRecord"}
        key = statements["OwnRelayKey"]
        assert key["Condition"] == {
            "ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["KEY#relay-primary"]}
        }
        write = statements["WriteOwnRelayRecord"]
        assert write["Action"] == "s3:PutObject"
        assert write["Resource"] == f"arn:aws:s3:::{bucket}/relays/{cell_id}/primary.json"


# --- the cell's entry in the directory ----------------------------------------------


def entry_of(stack: Synthesized) -> tuple[str, dict[str, Any]]:
    ((logical_id, resource),) = stack.resources("Custom::DirectoryEntry").items()
    return logical_id, resource


def test_given_a_cell_then_it_publishes_its_websocket_url_to_the_directory(each_cells_app):
    env = each_cells_app.config.env
    bucket = f"messenger-{env}-directory-{C0_ACCOUNT}-us-east-1"
    for cell_id in cell_ids(each_cells_app):
        stack = each_cells_app.cell(cell_id)
        _, entry = entry_of(stack)
        properties = entry["Properties"]
        (api,) = stack.resources("AWS::ApiGatewayV2::Api")
        region = PLACES[cell_id][1]
        assert properties["Bucket"] == bucket
        assert properties["BucketRegion"] == "us-east-1"
        assert properties["BucketOwner"] == C0_ACCOUNT
        assert properties["CellId"] == cell_id
        # Its first epoch (a switch writes later ones)
        assert properties["Epoch"] == f"{region}#0"
        assert flatten_cfn(properties["Url"]) == (
            f"wss://<{api}>.execute-api.{region}.<AWS::URLSuffix>/{env}"
        )
        # No shard map: the directory's stack seeds it, one object (not one per cell)
        assert "ShardMap" not in properties
        # Written once the stage it points at exists
        (stage,) = stack.resources("AWS::ApiGatewayV2::Stage")
        assert stage in entry["DependsOn"]
        # The bucket the cell writes to is the directory's
        assert directory_bucket(each_cells_app)[1]["Properties"]["BucketName"] == bucket


def test_given_a_cells_entry_writer_then_it_may_put_its_own_entry_and_nothing_else(
    each_cells_app,
):
    env = each_cells_app.config.env
    bucket = f"messenger-{env}-directory-{C0_ACCOUNT}-us-east-1"
    for cell_id in cell_ids(each_cells_app):
        stack = each_cells_app.cell(cell_id)
        _, entry = entry_of(stack)
        (function,) = _refs(entry["Properties"]["ServiceToken"])
        role = stack.json["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]
        assert stack.json["Resources"][role]["Properties"]["RoleName"] == (
            f"messenger-{env}-{cell_id}-directory-entry"
        )
        statements = {statement["Sid"]: statement for statement in statements_of(stack, function)}
        assert set(statements) == {"OwnLogGroup", "WriteOwnEntry"}
        write = statements["WriteOwnEntry"]
        # GetObject: the deploy's write reads whether a switch wrote the entry first
        assert write["Action"] == ["s3:GetObject", "s3:PutObject"]
        assert write["Resource"] == f"arn:aws:s3:::{bucket}/cells/{cell_id}.json"
        # Never into a bucket of that name that someone else owns
        assert write["Condition"] == {"StringEquals": {"s3:ResourceAccount": C0_ACCOUNT}}


# --- the directory ------------------------------------------------------------------


def the(stack: Synthesized, cfn_type: str, **where: Any) -> tuple[str, dict[str, Any]]:
    """The one resource of a type (whose properties hold `where`)."""
    (found,) = [
        (logical_id, resource)
        for logical_id, resource in stack.resources(cfn_type).items()
        if all(resource["Properties"].get(key) == value for key, value in where.items())
    ]
    return found


def directory_bucket(app: SynthesizedCells) -> tuple[str, dict[str, Any]]:
    # In the first cell's account and region (c0's, but for standby_dev's: c1's)
    target = app.cells.directory_target
    name = f"messenger-{app.config.env}-directory-{target.account}-{target.region}"
    return the(app.directory, "AWS::S3::Bucket", BucketName=name)


def bucket_policy(stack: Synthesized, bucket: str) -> list[dict[str, Any]]:
    (policy,) = [
        resource["Properties"]["PolicyDocument"]["Statement"]
        for resource in stack.resources("AWS::S3::BucketPolicy").values()
        if resource["Properties"]["Bucket"] == {"Ref": bucket}
    ]
    statements: list[dict[str, Any]] = policy
    return statements


def test_given_the_directory_then_its_bucket_is_private_encrypted_versioned_and_tls_only(
    each_cells_app,
):
    bucket, resource = directory_bucket(each_cells_app)
    properties = resource["Properties"]
    assert properties["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert properties["BucketEncryption"]["ServerSideEncryptionConfiguration"] == [
        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
    ]
    assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
    assert "LoggingConfiguration" in properties
    denials = [
        statement["Condition"]
        for statement in bucket_policy(each_cells_app.directory, bucket)
        if statement["Effect"] == "Deny"
    ]
    assert {"Bool": {"aws:SecureTransport": "false"}} in denials
    assert {"NumericLessThan": {"s3:TlsVersion": 1.2}} in denials


def test_given_the_directory_then_other_accounts_cells_may_write_their_own_entry_only(
    each_cells_app,
):
    env = each_cells_app.config.env
    bucket, _ = directory_bucket(each_cells_app)
    allowed = [
        statement
        for statement in bucket_policy(each_cells_app.directory, bucket)
        if statement["Effect"] == "Allow" and statement.get("Sid") == "CellEntryWriters"
    ]
    # One statement whatever the number of cells: the entry writer roles of the
    # organization, by their fixed names' pattern, each its own cell's entry (its tag)
    (statement,) = allowed
    assert statement["Principal"] == {"AWS": "*"}
    assert statement["Action"] == ["s3:GetObject", "s3:PutObject"]
    assert flatten_cfn(statement["Resource"]).split("/", 1)[1] == (
        "cells/<aws:PrincipalTag/messenger-cell>.json"
    )
    assert statement["Condition"] == {
        "StringEquals": {"aws:PrincipalOrgID": ORGANIZATION},
        "ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::*:role/messenger-{env}-*-directory-entry"},
    }
    # No statement names an account or a cell
    text = json.dumps(bucket_policy(each_cells_app.directory, bucket))
    assert C1_ACCOUNT not in text
    assert not any(f"cells/{cell_id}.json" in text for cell_id in cell_ids(each_cells_app))
    # And each cell's entry writer carries its cell's tag
    for cell_id in cell_ids(each_cells_app):
        stack = each_cells_app.cell(cell_id)
        _, entry = entry_of(stack)
        (function,) = _refs(entry["Properties"]["ServiceToken"])
        role = stack.json["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]
        tags = stack.json["Resources"][role]["Properties"]["Tags"]
        assert {"Key": "messenger-cell", "Value": cell_id} in tags


def directory_behavior(distribution: dict[str, Any]) -> dict[str, Any]:
    """The distribution's behavior for directory.json (the web app has the others)."""
    (behavior,) = [
        behavior
        for behavior in distribution["Properties"]["DistributionConfig"]["CacheBehaviors"]
        if behavior["PathPattern"] == "/directory.json"
    ]
    return behavior


def test_given_the_directory_then_cloudfront_reads_directory_json_only_through_oac(
    each_cells_app,
):
    stack = each_cells_app.directory
    bucket, _ = directory_bucket(each_cells_app)
    distribution, resource = the(stack, "AWS::CloudFront::Distribution")
    config = resource["Properties"]["DistributionConfig"]

    # The origin of directory.json is the bucket, signed by an origin access control (not
    # public, no OAI)
    (origin,) = [
        origin
        for origin in config["Origins"]
        if origin["Id"] == directory_behavior(resource)["TargetOriginId"]
    ]
    assert origin["DomainName"] == {"Fn::GetAtt": [bucket, "RegionalDomainName"]}
    assert origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}
    (control,) = _refs(origin["OriginAccessControlId"])
    oac = stack.json["Resources"][control]["Properties"]["OriginAccessControlConfig"]
    assert (oac["OriginAccessControlOriginType"], oac["SigningBehavior"]) == ("s3", "always")
    assert oac["SigningProtocol"] == "sigv4"

    # And the bucket lets this distribution read directory.json, nothing else
    (read,) = [
        statement
        for statement in bucket_policy(stack, bucket)
        if statement["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    ]
    assert read["Action"] == "s3:GetObject"
    assert [flatten_cfn(resource) for resource in read["Resource"]] == [
        f"<{bucket}.Arn>/directory.json",
        f"<{bucket}.Arn>/directory/*",
    ]
    assert flatten_cfn(read["Condition"]["StringEquals"]["AWS:SourceArn"]) == (
        f"arn:aws:cloudfront::{C0_ACCOUNT}:distribution/<{distribution}>"
    )


def test_given_the_directory_then_it_is_served_over_https_only_and_cached_for_seconds(
    each_cells_app,
):
    stack = each_cells_app.directory
    _, resource = the(stack, "AWS::CloudFront::Distribution")
    behavior = directory_behavior(resource)
    assert behavior["ViewerProtocolPolicy"] == "https-only"
    assert behavior["AllowedMethods"] == ["GET", "HEAD"]

    # A failover shows within 5 s: CloudFront keeps a copy at most as long as the
    # object's Cache-Control (max-age=5, messenger_directory.store) lets a client
    (policy,) = _refs(behavior["CachePolicyId"])
    cache = stack.json["Resources"][policy]["Properties"]["CachePolicyConfig"]
    assert (cache["MinTTL"], cache["DefaultTTL"], cache["MaxTTL"]) == (0, 5, 5)
    key = cache["ParametersInCacheKeyAndForwardedToOrigin"]
    assert key["QueryStringsConfig"] == {"QueryStringBehavior": "none"}
    errors = resource["Properties"]["DistributionConfig"]["CustomErrorResponses"]
    assert all(error["ErrorCachingMinTTL"] == 5 for error in errors)

    # Web clients of any origin may read it, never with credentials
    (headers,) = _refs(behavior["ResponseHeadersPolicyId"])
    cors = stack.json["Resources"][headers]["Properties"]["ResponseHeadersPolicyConfig"][
        "CorsConfig"
    ]
    assert cors["AccessControlAllowCredentials"] is False
    assert cors["AccessControlAllowMethods"] == {"Items": ["GET", "HEAD"]}


def test_given_the_directory_then_its_url_is_an_output(each_cells_app):
    stack = each_cells_app.directory
    distribution, _ = the(stack, "AWS::CloudFront::Distribution")
    bucket, _ = directory_bucket(each_cells_app)
    outputs = {name: flatten_cfn(output["Value"]) for name, output in stack.json["Outputs"].items()}
    assert outputs["DirectoryUrl"] == f"https://<{distribution}.DomainName>/directory.json"
    assert outputs["DirectoryBucketName"] == f"<{bucket}>"
    (key_resource,) = stack.resources("Custom::DirectoryPublicKey")
    assert outputs["DirectoryPublicKey"] == f"<{key_resource}.PublicKey>"


def directory_keys(stack: Any) -> dict[str, Any]:
    """The stack's Ed25519 KMS keys (its others encrypt, e.g. the alarm topic)."""
    return {
        logical_id: resource
        for logical_id, resource in stack.resources("AWS::KMS::Key").items()
        if resource["Properties"].get("KeySpec") == "ECC_NIST_EDWARDS25519"
    }


def test_given_the_directory_then_only_its_function_signs_with_an_ed25519_kms_key(
    each_cells_app,
):
    stack = each_cells_app.directory
    ((key, resource),) = directory_keys(stack).items()
    assert resource["Properties"]["KeyUsage"] == "SIGN_VERIFY"
    # Every client trusts it: it outlives the stack
    assert resource["DeletionPolicy"] == "Retain"
    functions = stack.resources("AWS::Lambda::Function")
    publisher = next(
        logical_id
        for logical_id, fn in functions.items()
        if fn["Properties"].get("Handler") == "messenger_directory.handlers.publish"
    )
    reader = next(
        logical_id
        for logical_id, fn in functions.items()
        if fn["Properties"].get("Handler") == "messenger_directory.handlers.directory_public_key"
    )
    signers = {
        logical_id
        for logical_id in functions
        if any("kms:Sign" in actions for actions in grants_of(stack, logical_id).values())
    }
    assert signers == {publisher}
    assert grants_of(stack, publisher)[f"<{key}.Arn>"] == {"kms:Sign"}
    assert grants_of(stack, reader)[f"<{key}.Arn>"] == {"kms:GetPublicKey"}


def test_given_the_directory_then_one_function_merges_entries_one_at_a_time(each_cells_app):
    stack = each_cells_app.directory
    bucket, resource = directory_bucket(each_cells_app)
    name = resource["Properties"]["BucketName"]
    function, properties = next(
        (logical_id, fn["Properties"])
        for logical_id, fn in stack.resources("AWS::Lambda::Function").items()
        if fn["Properties"].get("Handler") == "messenger_directory.handlers.publish"
    )
    assert properties["ReservedConcurrentExecutions"] == 1
    assert properties["Environment"]["Variables"] == {
        "DIRECTORY_BUCKET": name,
        "DIRECTORY_KEY_ID": properties["Environment"]["Variables"]["DIRECTORY_KEY_ID"],
    }
    (key,) = directory_keys(stack)
    assert properties["Environment"]["Variables"]["DIRECTORY_KEY_ID"] == {
        "Fn::GetAtt": [key, "Arn"]
    }
    # It runs when S3 says an object was created under cells/ (S3 tells EventBridge)
    assert resource["Properties"]["NotificationConfiguration"] == {
        "EventBridgeConfiguration": {"EventBridgeEnabled": True}
    }
    (rule,) = stack.resources("AWS::Events::Rule").values()
    assert rule["Properties"]["EventPattern"] == {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {
            "bucket": {"name": [{"Ref": bucket}]},
            "object": {"key": [{"prefix": "cells/"}]},
        },
    }
    (target,) = rule["Properties"]["Targets"]
    assert _refs(target["Arn"]) == [function]
    # It reads every cell's entry (one pattern), the seeded map, directory.json and the
    # numbered copies, and writes directory.json and the copies only
    grants = grants_of(stack, function)
    entries = {f"<{bucket}.Arn>/cells/*.json", f"<{bucket}.Arn>/seed/shard-map.json"}
    published = {f"<{bucket}.Arn>/directory.json", f"<{bucket}.Arn>/directory/*"}
    assert {resource for resource, actions in grants.items() if "s3:GetObject" in actions} == (
        entries | published
    )
    assert {
        resource for resource, actions in grants.items() if "s3:PutObject" in actions
    } == published
    # And it sets `dv` on this environment's stage of the cells in its own account, each
    # region (their API ids are made later), where API Gateway answers `ping` from it
    env = each_cells_app.config.env
    regions = {
        target.region
        for cell in each_cells_app.cells.cells
        if cell.account == C0_ACCOUNT
        for target in (cell.target, cell.standby)
        if target is not None
    }
    assert regions
    assert {
        resource for resource, actions in grants.items() if actions == {"apigateway:PATCH"}
    } == {f"arn:aws:apigateway:{region}::/apis/*/stages/{env}" for region in regions}


# --- without cells: one cell, as ever in one stack -------------------------------------


def test_given_no_cells_then_it_is_one_cell_with_no_relay_no_peer_and_no_directory(each_env):
    assert RELAY.function_name not in each_env.json["Resources"]
    # Every function learns it is the one cell, c0, home of every user, with no peer
    for name, _ in FUNCTIONS:
        found = variables(each_env, name)
        assert {variable: found[variable] for variable in CELL_VARIABLES if variable in found} == {
            Env.CELL_ID.value: "c0",
        }, name
        assert not MESH_VARIABLES & set(found), name
    assert each_env.resources("Custom::DirectoryEntry") == {}
    # The stacks (nested stacks, such as the web app's, belong to their parent)
    stacks = [name for name in each_env.templates() if not name.endswith(".nested")]
    assert sorted(stacks) == sorted(
        [each_env.config.stack_name, "ApiGatewayLogging-123456789012-us-east-1"]
    )


def _without_cell_pieces(node: Any) -> Any:
    """A template value with what a cell adds to a resource the single stack has too."""
    if isinstance(node, dict):
        return {
            key: _without_cell_pieces(value)
            for key, value in node.items()
            if key not in CELL_VARIABLES | MESH_VARIABLES
        }
    if isinstance(node, list):
        return [
            _without_cell_pieces(value)
            for value in node
            if not (
                isinstance(value, dict)
                and value.get("Sid")
                in ("InvokePeerRelays", "ReadRelayRecords", "ReadSignedDirectory")
            )
        ]
    return node


def test_given_a_cell_then_it_is_the_single_stack_plus_the_cell_pieces(dev, cells_dev):
    # Given the single stack and cell c0 of the same environment, in the same region
    single = by_stack_free_id(
        json.loads(json.dumps(dev.json["Resources"]).replace(dev_account(dev), C0_ACCOUNT)),
        "Messengerdev",
    )
    # (the presence function is named after its stack: the same name, the cell's stack)
    cell = by_stack_free_id(
        json.loads(
            json.dumps(cells_dev.cell("c0").json["Resources"]).replace(
                "Messenger-dev-c0-PresenceChanged", "Messenger-dev-PresenceChanged"
            )
        ),
        "Messengerdevc0",
    )

    # Then the cell has every resource of the single stack but its web app (a deployment of
    # cells has one, on the directory's distribution), under the same logical id, and only
    # the Relay, its resource policy, alarms, entry and Relay record in the directory, and
    # the shard mover (infra/mover.py) besides
    (web_app,) = [
        logical_id
        for logical_id, resource in single.items()
        if resource["Type"] == "AWS::CloudFormation::Stack"
    ]
    assert set(single) - set(cell) == {web_app}
    added = set(cell) - set(single)
    assert added == {
        logical_id
        for logical_id in cell
        if logical_id == RELAY.function_name
        or logical_id.startswith(("RelayFunction", "RelayRole", "RelayLogs", "MonitoringRelay"))
        or logical_id.startswith(("DirectoryEntry", "RelayRecord", "ShardMover"))
    }
    assert RELAY.function_name in added and any(i.startswith("DirectoryEntry") for i in added)

    # And the resources they share differ only by the cell variables' values (both have
    # them: the single stack is one cell too), the peers' Relays, the API's name, the
    # dashboard (which shows the Relay too), the code asset's key (without bundling,
    # CDK names it after the stack), and the Movers' tables' resource policy and key
    # (cells in several accounts: infra/mover.py admit_peer_movers)
    for logical_id, resource in single.items():
        if resource["Type"] in ("AWS::CloudWatch::Dashboard", "AWS::CloudFormation::Stack"):
            continue  # the dashboard shows the Relay; the web app is the directory's
        ours, theirs = json.loads(json.dumps(resource)), json.loads(json.dumps(cell[logical_id]))
        if resource["Type"] == "AWS::ApiGatewayV2::Api":
            assert (ours["Properties"].pop("Name"), theirs["Properties"].pop("Name")) == (
                "Messenger-dev",
                "Messenger-dev-c0",
            )
        if resource["Type"] == "AWS::Lambda::Function":
            ours["Properties"]["Code"].pop("S3Key")
            theirs["Properties"]["Code"].pop("S3Key")
        if "ResourcePolicy" in json.dumps(theirs):
            assert resource["Type"] == "AWS::DynamoDB::GlobalTable", logical_id
            for replica in theirs["Properties"]["Replicas"]:
                replica.pop("ResourcePolicy")
            assert theirs["Properties"].pop("SSESpecification") != (
                ours["Properties"].pop("SSESpecification")
            )
        assert _without_cell_pieces(theirs) == _without_cell_pieces(ours), logical_id


def by_stack_free_id(resources: dict[str, Any], stack_token: str) -> dict[str, Any]:
    """Resources by logical id, where CDK's ids that hold the stack's name (and hashes of
    construct paths, which hold it too) lose both."""
    return {
        (
            re.sub(r"[0-9A-F]{8}", "", logical_id.replace(stack_token, "<stack>"))
            if stack_token in logical_id
            else logical_id
        ): resource
        for logical_id, resource in resources.items()
    }


def dev_account(synthesized: Synthesized) -> str:
    (environment,) = {
        artifact["environment"]
        for name, artifact in json.loads((synthesized.outdir / "manifest.json").read_text())[
            "artifacts"
        ].items()
        if name == synthesized.config.stack_name
    }
    return str(environment).split("/")[2]
