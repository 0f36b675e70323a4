"""What the local stack creates in moto comes from the contract, as the stack's would."""

from __future__ import annotations

import asyncio
import os

import pytest

from messenger.contract import TABLES, Env, create_table_request
from messenger_local import EmbeddedAws, LocalStack
from messenger_local.runtime import PROCESS_SWITCHES
from messenger_protocol.names import PushPlatform
from tests.support.identities import TestUser
from tests.support.ws_client import connect_as

pytestmark = pytest.mark.e2e


async def test_tables_follow_the_contract_with_ttl(stack: LocalStack) -> None:
    dynamodb = stack.aws.client("dynamodb")
    for spec in TABLES:
        name = stack.table_names[spec.env.value]
        assert stack.environment[spec.env.value] == name
        table = (await asyncio.to_thread(dynamodb.describe_table, TableName=name))["Table"]
        wanted = create_table_request(spec, name)
        assert table["KeySchema"] == wanted["KeySchema"]
        assert sorted(a["AttributeName"] for a in table["AttributeDefinitions"]) == sorted(
            a["AttributeName"] for a in wanted["AttributeDefinitions"]
        )
        ttl = await asyncio.to_thread(dynamodb.describe_time_to_live, TableName=name)
        assert ttl["TimeToLiveDescription"] == {
            "TimeToLiveStatus": "ENABLED",
            "AttributeName": spec.ttl_attribute,
        }


async def test_push_applications_exist_for_every_platform(stack: LocalStack) -> None:
    sns = stack.aws.client("sns")
    listed = await asyncio.to_thread(sns.list_platform_applications)
    arns = {app["PlatformApplicationArn"] for app in listed["PlatformApplications"]}
    for platform in PushPlatform:
        assert stack.environment[Env(f"PUSH_APP_{platform}").value] in arns


async def test_functions_get_lambda_like_configuration(stack: LocalStack) -> None:
    environment = stack.environment
    assert environment["AWS_ENDPOINT_URL"] == stack.aws_endpoint
    assert environment["AWS_DEFAULT_REGION"] == "us-east-1"
    assert environment["AWS_ACCESS_KEY_ID"] == "testing"
    assert environment["POWERTOOLS_SERVICE_NAME"] == "messenger"
    assert environment["POWERTOOLS_TRACE_DISABLED"] == "true"
    assert "AWS_PROFILE" not in environment


async def test_a_second_stack_in_the_same_process_runs_beside_the_first(
    stack: LocalStack, alice: TestUser
) -> None:
    # Given a running stack, when a second one starts in the same process
    async with LocalStack(aws=stack.aws) as second:
        # Then each has its own stage, tables and functions' environment
        assert second.http_url != stack.http_url
        assert set(second.table_names.values()).isdisjoint(stack.table_names.values())
        assert second.environment["CONNECTIONS_ENDPOINT"] == second.http_url
        # And each one's functions answer on its own stage, with its own tables
        for running in (stack, second):
            client = await connect_as(running.ws_url, alice)
            assert (await client.request({"action": "sync"}))["type"] == "syncDone"
            await client.close()
            await running.settled()
            [connected] = running.invocations_of("$connect")
            assert connected.user == "alice"
            users = (await asyncio.to_thread(running.dump))[running.table_names["USERS_TABLE"]]
            assert any(item["pk"]["S"] == "U#alice" for item in users)
    # The running one is untouched
    assert stack.environment["CONNECTIONS_ENDPOINT"] == stack.http_url


async def test_the_stack_keeps_its_configuration_out_of_the_process_environment(
    shared_aws: EmbeddedAws,
) -> None:
    before = dict(os.environ)
    async with LocalStack(aws=shared_aws) as stack:
        # The functions' configuration is the stack's own: the process holds none of it,
        # only powertools' switches, the same for every stack (messenger_local.runtime)
        changed = {name: value for name, value in os.environ.items() if before.get(name) != value}
        assert changed.items() <= PROCESS_SWITCHES.items()
        assert "CONNECTIONS_ENDPOINT" not in os.environ
        assert stack.environment["CONNECTIONS_ENDPOINT"] == stack.http_url
    assert dict(os.environ) == before


def test_moto_does_not_keep_every_table_copy(shared_aws: EmbeddedAws) -> None:
    """moto tracks every model instance it makes, the table copies TransactWriteItems
    takes included; the embedded server forgets them so a long session does not grow."""
    from moto.core.model_instances import model_data

    dynamodb = shared_aws.client("dynamodb")
    table = "leak-probe"
    dynamodb.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    )
    try:
        for i in range(450):
            dynamodb.transact_write_items(
                TransactItems=[{"Put": {"TableName": table, "Item": {"pk": {"S": f"k{i % 5}"}}}}]
            )
        tables = len(getattr(model_data["dynamodb"]["Table"], "instances_tracked", []))
        # 450 transactions each deep-copied the table: without forgetting, 450+ tables
        # would be tracked; forgetting every 200 requests leaves at most ~200.
        assert tables <= 210
    finally:
        dynamodb.delete_table(TableName=table)
