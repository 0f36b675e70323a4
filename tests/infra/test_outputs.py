"""Outputs: what a deployer needs after `cdk deploy`."""

from __future__ import annotations

import pytest

from infra.nag import flatten_cfn
from messenger.contract import TABLES
from tests.infra.conftest import REGION

pytestmark = pytest.mark.infra


def outputs(synthesized) -> dict[str, str]:
    return {
        name: flatten_cfn(output["Value"]) for name, output in synthesized.json["Outputs"].items()
    }


def test_given_a_deployed_stack_then_it_says_where_to_connect_and_what_it_made(each_env):
    values = outputs(each_env)
    (api,) = each_env.resources("AWS::ApiGatewayV2::Api")
    # The region is known at synth (infra/regions.py checks it), so it is a literal
    host = f"<{api}>.execute-api.{REGION}.<AWS::URLSuffix>/{each_env.config.env}"
    assert values["WebSocketUrl"] == f"wss://{host}"
    assert values["ConnectionsUrl"] == f"https://{host}"
    for spec in TABLES:
        assert values[f"{spec.logical_name}TableName"].startswith(f"<{spec.logical_name}")
    (dashboard,) = each_env.resources("AWS::CloudWatch::Dashboard")
    assert values["DashboardName"] == f"<{dashboard}>"
    assert values["DashboardUrl"].endswith(f"#dashboards/dashboard/<{dashboard}>")
    (topic,) = each_env.resources("AWS::SNS::Topic")
    assert values["AlarmTopicArn"] == f"<{topic}>"
