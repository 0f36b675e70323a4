"""Monitoring: a dashboard for sessions, delivery and queue health; alarms to a topic."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.monitoring import APP_METRICS
from infra.nag import flatten_cfn
from messenger.contract import (
    CONNECT_DENIED,
    METRICS_NAMESPACE,
    TABLES,
    refused_metric,
)
from messenger_protocol.names import ErrorCode
from tests.infra.conftest import ACCOUNT, ALARM_EMAIL, FUNCTION_NAMES, REGION

pytestmark = pytest.mark.infra

FUNCTIONS_SOURCE = Path(__file__).resolve().parents[2] / "functions" / "messenger"


def dashboard_body(synthesized) -> str:
    (dashboard,) = synthesized.resources("AWS::CloudWatch::Dashboard").values()
    return flatten_cfn(dashboard["Properties"]["DashboardBody"])


def alarms(synthesized) -> dict[str, dict]:
    return synthesized.resources("AWS::CloudWatch::Alarm")


def alarm_metrics(alarm: dict) -> list[tuple[str, str]]:
    """(namespace, metric name) of every metric an alarm watches, directly or in math."""
    properties = alarm["Properties"]
    if "MetricName" in properties:
        return [(properties["Namespace"], properties["MetricName"])]
    return [
        (query["MetricStat"]["Metric"]["Namespace"], query["MetricStat"]["Metric"]["MetricName"])
        for query in properties["Metrics"]
        if "MetricStat" in query
    ]


def test_given_the_functions_counters_then_each_one_the_stack_watches_is_still_counted():
    # The counter names live in the functions' code; a rename there must not leave a
    # dashboard line or an alarm watching nothing.
    source = "\n".join(path.read_text() for path in FUNCTIONS_SOURCE.rglob("*.py"))
    for name in APP_METRICS:
        if name.startswith("Refused"):
            # Every refusal is counted under its code (handlers/_runtime.count_refusal): the
            # name must be the counter of a protocol error code, or of a denied handshake.
            codes = [*ErrorCode, CONNECT_DENIED]
            assert name in {refused_metric(code) for code in codes}, name
        else:
            assert f'"{name}"' in source, name


def test_given_the_dashboard_then_it_shows_sessions_delivery_and_queue_health(dev):
    body = dashboard_body(dev)
    for name in APP_METRICS:
        assert f'"{METRICS_NAMESPACE}","{name}"' in body, name
    assert "RUNNING_SUM" in body  # live connections
    for metric in ("Errors", "Throttles", "Duration"):
        assert f'"AWS/Lambda","{metric}"' in body
    for metric in (
        "ClientError",
        "IntegrationError",
        "ExecutionError",
        "IntegrationLatency",
        "ConnectCount",
        "MessageCount",
    ):
        assert f'"AWS/ApiGateway","{metric}"' in body
    for metric in ("ReadThrottleEvents", "WriteThrottleEvents"):
        assert f'"AWS/DynamoDB","{metric}"' in body
    for name in FUNCTION_NAMES:
        assert f"<{name}>" in body, name


def test_given_every_function_then_its_errors_and_throttles_raise_an_alarm(dev):
    watched = {
        (alarm["Properties"]["MetricName"], alarm["Properties"]["Dimensions"][0]["Value"]["Ref"])
        for alarm in alarms(dev).values()
        if alarm["Properties"].get("Namespace") == "AWS/Lambda"
    }
    assert watched == {
        (metric, name) for name in FUNCTION_NAMES for metric in ("Errors", "Throttles")
    }


def test_given_delivery_and_queue_failures_then_they_raise_alarms(dev):
    watched = {metric for alarm in alarms(dev).values() for metric in alarm_metrics(alarm)}
    assert (METRICS_NAMESPACE, "RefusedInternal") in watched
    assert (METRICS_NAMESPACE, "PushesFailed") in watched
    assert ("AWS/ApiGateway", "IntegrationError") in watched
    assert ("AWS/ApiGateway", "ExecutionError") in watched
    throttled_tables = [
        alarm
        for alarm in alarms(dev).values()
        if ("AWS/DynamoDB", "WriteThrottleEvents") in alarm_metrics(alarm)
    ]
    assert len(throttled_tables) == len(TABLES)


def test_given_any_alarm_then_it_notifies_the_alarm_topic_both_ways(each_env):
    (topic,) = each_env.resources("AWS::SNS::Topic")
    for name, alarm in alarms(each_env).items():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic}], name
        assert alarm["Properties"]["OKActions"] == [{"Ref": topic}], name
        assert alarm["Properties"]["TreatMissingData"] == "notBreaching", name


def test_given_the_alarm_topic_then_it_is_encrypted_with_a_rotating_key_and_tls_only(dev):
    (topic,) = dev.resources("AWS::SNS::Topic").values()
    key_id = topic["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key = dev.json["Resources"][key_id]["Properties"]
    assert key["EnableKeyRotation"] is True
    # CloudWatch may use the key, or alarms could not publish to the encrypted topic
    assert any(
        statement.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
        for statement in key["KeyPolicy"]["Statement"]
    )
    (policy,) = dev.resources("AWS::SNS::TopicPolicy").values()
    assert any(
        statement["Effect"] == "Deny"
        and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    )


def test_given_an_alarm_email_then_it_is_subscribed_to_the_topic(prod, dev):
    prod.template.has_resource_properties(
        "AWS::SNS::Subscription",
        {
            "Protocol": "email",
            "Endpoint": ALARM_EMAIL,
        },
    )
    dev.template.resource_count_is("AWS::SNS::Subscription", 0)


def test_given_the_alarm_topic_then_this_accounts_alarms_may_publish_to_it(each_env):
    # An AWS::SNS::TopicPolicy replaces the topic's default policy: without an Allow for
    # CloudWatch every alarm action fails ("... is not authorized to perform: SNS:Publish").
    (topic_id,) = each_env.resources("AWS::SNS::Topic")
    (policy,) = each_env.resources("AWS::SNS::TopicPolicy").values()
    assert policy["Properties"]["Topics"] == [{"Ref": topic_id}]
    allows = [
        statement
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Effect"] == "Allow"
    ]
    (allow,) = allows
    assert allow["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert allow["Action"] == "sns:Publish"
    assert allow["Resource"] == {"Ref": topic_id}
    # Scoped to the alarms of this account and region, as the Knowledge Center shows
    assert allow["Condition"] == {
        "ArnLike": {"aws:SourceArn": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:*"},
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
    }
