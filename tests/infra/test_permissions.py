"""Least privilege: each function's role holds exactly what its contract `Access` needs.

The expected grants below are written from the issue's mapping, not imported from
infra/permissions.py, so this test checks the mapping instead of repeating it.
"""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import Stack
from aws_cdk import aws_dynamodb as dynamodb

from infra.nag import flatten_cfn
from infra.permissions import Targets, endpoint_arns_of, statements_for
from infra.presence_settle import QUEUE_ID
from messenger.contract import (
    LIMITS_TABLE,
    PRESENCE_WORKER,
    QUEUE_TABLE,
    TABLES,
    USERS_TABLE,
    Access,
    TableSpec,
)
from tests.infra.conftest import ACCOUNT, APNS_APP, FUNCTIONS, GCM_APP, REGION, Synthesized

pytestmark = pytest.mark.infra

LOGS = {"logs:CreateLogStream", "logs:PutLogEvents"}
XRAY = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
WRITE = {
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",
}
ENDPOINT_ACTIONS = {
    "sns:Publish",
    "sns:GetEndpointAttributes",
    "sns:SetEndpointAttributes",
    "sns:DeleteEndpoint",
}


def role_of(synthesized: Synthesized, function: str) -> str:
    return synthesized.json["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]


def statements_of(synthesized: Synthesized, function: str) -> list[dict[str, Any]]:
    role = role_of(synthesized, function)
    policies = [
        resource["Properties"]["PolicyDocument"]["Statement"]
        for resource in synthesized.resources("AWS::IAM::Policy").values()
        if {"Ref": role} in resource["Properties"]["Roles"]
    ]
    return [statement for statements in policies for statement in statements]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def grants_of(synthesized: Synthesized, function: str) -> dict[str, set[str]]:
    """Resource (flattened, cdk-nag style) -> the actions the function may take on it."""
    grants: dict[str, set[str]] = {}
    for statement in statements_of(synthesized, function):
        assert statement["Effect"] == "Allow"
        for resource in _as_list(statement["Resource"]):
            grants.setdefault(flatten_cfn(resource), set()).update(_as_list(statement["Action"]))
    return grants


def table_arn(synthesized: Synthesized, spec: TableSpec) -> str:
    (logical_id,) = [
        logical_id
        for logical_id, resource in synthesized.resources("AWS::DynamoDB::GlobalTable").items()
        if logical_id.startswith(spec.logical_name)
    ]
    return f"<{logical_id}.Arn>"


def expected_grants(
    synthesized: Synthesized,
    function: str,
    access: frozenset[Access],
    account: str = ACCOUNT,
    region: str = REGION,
) -> dict[str, set[str]]:
    """What `access` grants in a stack of `account` and `region` (without peers: a cell's
    Relay grants are checked in test_cells.py)."""
    users, queue = table_arn(synthesized, USERS_TABLE), table_arn(synthesized, QUEUE_TABLE)
    limits = table_arn(synthesized, LIMITS_TABLE)
    (log_group,) = [ref for ref in grants_of(synthesized, function) if "Logs" in ref]
    expected: dict[str, set[str]] = {log_group: set(LOGS), "*": set(XRAY)}

    def grant(resource: str, actions: set[str]) -> None:
        expected.setdefault(resource, set()).update(actions)

    if Access.USERS_READ in access:
        grant(users, {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"})
        for index in USERS_TABLE.global_indexes:
            grant(f"{users}/index/{index.name}", {"dynamodb:Query"})
    if Access.USERS_WRITE in access:
        grant(users, WRITE)
    if Access.QUEUE_READ in access:
        grant(queue, {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"})
        for index in QUEUE_TABLE.local_indexes:
            grant(f"{queue}/index/{index.name}", {"dynamodb:Query"})
    if Access.QUEUE_WRITE in access:
        grant(queue, WRITE | {"dynamodb:GetItem", "dynamodb:BatchGetItem"})
    if Access.POST_TO_CONNECTION in access:
        (api,) = synthesized.resources("AWS::ApiGatewayV2::Api")
        for method in ("POST", "DELETE"):  # DELETE: closing after an error that says why
            grant(
                f"arn:aws:execute-api:{region}:{account}:<{api}>/"
                f"{synthesized.config.env}/{method}/@connections/*",
                {"execute-api:ManageConnections"},
            )
    if Access.LIMITS in access:
        grant(limits, {"dynamodb:UpdateItem"})
    if Access.ANNOUNCE_PRESENCE in access:
        alias = ":live" if synthesized.config.snap_start else ""
        stack_name = synthesized.stack_name or synthesized.config.stack_name
        grant(
            f"arn:aws:lambda:{region}:{account}:function:{stack_name}-PresenceChanged{alias}",
            {"lambda:InvokeFunction"},
        )
    if Access.SETTLE_PRESENCE in access:
        grant(f"<{settle_queue(synthesized)}.Arn>", {"sqs:SendMessage"})
    if function == PRESENCE_WORKER.function_name:
        # Its settle queue is its event source: the mapping receives and deletes for it.
        grant(f"<{settle_queue(synthesized)}.Arn>", SETTLE_QUEUE_CONSUMER)
    if Access.PUSH in access and synthesized.config.push_apps:
        for app, endpoints in push_resources(synthesized):
            grant(app, {"sns:CreatePlatformEndpoint"})
            grant(endpoints, ENDPOINT_ACTIONS)
    return expected


# What CDK grants a function whose event source is an SQS queue, on that queue only.
SETTLE_QUEUE_CONSUMER = {
    "sqs:ReceiveMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueUrl",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
}


def settle_queue(synthesized: Synthesized) -> str:
    """The logical id of the presence function's settle queue."""
    (logical_id,) = [
        logical_id
        for logical_id in synthesized.resources("AWS::SQS::Queue")
        if logical_id.startswith(QUEUE_ID)
    ]
    return logical_id


def push_resources(synthesized: Synthesized) -> list[tuple[str, str]]:
    """(application, its endpoints) for the APNS ARN and the GCM ARN looked up in SSM."""
    return [
        (APNS_APP, f"arn:aws:sns:{REGION}:{ACCOUNT}:endpoint/APNS/messenger-ios/*"),
        (GCM_APP, f"arn:aws:sns:{REGION}:{ACCOUNT}:endpoint/GCM/messenger-android/*"),
    ]


@pytest.mark.parametrize(("function", "access"), FUNCTIONS, ids=[name for name, _ in FUNCTIONS])
def test_given_a_function_then_its_role_grants_exactly_its_declared_needs(
    each_env, function, access
):
    assert grants_of(each_env, function) == expected_grants(each_env, function, access)


def test_given_any_function_policy_then_no_action_is_a_wildcard(each_env):
    for function, _ in FUNCTIONS:
        for statement in statements_of(each_env, function):
            actions = _as_list(statement["Action"])
            assert not [action for action in actions if "*" in action], (function, statement)
            # The one resource "*" is X-Ray's, which has no resource-level permissions.
            if "*" in _as_list(statement["Resource"]):
                assert set(actions) == XRAY, (function, statement)


def test_given_any_function_role_then_lambda_alone_assumes_it_and_nothing_is_managed(each_env):
    roles = {role_of(each_env, function) for function, _ in FUNCTIONS}
    assert len(roles) == len(FUNCTIONS)
    for role in roles:
        properties = each_env.json["Resources"][role]["Properties"]
        assert "ManagedPolicyArns" not in properties
        (statement,) = properties["AssumeRolePolicyDocument"]["Statement"]
        assert statement["Principal"] == {"Service": "lambda.amazonaws.com"}


def test_given_no_push_platform_then_no_function_may_touch_sns(dev):
    for function, _ in FUNCTIONS:
        actions = {action for actions in grants_of(dev, function).values() for action in actions}
        assert not {action for action in actions if action.startswith("sns:")}, function


def test_given_every_access_value_then_the_stack_knows_how_to_grant_it():
    # Given targets in a throwaway stack (no synthesis needed)
    stack = Stack()
    tables = {
        spec: dynamodb.TableV2(
            stack,
            spec.logical_name,
            partition_key=dynamodb.Attribute(
                name=spec.partition_key, type=dynamodb.AttributeType.STRING
            ),
        )
        for spec in TABLES
    }
    targets = Targets(
        tables=tables,
        connections_arn="arn:aws:execute-api:x:1:api/dev/POST/*",
        close_connections_arn="arn:aws:execute-api:x:1:api/dev/DELETE/*",
        push_apps=(APNS_APP,),
        presence_function_arn="arn:aws:lambda:x:1:function:Messenger-dev-PresenceChanged",
        presence_settle_queue_arn="arn:aws:sqs:x:1:settle",
        presence_settle_queue_url="https://sqs.x.amazonaws.com/1/settle",
        relay_pattern="arn:aws:lambda:*:*:function:messenger-dev-*-relay",
        relay_records="arn:aws:s3:::messenger-dev-directory-111111111111-us-east-1/relays/*",
        shard_map="arn:aws:s3:::messenger-dev-directory-111111111111-us-east-1/directory.json",
    )

    # Then every need the contract can declare, today's and any new one, maps to statements
    for access in Access:
        assert statements_for(access, targets), access


def test_given_a_platform_application_arn_then_its_endpoints_are_the_ones_under_it():
    assert endpoint_arns_of(APNS_APP) == (
        "arn:aws:sns:us-east-1:123456789012:endpoint/APNS/messenger-ios/*"
    )
