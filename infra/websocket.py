"""The cell's WebSocket API: its routes, the connect authorizer, the stage, its throttle
and its logs (docs/protocol.md §1-§3).

Routes, handlers and the authorizer's query parameters are the contract's
(`messenger.contract.ROUTES`, `AUTHORIZER`); this module only decides how API Gateway runs
them.
"""

from __future__ import annotations

import json

import jsii
from aws_cdk import Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_logs as logs
from constructs import IConstruct

from infra.config import DeploymentConfig
from infra.functions import Functions
from infra.nag import acknowledge
from messenger.contract import (
    AUTHORIZER,
    GATEWAY_ROUTES,
    INITIAL_STAGE_VARIABLES,
    ROUTE_SELECTION_EXPRESSION,
    ROUTES,
    GatewayRoute,
)

# API Gateway's own name for the route that opens a connection: the only route an
# authorizer can guard. Every later frame travels on the connection it admitted.
CONNECT_ROUTE = "$connect"
# A gateway route has one request template, one integration response and one route
# response: each selected by this static expression, whose value is the key `$default`
# (the backslash keeps API Gateway from reading `$default` as a variable).
STATIC_SELECTION = "\\$default"
DEFAULT_KEY = "$default"
# What a MOCK integration's request template must say for it to answer at all.
MOCK_REQUEST_TEMPLATE = '{"statusCode":200}'


@jsii.implements(apigwv2.IAccessLogSettings)
class _AccessLogs:
    """WebSocketStage takes access log settings as an interface, not a struct."""

    def __init__(self, log_group: logs.ILogGroup) -> None:
        self._destination = apigwv2.LogGroupLogDestination(log_group)

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw.AccessLogFormat:
        # One JSON line per connect, frame and disconnect. No source IP and no user: the
        # connection id ties a line to the functions' logs when someone needs to look.
        return apigw.AccessLogFormat.custom(
            json.dumps(
                {
                    "requestId": "$context.requestId",
                    "time": "$context.requestTimeEpoch",
                    "eventType": "$context.eventType",
                    "routeKey": "$context.routeKey",
                    "connectionId": "$context.connectionId",
                    "status": "$context.status",
                    "integrationStatus": "$context.integrationStatus",
                    "integrationLatency": "$context.integrationLatency",
                    "error": "$context.error.message",
                    "integrationError": "$context.integration.error",
                    "authorizerError": "$context.authorizer.error",
                },
                separators=(",", ":"),
            )
        )


class WebSocketStage:
    """The API and its stage, in the stack's own scope (infra/stack.py says why); `route`
    then puts each route's function behind it.

    Two steps because the functions need the API first: they may post to its
    @connections (`connections_arn`).
    """

    def __init__(self, stack: Stack, *, config: DeploymentConfig) -> None:
        self._stack = stack
        self._config = config
        self.api = apigwv2.WebSocketApi(
            stack,
            "Api",
            api_name=stack.stack_name,
            description="Messenger WebSocket API (docs/protocol.md)",
            route_selection_expression=ROUTE_SELECTION_EXPRESSION,
        )
        self.connections_arn = stack.format_arn(
            service="execute-api",
            resource=self.api.api_id,
            resource_name=f"{config.env}/POST/@connections/*",
        )
        self.close_connections_arn = stack.format_arn(
            service="execute-api",
            resource=self.api.api_id,
            resource_name=f"{config.env}/DELETE/@connections/*",
        )
        self.stage = self._stage()

    def route(self, functions: Functions) -> None:
        """Each route of the contract to its function; `$connect` through the authorizer."""
        authorizer = authorizers.WebSocketLambdaAuthorizer(
            "ConnectAuthorizer",
            functions.authorizer,
            # API Gateway answers 401 itself, without invoking anything, when one is missing.
            identity_source=[
                f"route.request.querystring.{name}" for name in AUTHORIZER.identity_query_params
            ],
        )
        for route in ROUTES:
            api_route = self.api.add_route(
                route.key,
                integration=integrations.WebSocketLambdaIntegration(
                    f"{route.function_name}Integration", functions.routes[route.key]
                ),
                authorizer=authorizer if route.key == CONNECT_ROUTE else None,
                # Two-way: the function's returned body is sent back to the caller.
                return_response=route.two_way,
            )
            # The stage deploys the API as soon as it exists: only once every route is there.
            self.stage.node.add_dependency(api_route)
            if route.key != CONNECT_ROUTE:
                _acknowledge_no_authorizer(api_route)
        for gateway_route in GATEWAY_ROUTES:
            self._answer_in_gateway(gateway_route)

    def _answer_in_gateway(self, gateway_route: GatewayRoute) -> None:
        """A route API Gateway answers itself: a MOCK integration whose response template
        reads the stage's variables. No function runs and nothing is written."""
        name = gateway_route.key[0].upper() + gateway_route.key[1:]
        api_id = self.api.api_id
        integration = apigwv2.CfnIntegration(
            self._stack,
            f"{name}MockIntegration",
            api_id=api_id,
            integration_type="MOCK",
            request_templates={DEFAULT_KEY: MOCK_REQUEST_TEMPLATE},
            template_selection_expression=STATIC_SELECTION,
        )
        integration_response = apigwv2.CfnIntegrationResponse(
            self._stack,
            f"{name}MockIntegrationResponse",
            api_id=api_id,
            integration_id=integration.ref,
            integration_response_key=DEFAULT_KEY,
            response_templates={DEFAULT_KEY: gateway_route.response},
            template_selection_expression=STATIC_SELECTION,
        )
        route = apigwv2.CfnRoute(
            self._stack,
            f"{name}MockRoute",
            api_id=api_id,
            route_key=gateway_route.key,
            authorization_type="NONE",
            target=f"integrations/{integration.ref}",
            # Two-way: the integration response goes back to the caller.
            route_response_selection_expression=DEFAULT_KEY,
        )
        route_response = apigwv2.CfnRouteResponse(
            self._stack,
            f"{name}MockRouteResponse",
            api_id=api_id,
            route_id=route.ref,
            route_response_key=DEFAULT_KEY,
        )
        # Deployed with the stage, so only once the route answers in full.
        self.stage.node.add_dependency(route, route_response, integration_response)
        _acknowledge_no_authorizer(route)

    def _stage(self) -> apigwv2.WebSocketStage:
        access_logs = logs.LogGroup(
            self._stack,
            "AccessLogs",
            retention=self._config.log_retention,
            removal_policy=self._config.removal_policy,
        )
        # Where API Gateway writes the stage's execution logs. Left to API Gateway, the
        # group would be made on the first error, kept forever and outlive the stack.
        execution_logs = logs.LogGroup(
            self._stack,
            "ExecutionLogs",
            log_group_name=f"API-Gateway-Execution-Logs_{self.api.api_id}/{self._config.env}",
            retention=self._config.log_retention,
            removal_policy=self._config.removal_policy,
        )
        # This env's share of API Gateway's account quota, less what its posts need.
        throttle = self._config.stage_throttle(self._stack.region)
        stage = apigwv2.WebSocketStage(
            self._stack,
            "Stage",
            web_socket_api=self.api,
            stage_name=self._config.env,
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(
                rate_limit=throttle.rate,
                burst_limit=throttle.burst,
            ),
            detailed_metrics_enabled=True,
            access_log_settings=_AccessLogs(access_logs),
        )
        # Execution logs for failures only, and never the frames themselves (DataTrace).
        cfn_stage = stage.node.default_child
        assert isinstance(cfn_stage, apigwv2.CfnStage)
        cfn_stage.add_property_override("DefaultRouteSettings.LoggingLevel", "ERROR")
        cfn_stage.add_property_override("DefaultRouteSettings.DataTraceEnabled", False)
        # Read by the gateway routes' templates; the directory function keeps `dv` at the
        # published version (messenger_directory.stages). A deploy that changes the stage
        # puts it back to "0" until the next merge: clients only act on a newer dv.
        cfn_stage.add_property_override("StageVariables", dict(INITIAL_STAGE_VARIABLES))
        stage.node.add_dependency(execution_logs)
        return stage


def _acknowledge_no_authorizer(route: IConstruct) -> None:
    acknowledge(
        route,
        "AwsSolutions-APIG4",
        "WebSocket APIs authorize on $connect only; this route runs on "
        "a connection the connect authorizer admitted, as its user",
    )
