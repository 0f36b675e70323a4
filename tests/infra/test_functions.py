"""The functions: one per route plus the authorizer, arm64, traced, configured from the contract."""

from __future__ import annotations

import json

import pytest

from infra import bundling
from infra.app import build_app
from messenger.contract import (
    METRICS_NAMESPACE,
    SERVICE_NAME,
    TABLES,
    Access,
    Env,
)
from messenger_protocol.names import PushPlatform
from tests.infra.conftest import (
    APNS_APP,
    FUNCTIONS,
    GCM_APP,
    GCM_PARAMETER,
    NO_BUNDLING,
    PROD_CONTEXT,
    ssm_lookup,
)

pytestmark = pytest.mark.infra

PUSH_ENV = {Env[f"PUSH_APP_{platform}"].value for platform in PushPlatform}


def test_given_the_contract_then_there_is_one_function_per_route_the_authorizer_and_workers(
    each_env,
):
    functions = each_env.resources("AWS::Lambda::Function")
    assert sorted(functions) == sorted(name for name, _ in FUNCTIONS)


def test_given_any_function_then_it_runs_arm64_on_the_newest_python_and_is_traced(each_env):
    for name, function in each_env.resources("AWS::Lambda::Function").items():
        properties = function["Properties"]
        assert properties["Runtime"] == bundling.RUNTIME.name, name
        assert properties["Architectures"] == ["arm64"], name
        assert properties["TracingConfig"] == {"Mode": "Active"}, name
        assert properties["MemorySize"] == each_env.config.memory_mb, name
        # Never past API Gateway's 29 s integration timeout.
        assert properties["Timeout"] == 29, name


def test_given_all_functions_then_they_share_one_code_asset(each_env):
    codes = {
        str(function["Properties"]["Code"])
        for function in each_env.resources("AWS::Lambda::Function").values()
    }
    assert len(codes) == 1


def test_given_any_function_then_it_logs_to_its_own_log_group_with_retention(each_env):
    log_groups = set()
    for name, function in each_env.resources("AWS::Lambda::Function").items():
        log_group_id = function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        log_group = each_env.json["Resources"][log_group_id]
        assert log_group["Properties"]["RetentionInDays"] == (each_env.log_retention_days), name
        log_groups.add(log_group_id)
    assert len(log_groups) == len(FUNCTIONS)


@pytest.mark.parametrize(("name", "access"), FUNCTIONS, ids=[name for name, _ in FUNCTIONS])
def test_given_a_function_then_its_environment_comes_from_the_contract(prod, name, access):
    variables = prod.json["Resources"][name]["Properties"]["Environment"]["Variables"]

    # Every function finds every table (settings require them) and the message TTL
    for spec in TABLES:
        table_id = variables[spec.env.value]["Ref"]
        assert prod.json["Resources"][table_id]["Type"] == "AWS::DynamoDB::GlobalTable"
    assert variables[Env.MESSAGE_TTL_SECONDS.value] == str(prod.config.message_ttl_seconds)
    assert variables[Env.REGISTRATIONS_PER_IP_PER_HOUR.value] == str(
        prod.config.registrations_per_ip_per_hour
    )
    # Only functions that announce presence changes learn where to
    assert (Env.PRESENCE_FUNCTION.value in variables) == (Access.ANNOUNCE_PRESENCE in access)
    # Only the function that holds flaps back learns where its settle queue is
    assert (Env.PRESENCE_SETTLE_QUEUE.value in variables) == (Access.SETTLE_PRESENCE in access)
    # No cell epoch named: the functions name the generation after their region
    assert Env.CELL_EPOCH.value not in variables
    assert variables["POWERTOOLS_SERVICE_NAME"] == SERVICE_NAME
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == METRICS_NAMESPACE

    # Only functions that push learn the platform applications, and only those set up
    pushed = {key for key in variables if key in PUSH_ENV}
    if Access.PUSH in access:
        assert pushed == {Env.PUSH_APP_APNS.value, Env.PUSH_APP_GCM.value}
        assert variables[Env.PUSH_APP_APNS.value] == APNS_APP
        # An SSM parameter is looked up at synth time: its value is in the template (and
        # in the version's hash), not left for CloudFormation to resolve
        assert variables[Env.PUSH_APP_GCM.value] == GCM_APP
        assert GCM_PARAMETER not in json.dumps(prod.json)
    else:
        assert pushed == set()


def test_given_no_push_platform_then_no_function_learns_one(dev):
    for name, function in dev.resources("AWS::Lambda::Function").items():
        variables = function["Properties"]["Environment"]["Variables"]
        assert not PUSH_ENV & set(variables), name


def test_given_an_ssm_push_source_not_looked_up_yet_then_the_cli_is_asked_to_look_it_up(
    tmp_path,
):
    # Given a first synthesis, before the CLI has looked the parameter up
    context = {key: value for key, value in PROD_CONTEXT.items() if not key.startswith("ssm:")}
    build_app({**NO_BUNDLING, **context}, outdir=str(tmp_path)).synth()

    # Then it gets through validation, and tells the CLI what to look up (the CLI then
    # synthesizes again with the value, and caches it in cdk.context.json)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert [entry["key"] for entry in manifest["missing"]] == list(ssm_lookup(GCM_PARAMETER, ""))
