"""The automated failover path of a cell's standby (docs/protocol.md §7, docs/availability.md).

Synthesized in the standby's stack only with `-c autoFailover=true`:

    every minute, from each side's region ─▶ Probe (infra/user_probe.py): a handshake as
                    the cell's probe user and a ping → pong, to the URL users are sent to;
                    Messenger/Probe ProbeSuccess by Cell and Vantage, in this region
                      │ per vantage: every probe failed, 3 minutes of 3
                      ▼
                    "primary vantage fails" AND "standby vantage fails"
                    = composite alarm "primary unreachable" (this region)
                      │ EventBridge: CloudWatch Alarm State Change, to ALARM
                      ▼                 (and the alarm topic: the operator hears of it)
                    Switch function (this region): messenger_directory.failover.failover,
                    which fires once, then stays disarmed until an operator re-arms it

A false alarm needs both vantages to fail real handshakes for 3 minutes (the primary
region's silence counts as failing: a lost region cannot publish; the standby's does not).
The switch writes the directory: with one directory region it writes the cell's entry into
the bucket, so a cell whose primary shares the directory's region (the first cell's) could
not fail over when that region is lost (refused at synth, docs/infra.md); with two
(`-c directorySecondRegion`) it writes the entry into the first region's bucket and
invokes its directory function, else the second region's, so either directory region may
be lost. Probe (each side) and Switch have Errors and Throttles alarms on the stack's
alarm topic, which also hears the composite alarm.
Failing back is an operator's decision (`python -m infra.failover`).
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
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
from infra.directory import _directory_function, directory_regions, failover_role_name
from infra.monitoring import function_alarms
from infra.regions import PARTITION
from infra.user_probe import PROBE_MINUTES, UserProbe
from messenger_directory.failover import FAILOVER_HANDLER, PRIMARY, STANDBY, FailoverEnv
from messenger_directory.store import entry_key
from messenger_directory.user_probe import (
    CELL_DIMENSION,
    PROBE_NAMESPACE,
    SUCCESS_METRIC,
    VANTAGE_DIMENSION,
)

# How long both vantages' probes must fail before the switch.
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
        api_id: str,
        alarm_topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        cell = placement.cell
        assert placement.standby and cell.standby is not None
        code = bundling.directory_code(bundling.FAILOVER_PACKAGES)
        # This side's vantage; the primary's stack runs the other (infra/stack.py).
        self.probe = UserProbe(
            self, "UserProbe", config=config, placement=placement, alarm_topic=alarm_topic
        )
        self.vantage_alarms = {
            vantage: self._vantage_alarm(cell.cell_id, vantage) for vantage in (PRIMARY, STANDBY)
        }
        # Both vantages must agree: one probe's noise, flap or bad deploy switches nothing.
        self.alarm = cw.CompositeAlarm(
            self,
            "PrimaryUnreachable",
            alarm_description=f"Cell {cell.cell_id}: users could not connect and ping from "
            f"either vantage for {FAILED_PROBES_TO_SWITCH} minutes: the standby takes over",
            alarm_rule=cw.AlarmRule.all_of(
                *(
                    cw.AlarmRule.from_alarm(alarm, cw.AlarmState.ALARM)
                    for alarm in self.vantage_alarms.values()
                )
            ),
        )
        # The operator hears of a switch as it starts, and of its end.
        self.alarm.add_alarm_action(cw_actions.SnsAction(alarm_topic))
        self.alarm.add_ok_action(cw_actions.SnsAction(alarm_topic))
        location = placement.directory
        # With two directory regions the switch tries them in order (the first's, then
        # the second's): the cell's entry into that region's bucket, then an invoke of
        # its function, which takes the entry into the table both regions read and
        # publishes (messenger_directory.entries). With one, the bucket's event runs it.
        regions = directory_regions(config.env, placement.cells)
        buckets = [r.bucket for r in regions] or [location.bucket]
        statements = [
            iam.PolicyStatement(
                sid="WriteOwnEntry",
                actions=["s3:PutObject"],
                resources=[
                    f"arn:{PARTITION}:s3:::{bucket}/{entry_key(cell.cell_id)}" for bucket in buckets
                ],
                conditions={"StringEquals": {"s3:ResourceAccount": location.account}},
            )
        ]
        if regions:
            statements.append(
                iam.PolicyStatement(
                    sid="AskTheDirectoryToPublish",
                    actions=["lambda:InvokeFunction"],
                    resources=[r.publisher for r in regions],
                )
            )
        self.function = _directory_function(
            self,
            "Switch",
            config=config,
            description=f"Messenger cell {cell.cell_id}: switches the cell to this standby",
            handler=FAILOVER_HANDLER,
            code=code,
            # Named and tagged, so that the directory's bucket policy can admit it from
            # another account.
            role_name=failover_role_name(config.env, cell.cell_id),
            cell_tag=cell.cell_id,
            statements=[
                iam.PolicyStatement(
                    sid="BumpGeneration",
                    actions=["dynamodb:UpdateItem", "dynamodb:GetItem"],
                    resources=[users_table.table_arn],
                ),
                # Its own stage's `fenced` variable, cleared (a failback set it): pings
                # there answered `pong` again (messenger_directory.stages.set_fenced).
                iam.PolicyStatement(
                    sid="OpenOwnStage",
                    actions=["apigateway:PATCH"],
                    resources=[
                        f"arn:{PARTITION}:apigateway:{Stack.of(self).region}::/apis/{api_id}"
                        f"/stages/{config.env}"
                    ],
                ),
                *statements,
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
                **(
                    {
                        FailoverEnv.DIRECTORY_PUBLISHERS.value: ",".join(
                            r.publisher for r in regions
                        ),
                        FailoverEnv.DIRECTORY_BUCKETS.value: ",".join(r.bucket for r in regions),
                    }
                    if regions
                    else {}
                ),
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
            *self.probe.alarms,
            *function_alarms(self, "Switch", self.function, alarm_topic),
        ]

    def _vantage_alarm(self, cell_id: str, vantage: str) -> cw.Alarm:
        """One vantage's view: every probe of a minute failed, minutes on end. The primary
        region's probe going silent counts as failing (a lost region cannot publish); the
        standby's does not (a probe that cannot run is no evidence, and its Errors alarm
        tells the operator)."""
        silent = (
            cw.TreatMissingData.BREACHING
            if vantage == PRIMARY
            else cw.TreatMissingData.NOT_BREACHING
        )
        return cw.Alarm(
            self,
            f"{vantage.capitalize()}VantageFails",
            alarm_description=f"Cell {cell_id}: the probe from the {vantage}'s region could "
            f"not connect and ping for {FAILED_PROBES_TO_SWITCH} minutes",
            metric=cw.Metric(
                namespace=PROBE_NAMESPACE,
                metric_name=SUCCESS_METRIC,
                dimensions_map={CELL_DIMENSION: cell_id, VANTAGE_DIMENSION: vantage},
                period=Duration.minutes(PROBE_MINUTES),
                statistic=cw.Stats.MAXIMUM,
            ),
            threshold=1,
            comparison_operator=cw.ComparisonOperator.LESS_THAN_THRESHOLD,
            evaluation_periods=FAILED_PROBES_TO_SWITCH,
            datapoints_to_alarm=FAILED_PROBES_TO_SWITCH,
            treat_missing_data=silent,
        )
