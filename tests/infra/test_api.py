"""The WebSocket API: routes from the contract's route table, the authorizer, the stage."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Match

from infra.stack import CONNECT_ROUTE
from messenger.contract import AUTHORIZER, ROUTE_SELECTION_EXPRESSION, ROUTES
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
    assert set(routes_by_key(dev)) == {route.key for route in ROUTES}
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


def test_given_connect_then_the_request_authorizer_guards_it_with_the_query_identity(dev):
    # Given the one authorizer of the API
    ((authorizer_id, authorizer),) = dev.resources("AWS::ApiGatewayV2::Authorizer").items()

    # Then API Gateway requires every identity query parameter of PROTOCOL.md §1 first
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


@pytest.mark.parametrize(("env", "rate", "burst"), [("dev", 100, 200), ("prod", 10_000, 5_000)])
def test_given_an_environment_then_the_stage_throttles_logs_and_measures(request, env, rate, burst):
    synthesized: Synthesized = request.getfixturevalue(env)
    synthesized.template.has_resource_properties(
        "AWS::ApiGatewayV2::Stage",
        {
            "StageName": env,
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


def test_given_access_logs_then_they_go_to_a_log_group_with_retention(each_env):
    (stage,) = each_env.resources("AWS::ApiGatewayV2::Stage").values()
    log_group_id = _refs(stage["Properties"]["AccessLogSettings"]["DestinationArn"])[0]
    log_group = each_env.json["Resources"][log_group_id]
    assert log_group["Type"] == "AWS::Logs::LogGroup"
    assert log_group["Properties"]["RetentionInDays"] == each_env.log_retention_days


def test_given_a_fresh_account_then_api_gateway_gets_its_logging_role_before_the_stage(dev):
    # Without an account-level CloudWatch role, creating a logging WebSocket stage fails.
    (stage,) = dev.resources("AWS::ApiGatewayV2::Stage").values()
    ((account_id, account),) = dev.resources("AWS::ApiGateway::Account").items()
    assert account_id in stage["DependsOn"]
    (role_id,) = _refs(account["Properties"]["CloudWatchRoleArn"])
    # Every API in the region logs through it: it outlives the stack.
    assert dev.json["Resources"][role_id]["DeletionPolicy"] == "Retain"


def test_given_auto_deploy_then_the_stage_comes_after_every_route_and_its_response(dev):
    # The stage deploys the API when it is created; a route made later would miss it.
    (stage,) = dev.resources("AWS::ApiGatewayV2::Stage").values()
    routes = dev.resources("AWS::ApiGatewayV2::Route")
    responses = dev.resources("AWS::ApiGatewayV2::RouteResponse")
    assert set(routes) | set(responses) <= set(stage["DependsOn"])
