"""The presence function's settle queue (infra/presence_settle.py): encrypted, TLS only,
a dead-letter queue with an alarm, the presence function's second event source in small
batches that report failures one by one, and no grant on it beyond what each side needs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.presence_settle import DEAD_LETTERS_ALARM_ID, DEAD_LETTERS_ID, QUEUE_ID
from messenger.contract import (
    PRESENCE_SETTLE_BATCH_SIZE,
    PRESENCE_SETTLE_MAX_RECEIVES,
    PRESENCE_SETTLE_RETENTION_SECONDS,
    PRESENCE_SETTLE_VISIBILITY_SECONDS,
    PRESENCE_WORKER,
    Env,
)
from tests.infra.conftest import Synthesized

pytestmark = pytest.mark.infra


def queue_id(synthesized: Synthesized, prefix: str) -> str:
    (logical_id,) = [
        logical_id
        for logical_id in synthesized.resources("AWS::SQS::Queue")
        if logical_id.startswith(prefix) and not logical_id.startswith(f"{prefix}Dead")
    ]
    return logical_id


def statements_on(synthesized: Synthesized, queue: str) -> list[dict[str, Any]]:
    """Every IAM policy statement of the stack whose resource is the queue."""
    return [
        statement
        for policy in synthesized.resources("AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Resource"] == {"Fn::GetAtt": [queue, "Arn"]}
    ]


def actions_of(statement: dict[str, Any]) -> set[str]:
    action = statement["Action"]
    return {action} if isinstance(action, str) else set(action)


def test_the_queues_are_encrypted_refuse_plain_http_and_keep_what_they_hold(
    each_env: Synthesized,
) -> None:
    queues = each_env.resources("AWS::SQS::Queue")
    settle, dead = queue_id(each_env, QUEUE_ID), queue_id(each_env, DEAD_LETTERS_ID)
    assert set(queues) == {settle, dead}
    for logical_id in (settle, dead):
        assert queues[logical_id]["Properties"]["SqsManagedSseEnabled"] is True
    properties = queues[settle]["Properties"]
    assert properties["MessageRetentionPeriod"] == PRESENCE_SETTLE_RETENTION_SECONDS
    assert properties["VisibilityTimeout"] == PRESENCE_SETTLE_VISIBILITY_SECONDS
    assert properties["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [dead, "Arn"]},
        "maxReceiveCount": PRESENCE_SETTLE_MAX_RECEIVES,
    }
    # Retention: a few hours for flaps, two weeks for what failed
    assert properties["MessageRetentionPeriod"] <= 6 * 3600
    assert queues[dead]["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    secured = {
        policy["Properties"]["Queues"][0]["Ref"]
        for policy in each_env.resources("AWS::SQS::QueuePolicy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Effect"] == "Deny"
        and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    }
    assert secured == {settle, dead}


def test_the_queue_is_the_presence_functions_event_source_in_small_batches(
    each_env: Synthesized,
) -> None:
    (mapping,) = each_env.resources("AWS::Lambda::EventSourceMapping").values()
    properties = mapping["Properties"]
    assert properties["EventSourceArn"] == {"Fn::GetAtt": [queue_id(each_env, QUEUE_ID), "Arn"]}
    assert properties["BatchSize"] == PRESENCE_SETTLE_BATCH_SIZE <= 10
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert "MaximumBatchingWindowInSeconds" not in properties  # a flap has waited enough
    # What it invokes is the function API Gateway's routes would: its alias with SnapStart
    invoked = json.dumps(properties["FunctionName"])
    if each_env.config.snap_start:
        (alias,) = [
            logical_id
            for logical_id, alias in each_env.resources("AWS::Lambda::Alias").items()
            if logical_id.startswith(f"{PRESENCE_WORKER.function_name}Live")
        ]
        assert f'{{"Ref": "{alias}"}}' in invoked and invoked.endswith('":live"]]}')
    else:
        assert properties["FunctionName"] == {"Ref": PRESENCE_WORKER.function_name}


def test_only_the_presence_function_sends_and_receives_on_the_queue(
    each_env: Synthesized,
) -> None:
    settle = queue_id(each_env, QUEUE_ID)
    # The presence function sends, with a statement of its own, on this queue only
    (send,) = each_env.policy_statements("SettlePresence")
    assert send["Effect"] == "Allow"
    assert actions_of(send) == {"sqs:SendMessage"}
    assert send["Resource"] == {"Fn::GetAtt": [settle, "Arn"]}
    # And its event source mapping receives and deletes, on this queue only
    statements = statements_on(each_env, settle)
    assert {action for s in statements for action in actions_of(s)} == {
        "sqs:SendMessage",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
    }
    role = each_env.json["Resources"][PRESENCE_WORKER.function_name]["Properties"]["Role"]
    role_id = role["Fn::GetAtt"][0]
    holders = {
        policy["Properties"]["Roles"][0]["Ref"]
        for policy in each_env.resources("AWS::IAM::Policy").values()
        if any(
            s["Resource"] == {"Fn::GetAtt": [settle, "Arn"]}
            for s in policy["Properties"]["PolicyDocument"]["Statement"]
        )
    }
    assert holders == {role_id}
    # And only it learns the queue's URL
    variables = each_env.json["Resources"][PRESENCE_WORKER.function_name]["Properties"][
        "Environment"
    ]["Variables"]
    assert variables[Env.PRESENCE_SETTLE_QUEUE.value] == {"Ref": settle}


def test_a_record_on_the_dead_letter_queue_raises_an_alarm(each_env: Synthesized) -> None:
    dead = queue_id(each_env, DEAD_LETTERS_ID)
    (alarm,) = [
        resource
        for logical_id, resource in each_env.resources("AWS::CloudWatch::Alarm").items()
        if logical_id.startswith(DEAD_LETTERS_ALARM_ID)
    ]
    properties = alarm["Properties"]
    assert properties["Namespace"] == "AWS/SQS"
    assert properties["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert properties["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": [dead, "QueueName"]}}
    ]
    assert properties["Threshold"] == 1
    assert properties["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert properties["AlarmActions"] and properties["OKActions"]
