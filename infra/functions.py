"""The cell's functions: the authorizer, one per route, the workers (and the Relay's, made
by `infra.relay` the same way), each with its own log group and least-privilege role.

What each function may touch is its `messenger.contract.Access` needs
(infra/permissions.py); what it learns is its environment, parsed by
`messenger.config.settings_from`.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, ArnFormat, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import IConstruct

from infra import bundling
from infra.cells import CellPlacement
from infra.config import DeploymentConfig
from infra.nag import acknowledge, flattened
from infra.permissions import Targets, endpoint_arns_of, statements_for_all
from infra.presence_settle import PresenceSettle
from infra.push import push_applications
from infra.regions import SNAPSTART_UNKNOWN_TO_CDK_VALIDATOR
from infra.tables import Tables
from infra.versions import deploy_time_inputs
from messenger.contract import (
    AUTHORIZER,
    METRICS_NAMESPACE,
    PRESENCE_WORKER,
    ROUTES,
    SERVICE_NAME,
    WORKERS,
    Access,
    Env,
)

LAMBDA_PRINCIPAL = "lambda.amazonaws.com"
# With SnapStart (prod), API Gateway invokes this alias of the published version.
LIVE_ALIAS = "live"


class Functions:
    """Every function of the contract, and how to make one more (`add`), in the stack's
    own scope (infra/stack.py says why)."""

    def __init__(
        self,
        stack: Stack,
        *,
        config: DeploymentConfig,
        cell: CellPlacement,
        tables: Tables,
        connections_arn: str,
        close_connections_arn: str,
        settle: PresenceSettle,
    ) -> None:
        self._stack = stack
        self._config = config
        self._cell = cell
        self._tables = tables
        self.push_apps = push_applications(stack, config)
        self._targets = Targets(
            tables=tables.by_spec,
            connections_arn=connections_arn,
            close_connections_arn=close_connections_arn,
            push_apps=tuple(self.push_apps.values()),
            relay_pattern=cell.relay_pattern if cell.has_peers else None,
            relay_records=cell.relay_records_arn if cell.has_peers else None,
            relay_records_fallback=cell.relay_records_fallback_arn if cell.has_peers else None,
            shard_map=cell.shard_map_arn if cell.has_peers else None,
            shard_map_fallback=cell.shard_map_fallback_arn if cell.has_peers else None,
            presence_function_arn=stack.format_arn(
                service="lambda",
                resource="function",
                resource_name=self._invocable_name(PRESENCE_WORKER.function_name),
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            ),
            presence_settle_queue_arn=settle.queue.queue_arn,
            presence_settle_queue_url=settle.queue.queue_url,
        )
        # One asset for all functions: the same code, uploaded once.
        self._code = bundling.function_code()
        # Name -> the function itself (its metrics); what is invoked may be its alias.
        self.all: dict[str, lambda_.Function] = {}
        # Name -> what is invoked of each worker (its alias with SnapStart).
        self.workers = {
            worker.function_name: self.add(
                worker.function_name,
                worker.handler,
                worker.access,
                function_name=self.worker_name(worker.function_name),
            )
            for worker in WORKERS
        }
        # The settle queue is the presence function's second event source.
        settle.feed(self.workers[PRESENCE_WORKER.function_name])
        self.authorizer = self.add(AUTHORIZER.function_name, AUTHORIZER.handler, AUTHORIZER.access)
        # Route key -> what API Gateway invokes for it.
        self.routes = {
            route.key: self.add(route.function_name, route.handler, route.access)
            for route in ROUTES
        }

    def worker_name(self, function_name: str) -> str:
        """A worker's fixed name: the functions that invoke it know it before it exists."""
        return f"{self._stack.stack_name}-{function_name}"

    def _invocable_name(self, function_name: str) -> str:
        """What Invoke is given: with SnapStart, the `live` alias of the published version."""
        name = self.worker_name(function_name)
        return f"{name}:{LIVE_ALIAS}" if self._config.snap_start else name

    def _environment(self, access: frozenset[Access]) -> dict[str, str]:
        environment = {
            spec.env.value: table.table_name for spec, table in self._tables.by_spec.items()
        }
        # Every function: the authorizer refuses users of other cells, the routes and the
        # Relay find their peers.
        environment.update(self._cell.environment())
        environment[Env.MESSAGE_TTL_SECONDS.value] = str(self._config.message_ttl_seconds)
        environment[Env.REGISTRATIONS_PER_IP_PER_HOUR.value] = str(
            self._config.registrations_per_ip_per_hour
        )
        if not self._config.accept_v11_connect:
            environment[Env.ACCEPT_V11_CONNECT.value] = "false"
        if self._config.connect_endpoints:
            environment[Env.CONNECT_ENDPOINTS.value] = ",".join(self._config.connect_endpoints)
        if Access.ANNOUNCE_PRESENCE in access:
            environment[Env.PRESENCE_FUNCTION.value] = self._invocable_name(
                PRESENCE_WORKER.function_name
            )
        if Access.SETTLE_PRESENCE in access:
            environment[Env.PRESENCE_SETTLE_QUEUE.value] = self._targets.presence_settle_queue_url
        if self._config.cell_epoch:
            environment[Env.CELL_EPOCH.value] = self._config.cell_epoch
        environment["POWERTOOLS_SERVICE_NAME"] = SERVICE_NAME
        environment["POWERTOOLS_METRICS_NAMESPACE"] = METRICS_NAMESPACE
        if Access.PUSH in access:
            for platform, arn in self.push_apps.items():
                environment[Env[f"PUSH_APP_{platform}"].value] = arn
        return environment

    def add(
        self,
        name: str,
        handler: str,
        access: frozenset[Access],
        *,
        function_name: str | None = None,
        more_environment: dict[str, str] | None = None,
        reserved_concurrency: int | None = None,
    ) -> lambda_.IFunction:
        """A function of the contract, and what API Gateway (or a peer cell) invokes: the
        function, or with SnapStart its `live` alias."""
        environment = {**self._environment(access), **(more_environment or {})}
        log_group = logs.LogGroup(
            self._stack,
            f"{name}Logs",
            retention=self._config.log_retention,
            removal_policy=self._config.removal_policy,
        )
        function = lambda_.Function(
            # Not `name` itself: a construct called "Default" would become the stack's
            # default child. The logical id is `name` again (below).
            self._stack,
            f"{name}Function",
            function_name=function_name,
            description=f"Messenger {name} ({handler})",
            runtime=bundling.RUNTIME,
            architecture=bundling.ARCHITECTURE,
            code=self._code,
            handler=handler,
            role=self._role(name, log_group, access),
            memory_size=self._config.memory_mb,
            timeout=self._config.timeout,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=log_group,
            environment=environment,
            reserved_concurrent_executions=reserved_concurrency,
            snap_start=(
                lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if self._config.snap_start else None
            ),
        )
        # The contract's function name as the logical id, so the deployed name reads
        # "Messenger-dev-SendMessage-<suffix>" and tests find the function by it.
        cfn_function = function.node.default_child
        assert isinstance(cfn_function, lambda_.CfnFunction)
        cfn_function.override_logical_id(name)
        # A table replaced on deploy has a new name under the same reference: publish a
        # new version then too, or the `live` alias would keep the old table's name.
        function.invalidate_version_based_on(deploy_time_inputs(self._stack, environment))
        self.all[name] = function
        return self._live_alias(name, function) if self._config.snap_start else function

    def _role(self, name: str, log_group: logs.ILogGroup, access: frozenset[Access]) -> iam.Role:
        """A role of its own per function, without AWS's managed basic-execution policy
        (which may write to any log group): its own log group, then its declared needs."""
        role = iam.Role(
            self._stack,
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
        for statement in statements_for_all(access, self._targets):
            role.add_to_policy(statement)
        self._acknowledge_wildcards(role.node.find_child("DefaultPolicy"), access)
        return role

    def _live_alias(self, name: str, function: lambda_.Function) -> lambda_.Alias:
        """SnapStart restores published versions only: API Gateway invokes an alias of the
        version this deploy published, and the next deploy moves the alias."""
        Validations.of(function).acknowledge(
            Acknowledgment(
                id="Annotation::@aws-cdk/aws-lambda:snapStartRequirePublish",
                reason="every deploy publishes the function's current version and points the "
                "live alias, which API Gateway invokes, at it",
            )
        )
        region = self._stack.region
        if region in SNAPSTART_UNKNOWN_TO_CDK_VALIDATOR:
            Validations.of(function).acknowledge(
                Acknowledgment(
                    id="CloudFormation-Validate::E2530",
                    reason=f"the Lambda documentation and cfn-lint list {region} "
                    "among SnapStart's regions; the validator's region table is older",
                )
            )
        return lambda_.Alias(
            self._stack, f"{name}Live", alias_name=LIVE_ALIAS, version=function.current_version
        )

    def _acknowledge_wildcards(self, policy: IConstruct, access: frozenset[Access]) -> None:
        """The three wildcards a function policy may hold, each for a reason of its own."""
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray PutTraceSegments and PutTelemetryRecords have no resource-level "
            "permissions; Lambda adds them for active tracing",
        )
        if Access.POST_TO_CONNECTION in access:
            for arn in (self._targets.connections_arn, self._targets.close_connections_arn):
                acknowledge(
                    policy,
                    f"AwsSolutions-IAM5[Resource::{flattened(self._stack, arn)}]",
                    "API Gateway names each connection when it opens; the grant is POST "
                    "and DELETE to the @connections of this API and stage only",
                )
        if Access.RELAY in access and self._targets.relay_pattern:
            acknowledge(
                policy,
                f"AwsSolutions-IAM5[Resource::{self._targets.relay_pattern}]",
                "the deployment's Relays, by their naming convention: one grant whatever the "
                "number of cells, so that adding a cell redeploys no other; the called Relay "
                "checks that each call is signed by the cell it names (docs/scale.md)",
            )
        if Access.RELAY in access or Access.MESH_READ in access:
            for records in (self._targets.relay_records, self._targets.relay_records_fallback):
                if records:
                    acknowledge(
                        policy,
                        f"AwsSolutions-IAM5[Resource::{records}]",
                        "the cells' Relay records in the directory's bucket (each region's): "
                        "each side's public key and Relay ARN, read-only, one grant whatever "
                        "the number of cells",
                    )
        if Access.PUSH in access:
            for arn in self._targets.push_apps:
                endpoints = flattened(self._stack, endpoint_arns_of(arn))
                acknowledge(
                    policy,
                    f"AwsSolutions-IAM5[Resource::{endpoints}]",
                    "SNS makes one platform endpoint per device at run time; the grant covers "
                    "the endpoints of this platform application only",
                )
