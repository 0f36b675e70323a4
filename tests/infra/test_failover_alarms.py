"""The failover's own parts are watched (issue 21, "Why" 2): the Switch, the Probes and the
Relay functions have Errors alarms on the alarm topic, and so has the directory's
publisher, on a topic of the directory's stack."""

from __future__ import annotations

import json
from typing import Any

import pytest

from messenger.contract import RELAY
from tests.infra.conftest import Synthesized

pytestmark = pytest.mark.infra


def function_of(stack: Synthesized, logical_prefix: str) -> str:
    """The function whose logical id is `logical_prefix` (the messenger's functions keep
    their names), else the one whose id begins with it (a construct's function)."""
    functions = list(stack.resources("AWS::Lambda::Function"))
    if logical_prefix in functions:
        return logical_prefix
    (found,) = (logical_id for logical_id in functions if logical_id.startswith(logical_prefix))
    return found


def errors_alarms_of(stack: Synthesized, function: str) -> list[dict[str, Any]]:
    """The alarms on the function's Lambda `Errors` metric."""
    return [
        alarm["Properties"]
        for alarm in stack.resources("AWS::CloudWatch::Alarm").values()
        if alarm["Properties"].get("MetricName") == "Errors"
        and alarm["Properties"].get("Namespace") == "AWS/Lambda"
        and {"Name": "FunctionName", "Value": {"Ref": function}}
        in alarm["Properties"].get("Dimensions", [])
    ]


def statements_of(stack: Synthesized, function: str) -> list[dict[str, Any]]:
    """The IAM statements of a function's role."""
    properties = stack.resources("AWS::Lambda::Function")[function]["Properties"]
    role = properties["Role"]["Fn::GetAtt"][0]
    return [
        statement
        for policy in stack.resources("AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def topic_of(stack: Synthesized) -> str:
    (topic,) = stack.resources("AWS::SNS::Topic")
    return topic


def assert_alarmed_on_any_error(stack: Synthesized, function: str) -> None:
    # One error in one period is news
    (alarm,) = (
        alarm
        for alarm in errors_alarms_of(stack, function)
        if alarm["EvaluationPeriods"] == 1 and alarm["Threshold"] == 1
    )
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    # Notified both ways, to the stack's one alarm topic
    assert alarm["AlarmActions"] == [{"Ref": topic_of(stack)}]
    assert alarm["OKActions"] == [{"Ref": topic_of(stack)}]


def test_given_auto_failover_then_the_switch_and_the_probe_alarm_on_errors(standby_prod):
    standby = standby_prod.stacks["Messenger-prod-c1-standby"]
    for part in ("FailoverSwitch", "FailoverUserProbe"):
        assert_alarmed_on_any_error(standby, function_of(standby, part))


def test_given_auto_failover_then_the_switchs_own_alarm_tells_the_operator(standby_prod):
    standby = standby_prod.stacks["Messenger-prod-c1-standby"]
    # (the composite of both vantages: tests/infra/test_failover_probe.py)
    (switching,) = (
        alarm["Properties"]
        for logical_id, alarm in standby.resources("AWS::CloudWatch::CompositeAlarm").items()
        if logical_id.startswith("FailoverPrimaryUnreachable")
    )
    assert {"Ref": topic_of(standby)} in switching["AlarmActions"]


@pytest.mark.parametrize("side", ["Messenger-prod-c1", "Messenger-prod-c1-standby"])
def test_given_a_cell_then_each_sides_relay_alarms_on_errors(standby_prod, side):
    stack = standby_prod.stacks[side]
    assert_alarmed_on_any_error(stack, function_of(stack, RELAY.function_name))


def test_given_a_directory_then_its_publisher_alarms_on_errors_to_its_own_topic(
    standby_prod,
):
    directory = standby_prod.directory
    assert_alarmed_on_any_error(directory, function_of(directory, "Publish"))
    assert directory.json["Outputs"]["AlarmTopicArn"]["Value"] == {"Ref": topic_of(directory)}


def test_given_auto_failover_then_the_switch_tells_the_operator_what_it_did(standby_prod):
    # The switch publishes each firing, and each refusal to fire (disarmed), itself: the
    # alarm says the primary looks lost, only the switch knows whether it switched
    standby = standby_prod.stacks["Messenger-prod-c1-standby"]
    switch = function_of(standby, "FailoverSwitch")
    function = standby.resources("AWS::Lambda::Function")[switch]["Properties"]
    variables = function["Environment"]["Variables"]
    assert variables["FAILOVER_ALARM_TOPIC"] == {"Ref": topic_of(standby)}
    statements = statements_of(standby, switch)
    publishes = [s for s in statements if s["Action"] == "sns:Publish"]
    assert [s["Resource"] for s in publishes] == [{"Ref": topic_of(standby)}]


def test_given_auto_failover_then_the_switch_may_set_its_own_stage_only(standby_prod):
    # The switch opens its own stage (its `fenced` variable, which a failback set: pings
    # there answered MOVED, docs/protocol.md §7): UpdateStage on that one stage, no other
    standby = standby_prod.stacks["Messenger-prod-c1-standby"]
    switch = function_of(standby, "FailoverSwitch")
    statements = statements_of(standby, switch)
    (patch,) = [s for s in statements if s["Action"] == "apigateway:PATCH"]
    (api,) = standby.resources("AWS::ApiGatewayV2::Api")
    resource = json.dumps(patch["Resource"])
    assert api in resource and "/stages/prod" in resource and "/apis/*" not in resource
