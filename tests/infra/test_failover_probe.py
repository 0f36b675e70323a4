"""The switch cannot be triggered by noise or flap (issue 21): a probe from each side's
region measures what users feel (docs/availability.md "The probe"), each vantage has its
own alarm, and only both together (a composite AND) run the switch."""

from __future__ import annotations

from typing import Any

import pytest

from infra.nag import flatten_cfn
from messenger_directory.user_probe import PROBE_NAMESPACE
from tests.infra.conftest import C0_ACCOUNT, Synthesized
from tests.infra.test_failover_alarms import assert_alarmed_on_any_error
from tests.infra.test_permissions import statements_of
from tests.infra.test_standby import artifacts

pytestmark = pytest.mark.infra

STANDBY = "Messenger-prod-c1-standby"
PRIMARY = "Messenger-prod-c1"


def probe_of(stack: Synthesized) -> tuple[str, dict[str, Any]]:
    ((logical_id, function),) = [
        (logical_id, resource["Properties"])
        for logical_id, resource in stack.resources("AWS::Lambda::Function").items()
        if resource["Properties"]["Handler"] == "messenger_directory.probe.probe"
    ]
    return logical_id, function


def vantage_alarms(stack: Synthesized) -> dict[str, tuple[str, dict[str, Any]]]:
    """The probe-metric alarms, by the vantage they watch."""
    found = {}
    for logical_id, resource in stack.resources("AWS::CloudWatch::Alarm").items():
        alarm = resource["Properties"]
        if alarm.get("Namespace") == PROBE_NAMESPACE:
            dimensions = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
            assert dimensions["Cell"] == "c1"
            found[dimensions["Vantage"]] = (logical_id, alarm)
    return found


def test_given_auto_failover_then_each_side_probes_from_its_own_region(standby_prod):
    for name, vantage, region in (
        (PRIMARY, "primary", "eu-west-1"),
        (STANDBY, "standby", "eu-central-1"),
    ):
        stack = standby_prod.stacks[name]
        _, function = probe_of(stack)
        variables = function["Environment"]["Variables"]
        # Both publish into the standby's region, where the composite alarm is
        assert variables["PROBE_VANTAGE"] == vantage
        assert variables["PROBE_METRIC_REGION"] == "eu-central-1"
        assert variables["PROBE_CELL_ID"] == "c1"
        assert variables["PROBE_USER_ID"].startswith(f"probe-c1-{vantage}")
        assert (
            variables["PROBE_DIRECTORY_BUCKET"]
            == f"messenger-prod-directory-{C0_ACCOUNT}-us-east-1"
        )
        # Every minute
        rules = [r["Properties"] for r in stack.resources("AWS::Events::Rule").values()]
        assert any(rule.get("ScheduleExpression") == "rate(1 minute)" for rule in rules)
        # In its own region's stack
        assert artifacts(standby_prod)[name]["environment"].endswith(f"/{region}")


def test_given_auto_failover_then_each_vantage_has_its_own_alarm(standby_prod):
    alarms = vantage_alarms(standby_prod.stacks[STANDBY])
    assert set(alarms) == {"primary", "standby"}
    for _, alarm in alarms.values():
        # Every probe of the minute failed, three minutes of three
        assert (alarm["MetricName"], alarm["Statistic"], alarm["Period"]) == (
            "ProbeSuccess",
            "Maximum",
            60,
        )
        assert alarm["Threshold"] == 1
        assert alarm["ComparisonOperator"] == "LessThanThreshold"
        assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (3, 3)
    # A lost primary region cannot publish: its silence counts; the standby's does not
    assert alarms["primary"][1]["TreatMissingData"] == "breaching"
    assert alarms["standby"][1]["TreatMissingData"] == "notBreaching"


def test_given_auto_failover_then_only_both_vantages_together_run_the_switch(standby_prod):
    stack = standby_prod.stacks[STANDBY]
    alarms = vantage_alarms(stack)
    ((composite_id, composite),) = stack.resources("AWS::CloudWatch::CompositeAlarm").items()
    rule = flatten_cfn(composite["Properties"]["AlarmRule"])
    # ALARM(primary vantage) AND ALARM(standby vantage), nothing else
    assert (
        rule
        == " AND ".join(
            f'ALARM("<{alarms[vantage][0]}.Arn>")' for vantage in ("primary", "standby")
        )
        or rule
        == "("
        + " AND ".join(f'ALARM("<{alarms[vantage][0]}.Arn>")' for vantage in ("primary", "standby"))
        + ")"
    )
    assert " OR " not in rule
    # It, and no single vantage's alarm, is what the switch's rule listens to
    (on_alarm,) = [
        r["Properties"]
        for r in stack.resources("AWS::Events::Rule").values()
        if "EventPattern" in r["Properties"]
    ]
    assert on_alarm["EventPattern"]["resources"] == [{"Fn::GetAtt": [composite_id, "Arn"]}]
    # The operator hears of it both ways
    (topic,) = stack.resources("AWS::SNS::Topic")
    assert composite["Properties"]["AlarmActions"] == [{"Ref": topic}]
    assert composite["Properties"]["OKActions"] == [{"Ref": topic}]


@pytest.mark.parametrize("name", [PRIMARY, STANDBY])
def test_given_auto_failover_then_each_probe_alarms_on_any_error(standby_prod, name):
    stack = standby_prod.stacks[name]
    probe_id, _ = probe_of(stack)
    assert_alarmed_on_any_error(stack, probe_id)


@pytest.mark.parametrize("name", [PRIMARY, STANDBY])
def test_given_auto_failover_then_the_probe_may_do_only_what_it_needs(standby_prod, name):
    stack = standby_prod.stacks[name]
    probe_id, function = probe_of(stack)
    (secret,) = stack.resources("AWS::SecretsManager::Secret")
    vantage = "primary" if name == PRIMARY else "standby"
    grants = {
        (statement.get("Sid"), tuple(sorted(_as_list(statement["Action"])))): (
            [flatten_cfn(r) for r in _as_list(statement["Resource"])],
            statement.get("Condition"),
        )
        for statement in statements_of(stack, probe_id)
    }
    bucket = f"messenger-prod-directory-{C0_ACCOUNT}-us-east-1"
    logs = {key: value for key, value in grants.items() if key[0] == "OwnLogGroup"}
    assert len(logs) == 1
    assert {key: value for key, value in grants.items() if key[0] != "OwnLogGroup"} == {
        # Its own metrics only: PutMetricData names no resource, the namespace bounds it
        ("PublishProbeMetrics", ("cloudwatch:PutMetricData",)): (
            ["*"],
            {"StringEquals": {"cloudwatch:namespace": PROBE_NAMESPACE}},
        ),
        # Its own secret (its probe user's keys)
        ("ReadProbeKey", ("secretsmanager:GetSecretValue",)): ([f"<{secret}>"], None),
        # The cell's entry: the URL users are sent to
        ("ReadCellEntry", ("s3:GetObject",)): (
            [f"arn:aws:s3:::{bucket}/cells/c1.json"],
            {"StringEquals": {"s3:ResourceAccount": C0_ACCOUNT}},
        ),
    }
    assert function["Environment"]["Variables"]["PROBE_SECRET_ARN"] == {"Ref": secret}
    role = stack.json["Resources"][function["Role"]["Fn::GetAtt"][0]]["Properties"]
    assert role["RoleName"] == f"messenger-prod-c1-probe-{vantage}"


def test_given_no_auto_failover_then_nobody_probes(standby_dev):
    for stack in standby_dev.stacks.values():
        assert stack.resources("AWS::SecretsManager::Secret") == {}
        assert vantage_alarms(stack) == {}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
