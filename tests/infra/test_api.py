"""The WebSocket API: routes from the contract's route table, the authorizer, the stage."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import App
from aws_cdk.assertions import Match

from infra.config import Target
from infra.logging_role import STACK_NAME as LOGGING_STACK_NAME
from infra.logging_role import api_gateway_logging_stack
from infra.nag import flatten_cfn
from infra.websocket import CONNECT_ROUTE
from messenger.contract import (
    AUTHORIZER,
    GATEWAY_ROUTES,
    INITIAL_STAGE_VARIABLES,
    ROUTE_SELECTION_EXPRESSION,
    ROUTES,
)
from tests.infra.conftest import Synthesized

pytestmark = pytest.mark.infra


def _refs(node: Any) -> list[str]:
    """Every resource a template value points at (Ref and Fn::GetAtt; no pseudo parameters)."""
    if isinstance(node, dict):
        if "Ref" in node:
            return [] if node["Ref"].startswith("AWS::") else [node["Ref"]]
        if "Fn::GetAtt" in node:
            return [node["Fn::GetAtt"][0]]
        return [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def routes_by_key(synthesized: Synthesized) -> dict[str, tuple[str, dict[str, Any]]]:
    return {
        resource["Properties"]["RouteKey"]: (logical_id, resource["Properties"])
        for logical_id, resource in synthesized.resources("AWS::ApiGatewayV2::Route").items()
    }


def test_given_the_route_table_when_synthesized_then_the_api_has_exactly_its_routes(dev):
    keys = {route.key for route in ROUTES} | {route.key for route in GATEWAY_ROUTES}
    assert set(routes_by_key(dev)) == keys
    dev.template.has_resource_properties(
        "AWS::ApiGatewayV2::Api",
        {
            "ProtocolType": "WEBSOCKET",
            "RouteSelectionExpression": ROUTE_SELECTION_EXPRESSION,
        },
    )


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.key)
def test_given_a_route_then_a_lambda_proxy_integration_runs_its_own_function(dev, route):
    # Given the route's integration
    _, properties = routes_by_key(dev)[route.key]
    (integration_id,) = _refs(properties["Target"])
    integration = dev.json["Resources"][integration_id]["Properties"]

    # Then it proxies to the function named in the contract, running the contract's handler
    assert integration["IntegrationType"] == "AWS_PROXY"
    assert _refs(integration["IntegrationUri"]) == [route.function_name]
    function = dev.json["Resources"][route.function_name]
    assert function["Type"] == "AWS::Lambda::Function"
    assert function["Properties"]["Handler"] == route.handler


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.key)
def test_given_a_two_way_route_then_the_function_answers_through_a_route_response(dev, route):
    route_id, properties = routes_by_key(dev)[route.key]
    responses = [
        resource["Properties"]
        for resource in dev.resources("AWS::ApiGatewayV2::RouteResponse").values()
        if resource["Properties"]["RouteId"] == {"Ref": route_id}
    ]
    if route.two_way:
        assert [r["RouteResponseKey"] for r in responses] == ["$default"]
        assert properties["RouteResponseSelectionExpression"] == "$default"
    else:
        assert responses == []
        assert "RouteResponseSelectionExpression" not in properties


@pytest.mark.parametrize("route", GATEWAY_ROUTES, ids=lambda route: route.key)
def test_given_a_gateway_route_then_api_gateway_answers_it_from_the_stage_with_no_function(
    dev, route
):
    # Given the route's integration
    route_id, properties = routes_by_key(dev)[route.key]
    (integration_id,) = _refs(properties["Target"])
    integration = dev.json["Resources"][integration_id]["Properties"]
    # Then it is a MOCK: nothing is invoked, so no Lambda permission names it either
    assert integration["IntegrationType"] == "MOCK"
    assert "IntegrationUri" not in integration
    assert integration["RequestTemplates"] == {"$default": '{"statusCode":200}'}
    assert integration["TemplateSelectionExpression"] == "\\$default"
    # And its one integration response is the contract's template over the stage variables
    (response,) = [
        resource["Properties"]
        for resource in dev.resources("AWS::ApiGatewayV2::IntegrationResponse").values()
        if resource["Properties"]["IntegrationId"] == {"Ref": integration_id}
    ]
    assert response["IntegrationResponseKey"] == "$default"
    assert response["ResponseTemplates"] == {"$default": route.response}
    assert "$stageVariables.dv" in route.response
    # (a `ping` on a side a switch fenced is answered MOVED: docs/protocol.md §7)
    assert '#if($stageVariables.fenced == "1")' in route.response
    # And it goes back to the caller through a route response
    (route_response,) = [
        resource["Properties"]
        for resource in dev.resources("AWS::ApiGatewayV2::RouteResponse").values()
        if resource["Properties"]["RouteId"] == {"Ref": route_id}
    ]
    assert route_response["RouteResponseKey"] == "$default"
    assert properties["RouteResponseSelectionExpression"] == "$default"
    # And the stage starts with the variables the template reads
    (stage,) = dev.resources("AWS::ApiGatewayV2::Stage").values()
    assert stage["Properties"]["StageVariables"] == INITIAL_STAGE_VARIABLES
    for permission in dev.resources("AWS::Lambda::Permission").values():
        assert integration_id not in _refs(permission["Properties"])


def test_given_connect_then_the_request_authorizer_guards_it_with_the_query_identity(dev):
    # Given the one authorizer of the API
    ((authorizer_id, authorizer),) = dev.resources("AWS::ApiGatewayV2::Authorizer").items()

    # Then API Gateway requires every identity query parameter of docs/protocol.md §1 first
    properties = authorizer["Properties"]
    assert properties["AuthorizerType"] == "REQUEST"
    assert properties["IdentitySource"] == [
        f"route.request.querystring.{name}" for name in AUTHORIZER.identity_query_params
    ]
    assert _refs(properties["AuthorizerUri"]) == [AUTHORIZER.function_name]
    assert dev.json["Resources"][AUTHORIZER.function_name]["Properties"]["Handler"] == (
        AUTHORIZER.handler
    )
    # And only $connect uses it: every other frame rides the admitted connection
    for key, (_, route) in routes_by_key(dev).items():
        if key == CONNECT_ROUTE:
            assert route["AuthorizationType"] == "CUSTOM"
            assert route["AuthorizerId"] == {"Ref": authorizer_id}
        else:
            assert route["AuthorizationType"] == "NONE"


def test_given_api_gateway_may_invoke_exactly_the_route_functions_and_the_authorizer(dev):
    permitted = sorted(
        _refs(resource["Properties"]["FunctionName"])[0]
        for resource in dev.resources("AWS::Lambda::Permission").values()
        if resource["Properties"]["Principal"] == "apigateway.amazonaws.com"
    )
    assert permitted == sorted([AUTHORIZER.function_name, *(r.function_name for r in ROUTES)])


# API Gateway quotas: 10,000 requests/s with a burst of 5,000 per account and region, in
# us-east-1 (2,500 and 1,250 in 13 newer regions), shared by every API's inbound frames
# and by @connections posts.
ACCOUNT_RATE, ACCOUNT_BURST = 10_000, 5_000
# bench calls: a message's life is 3 frames (sendMessage, the recipient's ack, the
# sender's ack of the receipt) and 2 posts (the message, the receipt).
FRAMES_PER_MESSAGE, POSTS_PER_MESSAGE = 3, 2


def stage_throttle(synthesized: Synthesized) -> tuple[float, float]:
    (stage,) = synthesized.resources("AWS::ApiGatewayV2::Stage").values()
    settings = stage["Properties"]["DefaultRouteSettings"]
    return settings["ThrottlingRateLimit"], settings["ThrottlingBurstLimit"]


def account_requests(frames: float) -> float:
    """What `frames` admitted by a stage cost the account: themselves and their posts."""
    return frames * (FRAMES_PER_MESSAGE + POSTS_PER_MESSAGE) / FRAMES_PER_MESSAGE


def test_given_dev_and_prod_in_one_account_then_their_frames_and_posts_fit_its_quota(dev, prod):
    (dev_rate, dev_burst), (prod_rate, prod_burst) = stage_throttle(dev), stage_throttle(prod)
    assert account_requests(dev_rate) + account_requests(prod_rate) <= ACCOUNT_RATE
    assert account_requests(dev_burst) + account_requests(prod_burst) <= ACCOUNT_BURST
    # prod gets most of it
    assert prod_rate > 10 * dev_rate


def test_given_an_environment_then_the_stage_throttles_logs_and_measures(each_env):
    rate, burst = stage_throttle(each_env)
    each_env.template.has_resource_properties(
        "AWS::ApiGatewayV2::Stage",
        {
            "StageName": each_env.config.env,
            "AutoDeploy": True,
            "DefaultRouteSettings": {
                "ThrottlingRateLimit": rate,
                "ThrottlingBurstLimit": burst,
                "DetailedMetricsEnabled": True,
                "LoggingLevel": "ERROR",
                "DataTraceEnabled": False,
            },
            "AccessLogSettings": {
                "DestinationArn": {"Fn::GetAtt": [Match.any_value(), "Arn"]},
                "Format": Match.string_like_regexp(r"\$context\.requestId"),
            },
        },
    )
    assert rate > 0 and burst > 0


def test_given_execution_logging_then_its_log_group_is_the_stacks_with_retention(each_env):
    # API Gateway writes execution logs to API-Gateway-Execution-Logs_{apiId}/{stage}; made
    # by API Gateway itself, that group would keep them forever and outlive the stack.
    (api_id,) = each_env.resources("AWS::ApiGatewayV2::Api")
    (stage,) = each_env.resources("AWS::ApiGatewayV2::Stage").values()
    wanted = f"API-Gateway-Execution-Logs_<{api_id}>/{each_env.config.env}"
    (log_group_id,) = [
        logical_id
        for logical_id, group in each_env.resources("AWS::Logs::LogGroup").items()
        if flatten_cfn(group["Properties"].get("LogGroupName", "")) == wanted
    ]
    log_group = each_env.json["Resources"][log_group_id]
    assert log_group["Properties"]["RetentionInDays"] == each_env.log_retention_days
    assert log_group["DeletionPolicy"] == ("Retain" if each_env.config.env == "prod" else "Delete")
    # It exists before the stage can log into it
    assert log_group_id in stage["DependsOn"]


def test_given_access_logs_then_they_go_to_a_log_group_with_retention(each_env):
    (stage,) = each_env.resources("AWS::ApiGatewayV2::Stage").values()
    log_group_id = _refs(stage["Properties"]["AccessLogSettings"]["DestinationArn"])[0]
    log_group = each_env.json["Resources"][log_group_id]
    assert log_group["Type"] == "AWS::Logs::LogGroup"
    assert log_group["Properties"]["RetentionInDays"] == each_env.log_retention_days


def api_gateway_accounts(synthesized: Synthesized) -> list[tuple[str, dict, dict]]:
    """(stack, template, resource) of every AWS::ApiGateway::Account the app makes."""
    return [
        (stack, template, resource)
        for stack, template in synthesized.templates().items()
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::ApiGateway::Account"
    ]


def test_given_a_fresh_account_then_the_account_settings_wait_for_an_api_gateway_resource(
    each_env,
):
    # CloudFormation: where no API Gateway resource was ever created, the Account resource
    # must depend on one (aws-cdk#2194: "The role ARN does not have required permissions").
    ((_, template, account),) = api_gateway_accounts(each_env)
    depends_on = account.get("DependsOn", [])
    assert any(
        template["Resources"][logical_id]["Type"].startswith("AWS::ApiGateway")
        for logical_id in depends_on
    ), depends_on
    (role_id,) = _refs(account["Properties"]["CloudWatchRoleArn"])
    role = template["Resources"][role_id]["Properties"]
    (statement,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "apigateway.amazonaws.com"}


def test_given_an_app_stack_then_it_leaves_the_account_wide_logging_role_alone(each_env):
    # One role per account and region serves every API there: no app stack may replace it
    # or leave a retained copy behind when it is destroyed.
    assert each_env.resources("AWS::ApiGateway::Account") == {}
    for role in each_env.resources("AWS::IAM::Role").values():
        (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert statement["Principal"] != {"Service": "apigateway.amazonaws.com"}


def test_given_a_fresh_account_then_the_logging_role_stack_deploys_before_the_app_stack(
    each_env,
):
    # A stage that logs cannot be created before the region has API Gateway's role.
    ((stack, _, _),) = api_gateway_accounts(each_env)
    assert stack != each_env.config.stack_name
    assert stack in each_env.dependencies()


def test_given_auto_deploy_then_the_stage_comes_after_every_route_and_its_response(dev):
    # The stage deploys the API when it is created; a route made later would miss it.
    (stage,) = dev.resources("AWS::ApiGatewayV2::Stage").values()
    routes = dev.resources("AWS::ApiGatewayV2::Route")
    responses = dev.resources("AWS::ApiGatewayV2::RouteResponse")
    assert set(routes) | set(responses) <= set(stage["DependsOn"])


def test_given_several_app_stacks_in_one_account_and_region_then_one_logging_stack_serves_them():
    # Given one app with stacks in two accounts and regions (cells, environments)
    app = App()
    here = Target(region="eu-west-1", account="111111111111")
    there = Target(region="us-east-1", account="222222222222")

    # When each app stack asks for its logging-role stack
    first, again = api_gateway_logging_stack(app, here), api_gateway_logging_stack(app, here)
    other = api_gateway_logging_stack(app, there)

    # Then one per account and region, each under the one stack name of its region
    assert first is again
    assert other is not first
    assert {first.stack_name, other.stack_name} == {LOGGING_STACK_NAME}
    assert (first.region, other.region) == ("eu-west-1", "us-east-1")
