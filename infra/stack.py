"""The messenger on AWS: one WebSocket API, one function per route, two tables, push.

Everything the functions and the emulator also know (routes, handlers, the authorizer's
query parameters, tables, indexes, environment variable names, what each function may
touch) is read from `messenger.contract`; this module only decides how AWS runs it.

A cell (docs/protocol.md §6) is this same stack with a `CellPlacement`: its functions learn the
cell map from their environment, and it adds the `Relay` that peers invoke and its entry
in the directory (infra/cells.py, infra/directory.py). A cell with a standby makes its
tables global (a replica in the standby's region), and its standby is this stack again,
on the replicas, without a directory entry of its own: a failover switch writes it
(infra/failover.py, infra/failover_automation.py).
"""

from __future__ import annotations

import json

import jsii
from aws_cdk import (
    Acknowledgment,
    ArnFormat,
    Aws,
    CfnOutput,
    Environment,
    Stack,
    Validations,
)
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_ssm as ssm
from constructs import Construct, IConstruct

from infra import bundling
from infra.cells import CellPlacement
from infra.config import DeploymentConfig, Target
from infra.directory import DirectoryEntry
from infra.failover_automation import FailoverAutomation
from infra.monitoring import Monitoring
from infra.nag import acknowledge, flattened
from infra.permissions import Targets, endpoint_arns_of, statements_for_all
from infra.regions import (
    SNAPSTART_UNKNOWN_TO_CDK_VALIDATOR,
    check_push_apps,
    check_snap_start,
)
from infra.versions import deploy_time_inputs
from infra.web import WebApp
from messenger.contract import (
    AUTHORIZER,
    METRICS_NAMESPACE,
    PRESENCE_WORKER,
    RELAY,
    ROUTE_SELECTION_EXPRESSION,
    ROUTES,
    SERVICE_NAME,
    TABLES,
    USERS_TABLE,
    WORKERS,
    Access,
    Env,
    TableSpec,
)

# API Gateway's own name for the route that opens a connection: the only route an
# authorizer can guard. Every later frame travels on the connection it admitted.
CONNECT_ROUTE = "$connect"
LAMBDA_PRINCIPAL = "lambda.amazonaws.com"
# All a peer cell's functions may do with this cell's Relay.
INVOKE_ACTION = "lambda:InvokeFunction"
# With SnapStart (prod), API Gateway invokes this alias of the published version.
LIVE_ALIAS = "live"
# What an SSM context lookup returns before the CLI has made it (CDK's dummy value).
LOOKUP_PLACEHOLDER_PREFIX = "dummy-value-for-"


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


class MessengerStack(Stack):
    """The messenger in one account and region: the whole deployment, or one `cell` of it."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        target: Target,
        cell: CellPlacement | None = None,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            env=Environment(account=target.account, region=target.region),
            description=f"Serverless messenger ({config.env}): WebSocket API, Lambda, "
            "DynamoDB, SNS mobile push",
        )
        self.config = config
        self.target = target
        self.cell = cell
        check_snap_start(target.region, config.snap_start)
        self.tables = {spec: self._table(spec) for spec in TABLES}
        self.push_apps = self._push_apps()
        check_push_apps(target.region, self.push_apps)

        self.api = apigwv2.WebSocketApi(
            self,
            "Api",
            api_name=self.stack_name,
            description="Messenger WebSocket API (docs/protocol.md)",
            route_selection_expression=ROUTE_SELECTION_EXPRESSION,
        )
        targets = Targets(
            tables=self.tables,
            connections_arn=self.format_arn(
                service="execute-api",
                resource=self.api.api_id,
                resource_name=f"{config.env}/POST/@connections/*",
            ),
            push_apps=tuple(self.push_apps.values()),
            relays=tuple(arn for arns in cell.peer_relays().values() for arn in arns)
            if cell
            else (),
            presence_function_arn=self.format_arn(
                service="lambda",
                resource="function",
                resource_name=self._invocable_name(PRESENCE_WORKER.function_name),
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            ),
        )

        # One asset for all functions: the same code, uploaded once.
        code = bundling.function_code()
        self.functions: dict[str, lambda_.Function] = {}
        for worker in WORKERS:
            self._function(
                worker.function_name,
                worker.handler,
                worker.access,
                code,
                targets,
                function_name=self.worker_name(worker.function_name),
            )
        authorizer_function = self._function(
            AUTHORIZER.function_name, AUTHORIZER.handler, AUTHORIZER.access, code, targets
        )
        authorizer = authorizers.WebSocketLambdaAuthorizer(
            "ConnectAuthorizer",
            authorizer_function,
            # API Gateway answers 401 itself, without invoking anything, when one is missing.
            identity_source=[
                f"route.request.querystring.{name}" for name in AUTHORIZER.identity_query_params
            ],
        )
        api_routes = []
        for route in ROUTES:
            function = self._function(
                route.function_name, route.handler, route.access, code, targets
            )
            api_route = self.api.add_route(
                route.key,
                integration=integrations.WebSocketLambdaIntegration(
                    f"{route.function_name}Integration", function
                ),
                authorizer=authorizer if route.key == CONNECT_ROUTE else None,
                # Two-way: the function's returned body is sent back to the caller.
                return_response=route.two_way,
            )
            api_routes.append(api_route)
            if route.key != CONNECT_ROUTE:
                acknowledge(
                    api_route,
                    "AwsSolutions-APIG4",
                    "WebSocket APIs authorize on $connect only; this route runs on "
                    "a connection the connect authorizer admitted, as its user",
                )

        self.stage = self._stage()
        # The stage deploys the API as soon as it exists: only once every route is there.
        for api_route in api_routes:
            self.stage.node.add_dependency(api_route)
        if cell is not None:
            self._relay(cell, code, targets)
        if cell is not None and not cell.standby:
            entry = DirectoryEntry(
                self,
                "DirectoryEntry",
                config=config,
                cell_id=cell.cell_id,
                shard_map=cell.cells.shard_map,
                location=cell.directory,
                url=self.stage.url,
            )
            # Clients are sent to the stage only once it exists.
            entry.node.add_dependency(self.stage)
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            env=config.env,
            api=self.api,
            stage=self.stage,
            functions=self.functions,
            tables={spec.logical_name: table for spec, table in self.tables.items()},
            removal_policy=config.removal_policy,
            alarm_email=config.alarm_email,
        )
        # A deployment of cells has one web app, on the directory's distribution: a page
        # of a cell's own would connect to that cell only, wrong for users homed elsewhere.
        self.web = (
            WebApp(
                self,
                "Web",
                websocket_url=self.stage.url,
                api_id=self.api.api_id,
                removal_policy=config.removal_policy,
            )
            if cell is None
            else None
        )
        if cell is not None and cell.standby and config.auto_failover:
            FailoverAutomation(
                self,
                "Failover",
                config=config,
                placement=cell,
                users_table=self.tables[USERS_TABLE],
                url=self.stage.url,
            )
        self._outputs()

    # --- data ---------------------------------------------------------------------

    def _table(self, spec: TableSpec) -> dynamodb.ITableV2:
        """The table; with a standby, a global table named for it (or, in the standby's
        stack, the replica in this region of the primary's)."""
        name = self.cell.table_name(spec) if self.cell else None
        if self.cell is not None and self.cell.standby:
            assert name is not None
            return dynamodb.TableV2.from_table_name(self, spec.logical_name, name)
        standby = self.cell.cell.standby if self.cell else None

        def key(name: str) -> dynamodb.Attribute:
            # Every key attribute of the contract's tables is a string.
            return dynamodb.Attribute(name=name, type=dynamodb.AttributeType.STRING)

        def projection(name: str) -> dynamodb.ProjectionType:
            return dynamodb.ProjectionType[name]

        for index in spec.local_indexes:
            assert index.partition_key == spec.partition_key, "an LSI shares the table's pk"
        return dynamodb.TableV2(
            self,
            spec.logical_name,
            table_name=name,
            # Asynchronous, last writer wins (docs/availability.md); the replica has the
            # table's settings, point-in-time recovery and deletion protection included.
            replicas=[dynamodb.ReplicaTableProps(region=standby.region)] if standby else None,
            partition_key=key(spec.partition_key),
            sort_key=key(spec.sort_key),
            # On demand: no capacity to plan, pay per request, nothing when idle.
            billing=dynamodb.Billing.on_demand(),
            time_to_live_attribute=spec.ttl_attribute,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True, recovery_period_in_days=spec.recovery_days
            ),
            encryption=dynamodb.TableEncryptionV2.aws_managed_key(),
            removal_policy=self.config.removal_policy,
            deletion_protection=self.config.deletion_protection,
            global_secondary_indexes=[
                dynamodb.GlobalSecondaryIndexPropsV2(
                    index_name=index.name,
                    partition_key=key(index.partition_key),
                    sort_key=key(index.sort_key) if index.sort_key else None,
                    projection_type=projection(index.projection),
                )
                for index in spec.global_indexes
            ]
            or None,
            local_secondary_indexes=[
                dynamodb.LocalSecondaryIndexProps(
                    index_name=index.name,
                    sort_key=key(index.sort_key or spec.sort_key),
                    projection_type=projection(index.projection),
                )
                for index in spec.local_indexes
            ]
            or None,
        )

    def _push_apps(self) -> dict[str, str]:
        """Platform -> SNS platform application ARN, as given or read from SSM at synth.

        Looked up at synth time (and cached in cdk.context.json), not resolved by
        CloudFormation at deploy: the ARN is then part of the functions' version hash, so
        a changed parameter publishes new versions (infra/versions.py), and its region
        can be checked here.
        """
        apps = {}
        for platform, source in sorted(self.config.push_apps.items()):
            if source.startswith("/"):
                if self.target.account is None:
                    raise ValueError(
                        f"push:{platform} names an SSM parameter, looked up at synth time in "
                        "the target account: run the CDK CLI with credentials for it, or "
                        "pass -c account=ACCOUNT"
                    )
                arn = ssm.StringParameter.value_from_lookup(self, source)
                if arn.startswith(LOOKUP_PLACEHOLDER_PREFIX):
                    # Not looked up yet: the CLI reads the app's missing context, looks it
                    # up and synthesizes again. Until then a well-formed stand-in, so that
                    # this first pass gets through validation to that point.
                    arn = self.format_arn(
                        service="sns",
                        resource="app",
                        resource_name=f"{platform}/{LOOKUP_PLACEHOLDER_PREFIX}{platform.lower()}",
                        arn_format=ArnFormat.SLASH_RESOURCE_NAME,
                    )
                apps[platform] = arn
            else:
                apps[platform] = source
        return apps

    # --- functions ----------------------------------------------------------------

    def worker_name(self, function_name: str) -> str:
        """A worker's fixed name: the functions that invoke it know it before it exists."""
        return f"{self.stack_name}-{function_name}"

    def _invocable_name(self, function_name: str) -> str:
        """What Invoke is given: with SnapStart, the `live` alias of the published version."""
        name = self.worker_name(function_name)
        return f"{name}:{LIVE_ALIAS}" if self.config.snap_start else name

    def _environment(self, access: frozenset[Access]) -> dict[str, str]:
        environment = {spec.env.value: self.tables[spec].table_name for spec in TABLES}
        if self.cell is not None:
            # Every function: the authorizer refuses users of other cells, the routes
            # and the Relay find their peers.
            environment.update(self.cell.environment())
        environment[Env.MESSAGE_TTL_SECONDS.value] = str(self.config.message_ttl_seconds)
        environment[Env.REGISTRATIONS_PER_IP_PER_HOUR.value] = str(
            self.config.registrations_per_ip_per_hour
        )
        if Access.ANNOUNCE_PRESENCE in access:
            environment[Env.PRESENCE_FUNCTION.value] = self._invocable_name(
                PRESENCE_WORKER.function_name
            )
        if self.config.cell_epoch:
            environment[Env.CELL_EPOCH.value] = self.config.cell_epoch
        environment["POWERTOOLS_SERVICE_NAME"] = SERVICE_NAME
        environment["POWERTOOLS_METRICS_NAMESPACE"] = METRICS_NAMESPACE
        if Access.PUSH in access:
            for platform, arn in self.push_apps.items():
                environment[Env[f"PUSH_APP_{platform}"].value] = arn
        return environment

    def _function(
        self,
        name: str,
        handler: str,
        access: frozenset[Access],
        code: lambda_.Code,
        targets: Targets,
        *,
        function_name: str | None = None,
        more_environment: dict[str, str] | None = None,
    ) -> lambda_.IFunction:
        """The function of a route (or the authorizer, or the Relay), and what API
        Gateway (or a peer cell) invokes."""
        environment = {**self._environment(access), **(more_environment or {})}
        log_group = logs.LogGroup(
            self,
            f"{name}Logs",
            retention=self.config.log_retention,
            removal_policy=self.config.removal_policy,
        )
        # A role of its own per function, without AWS's managed basic-execution policy
        # (which may write to any log group): its own log group, then its declared needs.
        role = iam.Role(
            self,
            f"{name}Role",
            assumed_by=iam.ServicePrincipal(LAMBDA_PRINCIPAL),
            description=f"Messenger {name} function",
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="OwnLogGroup",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                # The log group's ARN attribute ends in ":*", which covers its streams.
                resources=[log_group.log_group_arn],
            )
        )
        for statement in statements_for_all(access, targets):
            role.add_to_policy(statement)

        function = lambda_.Function(
            # Not `name` itself: a construct called "Default" would become the stack's
            # default child. The logical id is `name` again (below).
            self,
            f"{name}Function",
            function_name=function_name,
            description=f"Messenger {name} ({handler})",
            runtime=bundling.RUNTIME,
            architecture=bundling.ARCHITECTURE,
            code=code,
            handler=handler,
            role=role,
            memory_size=self.config.memory_mb,
            timeout=self.config.timeout,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=log_group,
            environment=environment,
            snap_start=(
                lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if self.config.snap_start else None
            ),
        )
        # The contract's function name as the logical id, so the deployed name reads
        # "Messenger-dev-SendMessage-<suffix>" and tests find the function by it.
        cfn_function = function.node.default_child
        assert isinstance(cfn_function, lambda_.CfnFunction)
        cfn_function.override_logical_id(name)
        # A table replaced on deploy has a new name under the same reference: publish a
        # new version then too, or the `live` alias would keep the old table's name.
        function.invalidate_version_based_on(deploy_time_inputs(self, environment))
        self._acknowledge_wildcards(role.node.find_child("DefaultPolicy"), access, targets)
        self.functions[name] = function
        if not self.config.snap_start:
            return function
        Validations.of(function).acknowledge(
            Acknowledgment(
                id="Annotation::@aws-cdk/aws-lambda:snapStartRequirePublish",
                reason="every deploy publishes the function's current version and points the "
                "live alias, which API Gateway invokes, at it",
            )
        )
        if self.target.region in SNAPSTART_UNKNOWN_TO_CDK_VALIDATOR:
            Validations.of(function).acknowledge(
                Acknowledgment(
                    id="CloudFormation-Validate::E2530",
                    reason=f"the Lambda documentation and cfn-lint list {self.target.region} "
                    "among SnapStart's regions; the validator's region table is older",
                )
            )
        # SnapStart restores published versions only: API Gateway invokes an alias of the
        # version this deploy published, and the next deploy moves the alias.
        return lambda_.Alias(
            self, f"{name}Live", alias_name=LIVE_ALIAS, version=function.current_version
        )

    def _relay(self, cell: CellPlacement, code: lambda_.Code, targets: Targets) -> None:
        """What peer cells invoke; named, so that they know its ARN at synth time."""
        relay = self._function(
            RELAY.function_name,
            RELAY.handler,
            RELAY.access,
            code,
            targets,
            function_name=cell.relay_name,
            # No API event tells the Relay where this stage's @connections API is.
            more_environment={Env.CONNECTIONS_ENDPOINT.value: self.stage.callback_url},
        )
        # Another account's callers need the Relay's word too; each caller's own role
        # names the Relay (Access.RELAY), so the account's other principals get nothing.
        for account in cell.peer_accounts():
            relay.add_permission(
                f"InvokeBy{account}",
                principal=iam.AccountPrincipal(account),
                action=INVOKE_ACTION,
            )

    def _acknowledge_wildcards(
        self, policy: IConstruct, access: frozenset[Access], targets: Targets
    ) -> None:
        """The three wildcards a function policy may hold, each for a reason of its own."""
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray PutTraceSegments and PutTelemetryRecords have no resource-level "
            "permissions; Lambda adds them for active tracing",
        )
        if Access.POST_TO_CONNECTION in access:
            acknowledge(
                policy,
                f"AwsSolutions-IAM5[Resource::{flattened(self, targets.connections_arn)}]",
                "API Gateway names each connection when it opens; the grant is POST to the "
                "@connections of this API and stage only",
            )
        if Access.PUSH in access:
            for arn in targets.push_apps:
                endpoints = flattened(self, endpoint_arns_of(arn))
                acknowledge(
                    policy,
                    f"AwsSolutions-IAM5[Resource::{endpoints}]",
                    "SNS makes one platform endpoint per device at run time; the grant covers "
                    "the endpoints of this platform application only",
                )

    # --- API stage ----------------------------------------------------------------

    def _stage(self) -> apigwv2.WebSocketStage:
        access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=self.config.log_retention,
            removal_policy=self.config.removal_policy,
        )
        # Where API Gateway writes the stage's execution logs. Left to API Gateway, the
        # group would be made on the first error, kept forever and outlive the stack.
        execution_logs = logs.LogGroup(
            self,
            "ExecutionLogs",
            log_group_name=f"API-Gateway-Execution-Logs_{self.api.api_id}/{self.config.env}",
            retention=self.config.log_retention,
            removal_policy=self.config.removal_policy,
        )
        # This env's share of API Gateway's account quota, less what its posts need.
        throttle = self.config.stage_throttle(self.target.region)
        stage = apigwv2.WebSocketStage(
            self,
            "Stage",
            web_socket_api=self.api,
            stage_name=self.config.env,
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

    # --- outputs ------------------------------------------------------------------

    def _outputs(self) -> None:
        dashboard = self.monitoring.dashboard.dashboard_name
        outputs = {
            "WebSocketUrl": (self.stage.url, "Clients connect here (docs/protocol.md §1)"),
            "ConnectionsUrl": (self.stage.callback_url, "The @connections management API"),
            # With cells, the directory's stack outputs the deployment's web app.
            **(
                {
                    "WebUrl": (
                        f"https://{self.web.distribution.distribution_domain_name}/",
                        "The web app (open it in a browser)",
                    )
                }
                if self.web is not None
                else {}
            ),
            "DashboardName": (dashboard, "CloudWatch dashboard"),
            "DashboardUrl": (
                f"https://console.aws.amazon.com/cloudwatch/home?region={Aws.REGION}"
                f"#dashboards/dashboard/{dashboard}",
                "CloudWatch dashboard in the console",
            ),
            "AlarmTopicArn": (
                self.monitoring.topic.topic_arn,
                "Subscribe here to receive the alarms",
            ),
        }
        for spec, table in self.tables.items():
            outputs[f"{spec.logical_name}TableName"] = (
                table.table_name,
                f"DynamoDB table ({spec.env.value})",
            )
        for output_id, (value, description) in outputs.items():
            CfnOutput(self, output_id, value=value, description=description)
