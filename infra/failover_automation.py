"""The automated failover path of a cell's standby (docs/protocol.md §7, docs/availability.md).

Synthesized in the standby's stack only with `-c autoFailover=true`:

    every minute ─▶ Probe function (standby region): GetItem on the primary's Users table,
                    in the primary's region; fails when that region's DynamoDB does not answer
                      │ its Errors, 3 minutes of 3
                      ▼
                    CloudWatch alarm "primary unreachable" (standby region)
                      │ EventBridge: CloudWatch Alarm State Change, to ALARM
                      ▼                 (and the alarm topic: the operator hears of it)
                    Failover function (standby region): messenger_directory.failover.switch
                    (cell, "standby"): generation + 1 in this region's replica, the cell's
                    directory entry = this standby's URL (the directory merges, version + 1)

Everything runs in the standby's region and watches the primary's from outside; but the
switch writes the directory, so a cell whose primary shares the directory's region (the
first cell's) cannot fail over when that region is lost (docs/infra.md). A probe that cannot
run at all counts as no data, which is not a failover. Probe and Switch each have Errors
and Throttles alarms on the stack's alarm topic, which also hears the switch's alarm.
Failing back is an operator's decision (`python -m infra.failover`).
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra import bundling
from infra.cells import CellPlacement
from infra.config import DeploymentConfig
from infra.directory import _directory_function, failover_role_name
from infra.monitoring import function_alarms
from infra.regions import PARTITION
from messenger.contract import USERS_TABLE
from messenger_directory.failover import FAILOVER_HANDLER, PROBE_HANDLER, FailoverEnv
from messenger_directory.store import entry_key

# How often the primary is probed, and for how long it must fail before the switch.
PROBE_MINUTES = 1
FAILED_PROBES_TO_SWITCH = 3


class FailoverAutomation(Construct):
    """Probe, alarm, rule and Failover function: the standby switches its cell over."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        placement: CellPlacement,
        users_table: dynamodb.ITableV2,
        url: str,
        alarm_topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        cell = placement.cell
        assert placement.standby and cell.standby is not None
        code = bundling.directory_code(bundling.FAILOVER_PACKAGES)
        primary_table = placement.primary_table_name(USERS_TABLE)
        primary_table_arn = (
            f"arn:{PARTITION}:dynamodb:{cell.region}:{cell.account}:table/{primary_table}"
        )
        self.probe = _directory_function(
            self,
            "Probe",
            config=config,
            description=f"Messenger cell {cell.cell_id}: probes the primary's region",
            handler=PROBE_HANDLER,
            code=code,
            statements=[
                iam.PolicyStatement(
                    sid="ReadPrimaryGeneration",
                    actions=["dynamodb:GetItem"],
                    resources=[primary_table_arn],
                )
            ],
            memory_size=128,
            environment={
                FailoverEnv.PRIMARY_REGION.value: cell.region,
                FailoverEnv.PRIMARY_USERS_TABLE.value: primary_table,
            },
        )
        events.Rule(
            self,
            "ProbeSchedule",
            description=f"Probe cell {cell.cell_id}'s primary region every minute",
            schedule=events.Schedule.rate(Duration.minutes(PROBE_MINUTES)),
            targets=[events_targets.LambdaFunction(self.probe, retry_attempts=0)],
        )
        self.alarm = cw.Alarm(
            self,
            "PrimaryUnreachable",
            alarm_description=f"Cell {cell.cell_id}'s primary region ({cell.region}) did not "
            f"answer for {FAILED_PROBES_TO_SWITCH} minutes: the standby takes over",
            metric=self.probe.metric_errors(
                period=Duration.minutes(PROBE_MINUTES), statistic=cw.Stats.SUM
            ),
            threshold=1,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=FAILED_PROBES_TO_SWITCH,
            datapoints_to_alarm=FAILED_PROBES_TO_SWITCH,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        )
        # The operator hears of a switch as it starts, and of its end.
        self.alarm.add_alarm_action(cw_actions.SnsAction(alarm_topic))
        self.alarm.add_ok_action(cw_actions.SnsAction(alarm_topic))
        location = placement.directory
        self.function = _directory_function(
            self,
            "Switch",
            config=config,
            description=f"Messenger cell {cell.cell_id}: switches the cell to this standby",
            handler=FAILOVER_HANDLER,
            code=code,
            # Named, so that the directory's bucket policy can admit it from another account.
            role_name=failover_role_name(config.env, cell.cell_id),
            statements=[
                iam.PolicyStatement(
                    sid="BumpGeneration",
                    actions=["dynamodb:UpdateItem", "dynamodb:GetItem"],
                    resources=[users_table.table_arn],
                ),
                iam.PolicyStatement(
                    sid="WriteOwnEntry",
                    actions=["s3:PutObject"],
                    resources=[location.object_arn(entry_key(cell.cell_id))],
                    conditions={"StringEquals": {"s3:ResourceAccount": location.account}},
                ),
            ],
            memory_size=128,
            # One switch at a time.
            reserved_concurrent_executions=1,
            environment={
                FailoverEnv.CELL_ID.value: cell.cell_id,
                FailoverEnv.USERS_TABLE.value: users_table.table_name,
                FailoverEnv.URL.value: url,
                FailoverEnv.DIRECTORY_BUCKET.value: location.bucket,
                FailoverEnv.DIRECTORY_REGION.value: location.region,
                FailoverEnv.DIRECTORY_OWNER.value: location.account,
                # Each firing, and each refusal to fire (disarmed), is told the operators.
                FailoverEnv.ALARM_TOPIC.value: alarm_topic.topic_arn,
            },
        )
        # Publishing to the encrypted topic: exact KMS actions on its key (grant_publish
        # would grant kms:GenerateDataKey*, a wildcard).
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                sid="TellOperators", actions=["sns:Publish"], resources=[alarm_topic.topic_arn]
            )
        )
        if alarm_topic.master_key is not None:
            self.function.add_to_role_policy(
                iam.PolicyStatement(
                    sid="EncryptForOperators",
                    actions=["kms:GenerateDataKey", "kms:Decrypt"],
                    resources=[alarm_topic.master_key.key_arn],
                )
            )
        events.Rule(
            self,
            "OnPrimaryUnreachable",
            description=f"Switch cell {cell.cell_id} to its standby when its primary is lost",
            event_pattern=events.EventPattern(
                source=["aws.cloudwatch"],
                detail_type=["CloudWatch Alarm State Change"],
                resources=[self.alarm.alarm_arn],
                detail={"state": {"value": ["ALARM"]}},
            ),
            targets=[events_targets.LambdaFunction(self.function)],
        )
        # A probe that breaks, or a switch that fails, is news at once: either leaves the
        # cell without its automated failover.
        self.alarms = [
            *function_alarms(self, "Probe", self.probe, alarm_topic),
            *function_alarms(self, "Switch", self.function, alarm_topic),
        ]
