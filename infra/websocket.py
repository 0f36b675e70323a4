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

from infra.config import DeploymentConfig
from infra.functions import Functions
from infra.nag import acknowledge
from messenger.contract import AUTHORIZER, ROUTE_SELECTION_EXPRESSION, ROUTES

# API Gateway's own name for the route that opens a connection: the only route an
# authorizer can guard. Every later frame travels on the connection it admitted.
CONNECT_ROUTE = "$connect"


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
                acknowledge(
                    api_route,
                    "AwsSolutions-APIG4",
                    "WebSocket APIs authorize on $connect only; this route runs on "
                    "a connection the connect authorizer admitted, as its user",
                )

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
        stage.node.add_dependency(execution_logs)
        return stage
