"""DynamoDB: the contract's tables, on demand, TTL, PITR, encrypted, kept or not per env."""

from __future__ import annotations

from typing import Any

import pytest

from messenger.contract import QUEUE_TABLE, TABLES, TableSpec

pytestmark = pytest.mark.infra


def table(synthesized, spec: TableSpec) -> dict[str, Any]:
    (found,) = [
        resource
        for logical_id, resource in synthesized.resources("AWS::DynamoDB::GlobalTable").items()
        if logical_id.startswith(spec.logical_name)
    ]
    return found


def key_schema(partition_key: str, sort_key: str | None) -> list[dict[str, str]]:
    schema = [{"AttributeName": partition_key, "KeyType": "HASH"}]
    if sort_key:
        schema.append({"AttributeName": sort_key, "KeyType": "RANGE"})
    return schema


@pytest.mark.parametrize("spec", TABLES, ids=lambda spec: spec.logical_name)
def test_given_a_contract_table_then_keys_and_indexes_are_the_contracts(dev, spec):
    properties = table(dev, spec)["Properties"]
    assert properties["KeySchema"] == key_schema(spec.partition_key, spec.sort_key)
    assert {
        a["AttributeName"]: a["AttributeType"] for a in properties["AttributeDefinitions"]
    } == dict.fromkeys(spec.key_attributes(), "S")
    assert [
        (i["IndexName"], i["KeySchema"], i["Projection"]["ProjectionType"])
        for i in properties.get("GlobalSecondaryIndexes", [])
    ] == [
        (i.name, key_schema(i.partition_key, i.sort_key), i.projection) for i in spec.global_indexes
    ]
    assert [
        (i["IndexName"], i["KeySchema"], i["Projection"]["ProjectionType"])
        for i in properties.get("LocalSecondaryIndexes", [])
    ] == [
        (i.name, key_schema(i.partition_key, i.sort_key), i.projection) for i in spec.local_indexes
    ]


@pytest.mark.parametrize("spec", TABLES, ids=lambda spec: spec.logical_name)
def test_given_a_contract_table_then_it_is_on_demand_expiring_recoverable_and_encrypted(
    each_env, spec
):
    properties = table(each_env, spec)["Properties"]
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["TimeToLiveSpecification"] == {
        "AttributeName": spec.ttl_attribute,
        "Enabled": True,
    }
    (replica,) = properties["Replicas"]
    assert replica["PointInTimeRecoverySpecification"] == {
        "PointInTimeRecoveryEnabled": True,
        "RecoveryPeriodInDays": spec.recovery_days,
    }
    # KMS without a key of ours: the AWS-managed aws/dynamodb key
    assert properties["SSESpecification"] == {"SSEEnabled": True, "SSEType": "KMS"}
    assert "KMSMasterKeyId" not in str(properties)


@pytest.mark.parametrize(
    ("env", "policy", "protected"), [("dev", "Delete", False), ("prod", "Retain", True)]
)
def test_given_an_environment_then_tables_are_kept_or_destroyed_with_the_stack(
    request, env, policy, protected
):
    synthesized = request.getfixturevalue(env)
    for spec in TABLES:
        resource = table(synthesized, spec)
        assert resource["DeletionPolicy"] == policy
        assert resource["UpdateReplacePolicy"] == policy
        (replica,) = resource["Properties"]["Replicas"]
        assert replica["DeletionProtectionEnabled"] is protected


def test_given_the_queue_then_its_backups_keep_an_acknowledged_message_one_day_at_most(prod):
    # Nothing about a message stays once it is acknowledged (docs/privacy.md): point-in-time
    # recovery would otherwise keep every deleted item for 35 days.
    (replica,) = table(prod, QUEUE_TABLE)["Properties"]["Replicas"]
    assert replica["PointInTimeRecoverySpecification"]["RecoveryPeriodInDays"] == 1
