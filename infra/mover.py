"""Shard moves on AWS (docs/scale.md "Shard moves", "On AWS"): in each primary cell stack of
a deployment with several cells, the runner of the moves out of that cell.

    python -m infra.cells move ─▶ Mover {"start": ...}     the move's record, in this
                                   │                         cell's Users table
                                   ▼ StartExecution {"move": id}
    state machine: RunSteps (Mover {"move": id}: steps, or pages of one, until done or
                   near its 15-minute end; the record is its state) ─▶ Finished?
                     ├ done ─▶ Moved          ├ refused ─▶ Refused (failed)
                     ├ done, aborted ─▶ RolledBack (python -m infra.cells move --abort)
                     └ not yet ─▶ RunSteps    └ a step failing past its retries ─▶ MoveFailed
                                                                     (failed)
    alarms, on the cell's alarm topic: an execution failed, timed out or was aborted
           (MoveFailedAlarm); steps failing again and again (MoveStepFailuresAlarm)

The Mover runs in the OLD home, the cell the moves leave: it reads and deletes only its own
cell's tables, and elsewhere writes only what a move writes. Its role (named
`messenger-<env>-<cell>-mover`) may:

- on this cell's tables: Scan, GetItem, Query, PutItem, UpdateItem, BatchWriteItem (the
  copy reads, the clean deletes, the record and the range's state are written);
- on every other cell's tables: BatchWriteItem (the copy, into the new home), and on their
  Users table UpdateItem of the cells' range-state item only (`dynamodb:LeadingKeys`
  CELL) and Query of the move records only (MOVE); nothing else, no read of a user;
- invoke the directory function, which reads and publishes the shard map (signed by the
  directory key: the Mover never holds it);
- POST and DELETE on this cell's own @connections (MOVED, then close).

It may not write a standby's own regional tables (`messenger-<env>-<cell>-standby-limits`,
which the Limits pattern would match): an explicit Deny.

Across accounts (cells in several accounts of the deployment's AWS Organization, `-c
organization=o-...`), each cell's Users, Queue and Limits tables admit the Movers of the
deployment in their resource policies (`admit_peer_movers`): any role named
`messenger-<env>-*-mover` of the organization, and only what the Movers' own policy allows
them on a peer's table. The same statements in every cell, whatever the number of cells.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra import bundling
from infra.cells import CellPlacement
from infra.config import DeploymentConfig
from infra.directory import directory_function_arn
from infra.monitoring import app_metric, execution_alarm, notifying_alarm
from infra.nag import acknowledge, flattened
from infra.regions import PARTITION
from infra.tables import REGIONAL_TABLES
from messenger.contract import (
    LIMITS_TABLE,
    METRICS_NAMESPACE,
    QUEUE_TABLE,
    SERVICE_NAME,
    USERS_TABLE,
    Env,
    Metric,
    MoverEnv,
    TableSpec,
    table_name,
)
from messenger.dal.moves import ABORTED, MOVE_PK
from messenger.dal.shard_states import SHARDS_PK

MOVER_HANDLER = "messenger.handlers.mover.handler"
LAMBDA_PRINCIPAL = "lambda.amazonaws.com"
# Lambda's longest: the Mover stops starting steps 2 minutes before it (handlers/mover.py).
MOVER_TIMEOUT = Duration.minutes(15)
# A move of a full cell's share at the tables' quotas takes hours (docs/scale.md).
MOVE_TIMEOUT = Duration.hours(24)
# Steps failing this often in 5 minutes are not a throttle the retries absorb.
STEP_FAILURES_THRESHOLD = 3
# What the Mover does to a peer's move records and range state, and only to those items.
MOVE_ITEM_ACTIONS = ["dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:Query"]
MOVE_ITEMS_ONLY = {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [MOVE_PK, SHARDS_PK]}}
# Each role of a table in a move (MoverEnv.CELLS' keys).
ROLES: dict[str, TableSpec] = {"users": USERS_TABLE, "queue": QUEUE_TABLE, "limits": LIMITS_TABLE}


def mover_role_name(env: str, cell_id: str) -> str:
    return f"messenger-{env}-{cell_id}-mover"


def mover_role_arns(env: str) -> str:
    """Every Mover's role of the deployment, in any account: one pattern."""
    return f"arn:{PARTITION}:iam::*:role/{mover_role_name(env, '*')}"


def _given_peers(placement: CellPlacement) -> dict[str, dict[str, Any]]:
    """The other cells whose tables the naming rule (contract.table_name) does not name:
    those deployed before it, whose names the operator gave (`-c tableNames:<cell>`); a
    cell with unnamed tables and no names given cannot be moved to. Every other cell is
    found at run time (functions/messenger/move_wiring.py), so that this stack does not
    grow with the number of cells."""
    peers: dict[str, dict[str, Any]] = {}
    for cell in placement.cells.cells:
        unnamed = cell.unnamed_tables
        if cell.cell_id == placement.cell_id or unnamed is None:
            continue
        if any(unnamed.name_of(spec.logical_name) is None for spec in ROLES.values()):
            continue
        other = replace(placement, cell=cell, standby=False)
        peers[cell.cell_id] = {
            "region": cell.region,
            "account": cell.account,
            **{role: other.primary_table_name(spec) for role, spec in ROLES.items()},
        }
    return peers


def _standby_regional_arns(env: str) -> list[str]:
    """A standby's own tables (never a move's): the Limits pattern would match them."""
    return [
        f"arn:{PARTITION}:dynamodb:*:*:table/{table_name(env, '*', spec, standby=True)}"
        for spec in REGIONAL_TABLES
    ]


def admit_peer_movers(
    tables: dict[TableSpec, dynamodb.ITableV2], placement: CellPlacement, organization: str
) -> None:
    """This cell's tables, for the Movers of the other accounts (docs/scale.md "On AWS"):
    the statements of the Movers' own policy on a peer's table (`CopyIntoPeerTables`,
    `PeerRangeStateAndMoveRecords`), for any Mover role of the deployment in the
    organization. Nothing per peer: the policy (under 2 KB of DynamoDB's 20 KB) is the same
    for 2 cells or 150."""
    movers = {
        "StringEquals": {"aws:PrincipalOrgID": organization},
        "ArnLike": {"aws:PrincipalArn": mover_role_arns(placement.env)},
    }
    stack = Stack.of(tables[USERS_TABLE])
    for spec in ROLES.values():
        table = tables[spec]
        assert isinstance(table, dynamodb.TableV2), "a primary's tables are its own"
        # Its own ARN by name (the table's attribute would be a reference to itself); a
        # table CloudFormation named, whose name was not given: "*", the table itself.
        name = placement.table_name(spec) or _given_name(placement, spec)
        arn = (
            stack.format_arn(service="dynamodb", resource="table", resource_name=name)
            if name
            else "*"
        )
        table.add_to_resource_policy(
            iam.PolicyStatement(
                sid="PeerMoversCopyIn",
                principals=[iam.AnyPrincipal()],
                actions=["dynamodb:BatchWriteItem"],
                resources=[arn],
                conditions=movers,
            )
        )
        if spec is USERS_TABLE:
            table.add_to_resource_policy(
                iam.PolicyStatement(
                    sid="PeerMoversRangeStateAndMoveRecords",
                    principals=[iam.AnyPrincipal()],
                    actions=MOVE_ITEM_ACTIONS,
                    resources=[arn],
                    conditions={**movers, **MOVE_ITEMS_ONLY},
                )
            )


def _given_name(placement: CellPlacement, spec: TableSpec) -> str | None:
    unnamed = placement.cell.unnamed_tables
    return unnamed.name_of(spec.logical_name) if unnamed is not None else None


def _by_rule_arns(env: str) -> dict[str, str]:
    """Every cell's tables of each role, by the naming rule: one ARN pattern per role,
    whatever the number of cells."""
    return {
        role: f"arn:{PARTITION}:dynamodb:*:*:table/{table_name(env, '*', spec)}"
        for role, spec in ROLES.items()
    }


class ShardMover(Construct):
    """The Mover function, its state machine, and their alarms."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        placement: CellPlacement,
        tables: dict[TableSpec, dynamodb.ITableV2],
        connections_url: str,
        connections_arns: list[str],
        alarm_topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        peers = _given_peers(placement)
        self._by_rule = _by_rule_arns(config.env)
        # Every Relay record, in the first directory bucket and (two regions) the second.
        self._relay_records = [
            placement.relay_records_arn,
            *filter(None, [placement.relay_records_fallback_arn]),
        ]
        own = {role: tables[spec] for role, spec in ROLES.items()}
        directory = directory_function_arn(config.env, placement.directory)
        log_group = logs.LogGroup(
            self, "Logs", retention=config.log_retention, removal_policy=config.removal_policy
        )
        role = iam.Role(
            self,
            "Role",
            role_name=mover_role_name(config.env, placement.cell_id),
            assumed_by=iam.ServicePrincipal(LAMBDA_PRINCIPAL),
            description=f"Messenger {placement.cell_id} Mover: moves shards out of this cell",
        )
        self._standby_regional = _standby_regional_arns(config.env)
        statements = self._statements(
            log_group,
            own,
            peers,
            self._by_rule,
            self._standby_regional,
            directory,
            connections_arns,
        )
        statements.append(
            # Each peer's region, from its Relay record (the functions' own grant).
            iam.PolicyStatement(
                sid="ReadRelayRecords",
                actions=["s3:GetObject"],
                resources=self._relay_records,
            )
        )
        for statement in statements:
            role.add_to_policy(statement)
        cells = {
            placement.cell_id: {
                "region": stack.region,
                **{name: table.table_name for name, table in own.items()},
            },
            **{
                cell_id: {key: value for key, value in tables_of.items() if key != "account"}
                for cell_id, tables_of in peers.items()
            },
        }
        self.function = lambda_.Function(
            self,
            "Function",
            description=f"Messenger {placement.cell_id} Mover: runs shard moves' steps",
            runtime=bundling.RUNTIME,
            architecture=bundling.ARCHITECTURE,
            code=bundling.function_code(),
            handler=MOVER_HANDLER,
            role=role,
            memory_size=512,
            timeout=MOVER_TIMEOUT,
            log_group=log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            # One runner per move is the state machine's; the record's conditional writes
            # make a second one harmless (MoveConflict), this makes it rare.
            reserved_concurrent_executions=2,
            environment={
                MoverEnv.CELL_ID.value: placement.cell_id,
                MoverEnv.CELLS.value: stack.to_json_string(cells),
                MoverEnv.DEPLOYMENT.value: config.env,
                Env.MESH_BUCKET.value: placement.directory.bucket,
                Env.MESH_BUCKET_REGION.value: placement.directory.region,
                Env.MESH_BUCKET_OWNER.value: placement.directory.account,
                **placement.fallback_environment(),
                MoverEnv.DIRECTORY_FUNCTION.value: directory,
                MoverEnv.CONNECTIONS_ENDPOINT.value: connections_url,
                "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            },
        )
        self.state_machine = self._state_machine(config)
        self.alarms = self._alarms(alarm_topic)
        self._acknowledge(role, connections_arns)
        CfnOutput(
            stack,
            "MoverFunctionName",
            value=self.function.function_name,
            description="Starts a shard move out of this cell (python -m infra.cells move)",
        )
        CfnOutput(
            stack,
            "MoverStateMachineArn",
            value=self.state_machine.state_machine_arn,
            description="Runs each shard move out of this cell to its end",
        )

    @staticmethod
    def _statements(
        log_group: logs.ILogGroup,
        own: dict[str, dynamodb.ITableV2],
        peers: dict[str, dict[str, Any]],
        by_rule: dict[str, str],
        standby_regional: list[str],
        directory: str,
        connections_arns: list[str],
    ) -> list[iam.PolicyStatement]:
        statements = [
            iam.PolicyStatement(
                sid="OwnLogGroup",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn],
            ),
            # The range's items are read a page at a time, and deleted once moved.
            iam.PolicyStatement(
                sid="ReadAndCleanOwnTables",
                actions=["dynamodb:Scan", "dynamodb:BatchWriteItem"],
                resources=[table.table_arn for table in own.values()],
            ),
            # The move's record (MOVE) and the range's state (CELL) in its Users table.
            iam.PolicyStatement(
                sid="OwnMoveRecordsAndRangeState",
                actions=[
                    "dynamodb:GetItem",
                    "dynamodb:Query",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                ],
                resources=[own["users"].table_arn],
                conditions=MOVE_ITEMS_ONLY,
            ),
            iam.PolicyStatement(
                sid="InvokeDirectoryFunction",
                actions=["lambda:InvokeFunction"],
                resources=[directory],
            ),
            iam.PolicyStatement(
                sid="CloseMovedConnections",
                actions=["execute-api:ManageConnections"],
                resources=connections_arns,
            ),
        ]
        arns = {
            role: [
                by_rule[role],
                *(
                    f"arn:{PARTITION}:dynamodb:{tables['region']}:{tables['account']}:"
                    f"table/{tables[role]}"
                    for tables in peers.values()
                ),
            ]
            for role in ROLES
        }
        statements += [
            # The copy into the new home (any peer may be one).
            iam.PolicyStatement(
                sid="CopyIntoPeerTables",
                actions=["dynamodb:BatchWriteItem"],
                resources=[arn for role_arns in arns.values() for arn in role_arns],
            ),
            # The range's state at the new home and at every other cell (CELL), and
            # the check that no move into the new home overlaps (MOVE).
            iam.PolicyStatement(
                sid="PeerRangeStateAndMoveRecords",
                actions=MOVE_ITEM_ACTIONS,
                resources=arns["users"],
                conditions=MOVE_ITEMS_ONLY,
            ),
            # A standby's own Limits table matches the Limits pattern: never a move's.
            iam.PolicyStatement(
                sid="NotStandbyRegionalTables",
                effect=iam.Effect.DENY,
                actions=["dynamodb:BatchWriteItem"],
                resources=standby_regional,
            ),
        ]
        return statements

    def _state_machine(self, config: DeploymentConfig) -> sfn.StateMachine:
        run = tasks.LambdaInvoke(
            self,
            "RunSteps",
            lambda_function=self.function,
            payload=sfn.TaskInput.from_object({"move": sfn.JsonPath.string_at("$.move")}),
            payload_response_only=True,
            retry_on_service_exceptions=True,
            comment="The move's next steps, until done or near the Mover's end",
        )
        # A failed step was recorded (the record's `error`); run again, it resumes there.
        run.add_retry(
            errors=["States.ALL"],
            interval=Duration.seconds(10),
            backoff_rate=2,
            max_attempts=6,
            max_delay=Duration.minutes(5),
        )
        failed = sfn.Fail(
            self,
            "MoveFailed",
            error="MoveFailed",
            cause="a step kept failing: see the move's record (move-status) and resume",
        )
        run.add_catch(failed, errors=["States.ALL"])
        finished = (
            sfn.Choice(self, "Finished")
            .when(
                sfn.Condition.is_present("$.refused"),
                sfn.Fail(self, "Refused", error="MoveRefused", cause="no such move here"),
            )
            .when(
                sfn.Condition.and_(
                    sfn.Condition.boolean_equals("$.done", True),
                    sfn.Condition.string_equals("$.status", ABORTED),
                ),
                sfn.Succeed(self, "RolledBack", comment="aborted: the old home has it all"),
            )
            .when(sfn.Condition.boolean_equals("$.done", True), sfn.Succeed(self, "Moved"))
            .otherwise(run)
        )
        logs_group = logs.LogGroup(
            self,
            "StateMachineLogs",
            retention=config.log_retention,
            removal_policy=config.removal_policy,
        )
        return sfn.StateMachine(
            self,
            "StateMachine",
            comment="A shard move out of this cell, step by step (docs/scale.md)",
            definition_body=sfn.DefinitionBody.from_chainable(run.next(finished)),
            timeout=MOVE_TIMEOUT,
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=logs_group, level=sfn.LogLevel.ALL, include_execution_data=False
            ),
        )

    def _alarms(self, topic: sns.ITopic) -> list[cw.Alarm]:
        return [
            execution_alarm(
                self,
                "MoveFailedAlarm",
                self.state_machine,
                topic,
                "A shard move stopped before its end (failed, timed out or aborted): the "
                "range is part-moved; see `python -m infra.cells move-status`, then resume "
                "(docs/scale.md, On AWS). An operator's --abort stops one too: then an "
                "execution named <move>-aborted-... runs its rollback",
                executions="Shard moves",
            ),
            notifying_alarm(
                self,
                "MoveStepFailuresAlarm",
                topic,
                app_metric(Metric.MOVE_STEP_FAILURES),
                STEP_FAILURES_THRESHOLD,
                "A shard move's steps keep failing (retried with backoff): the move is "
                "stuck at the step its record names",
            ),
        ]

    def _acknowledge(self, role: iam.Role, connections_arns: list[str]) -> None:
        policy = role.node.find_child("DefaultPolicy")
        for arn in self._relay_records:
            acknowledge(
                policy,
                f"AwsSolutions-IAM5[Resource::{arn}]",
                "the cells' Relay records in the directory's bucket, each region's (each "
                "peer's region), read-only, one grant whatever the number of cells",
            )
        for arn in self._by_rule.values():
            acknowledge(
                policy,
                f"AwsSolutions-IAM5[Resource::{arn}]",
                "the cells' tables by their naming rule: one grant whatever the number of "
                "cells (a new cell redeploys no other); on them only BatchWriteItem (the "
                "copy into the new home) and, on Users, the MOVE and CELL items",
            )
        for arn in connections_arns:
            acknowledge(
                policy,
                f"AwsSolutions-IAM5[Resource::{flattened(self, arn)}]",
                "API Gateway names each connection when it opens; the grant is POST and "
                "DELETE to the @connections of this API and stage only",
            )
        machine_policy = self.state_machine.role.node.find_child("DefaultPolicy")
        acknowledge(
            machine_policy,
            f"AwsSolutions-IAM5[Resource::<{Stack.of(self).get_logical_id(self._function_cfn())}"
            ".Arn>:*]",
            "CDK grants the task every version of the Mover it invokes (the function's ARN "
            "with :*); it invokes $LATEST",
        )
        acknowledge(
            machine_policy,
            "AwsSolutions-IAM5[Resource::*]",
            "CloudWatch Logs' log-delivery actions and X-Ray's trace actions have no "
            "resource-level permissions (Step Functions logging and tracing)",
        )

    def _function_cfn(self) -> lambda_.CfnFunction:
        cfn = self.function.node.default_child
        assert isinstance(cfn, lambda_.CfnFunction)
        return cfn
