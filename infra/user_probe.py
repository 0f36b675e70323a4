"""A cell's probe from one vantage (issue 21; docs/availability.md "The probe").

Each side of a cell with a standby and `-c autoFailover=true` runs one, in its own region:

    every minute ─▶ Probe function: reads the cell's entry in the directory (the URL its
                    users are sent to), connects as the cell's probe user, pings, waits for
                    the pong (messenger_directory.user_probe), and publishes
                    Messenger/Probe ProbeSuccess (0/1) and ProbeRoundTripMs, by Cell and
                    Vantage, into the standby region's CloudWatch, where the vantages'
                    alarms and their composite (infra/failover_automation.py) are.

The probe user's keys derive from a secret of the probe's own (one user per vantage). Its
role reads that secret and that one directory entry, and may put metrics into the probe's
namespace only.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra import bundling
from infra.cells import CellPlacement
from infra.config import DeploymentConfig
from infra.directory import _directory_function, probe_role_name
from infra.monitoring import function_alarms
from infra.nag import acknowledge
from messenger_directory.config import ProbeEnv
from messenger_directory.failover import PRIMARY, STANDBY
from messenger_directory.probe import PROBE_HANDLER
from messenger_directory.store import entry_key
from messenger_directory.user_probe import PROBE_NAMESPACE
from messenger_protocol.cells import ShardMap

PROBE_MINUTES = 1


def probe_user_id(cell_id: str, vantage: str, shard_map: ShardMap) -> str:
    """The vantage's probe user: an id whose home is the probed cell (§6), so that the
    cell takes its handshake."""
    name = f"probe-{cell_id}-{vantage}"
    for n in range(10_000):
        user_id = name if n == 0 else f"{name}-{n}"
        if shard_map.home_of(user_id) == cell_id:
            return user_id
    raise ValueError(f"no probe user id like {name!r} lands in {cell_id}")


class UserProbe(Construct):
    """One vantage's probe of its cell: function, secret, schedule, Errors alarms."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        placement: CellPlacement,
        alarm_topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        cell = placement.cell
        assert cell.standby is not None, "a cell without a standby has nothing to switch"
        self.vantage = STANDBY if placement.standby else PRIMARY
        location = placement.directory
        fallback = placement.fallback_directory
        self.secret = secretsmanager.Secret(
            self,
            "Key",
            description=f"Messenger cell {cell.cell_id}: the {self.vantage} probe user's keys",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=64, exclude_punctuation=True
            ),
            # A new secret is a new key the cell refuses for the registered probe user.
            removal_policy=config.removal_policy,
        )
        self.function: lambda_.Function = _directory_function(
            self,
            "Probe",
            config=config,
            description=f"Messenger cell {cell.cell_id}: probes it as users reach it",
            handler=PROBE_HANDLER,
            # The probe signs its handshake: the asset with pynacl.
            code=bundling.directory_code(bundling.FAILOVER_PACKAGES, with_signing=True),
            # Named and tagged: the directory's bucket policy admits it to read the entry.
            role_name=probe_role_name(config.env, cell.cell_id, self.vantage),
            cell_tag=cell.cell_id,
            statements=[
                iam.PolicyStatement(
                    sid="ReadProbeKey",
                    actions=["secretsmanager:GetSecretValue"],
                    resources=[self.secret.secret_arn],
                ),
                iam.PolicyStatement(
                    sid="ReadCellEntry",
                    actions=["s3:GetObject"],
                    # In each directory region's bucket (same account): the second is read
                    # when the first cannot be.
                    resources=[
                        directory.object_arn(entry_key(cell.cell_id))
                        for directory in (location, *filter(None, [fallback]))
                    ],
                    conditions={"StringEquals": {"s3:ResourceAccount": location.account}},
                ),
                # PutMetricData has no resource to name: the namespace is the boundary.
                iam.PolicyStatement(
                    sid="PublishProbeMetrics",
                    actions=["cloudwatch:PutMetricData"],
                    resources=["*"],
                    conditions={"StringEquals": {"cloudwatch:namespace": PROBE_NAMESPACE}},
                ),
            ],
            memory_size=128,
            environment={
                ProbeEnv.CELL_ID.value: cell.cell_id,
                ProbeEnv.VANTAGE.value: self.vantage,
                ProbeEnv.USER_ID.value: probe_user_id(
                    cell.cell_id, self.vantage, placement.cells.shard_map
                ),
                ProbeEnv.SECRET.value: self.secret.secret_arn,
                ProbeEnv.METRIC_REGION.value: cell.standby.region,
                ProbeEnv.DIRECTORY_BUCKET.value: location.bucket,
                ProbeEnv.DIRECTORY_REGION.value: location.region,
                **(
                    {
                        ProbeEnv.DIRECTORY_FALLBACK_BUCKET.value: fallback.bucket,
                        ProbeEnv.DIRECTORY_FALLBACK_REGION.value: fallback.region,
                    }
                    if fallback is not None
                    else {}
                ),
            },
        )
        events.Rule(
            self,
            "Schedule",
            description=f"Probe cell {cell.cell_id} from its {self.vantage}'s region",
            schedule=events.Schedule.rate(Duration.minutes(PROBE_MINUTES)),
            targets=[events_targets.LambdaFunction(self.function, retry_attempts=0)],
        )
        acknowledge(
            self,
            "AwsSolutions-IAM5[Resource::*]",
            "cloudwatch:PutMetricData has no resource-level permissions; the statement is "
            f"bounded by its cloudwatch:namespace condition ({PROBE_NAMESPACE})",
        )
        acknowledge(
            self.secret,
            "AwsSolutions-SMG4",
            "The secret seeds the probe user's keys, which the cell registered at its first "
            "handshake and refuses to replace (docs/protocol.md §1); the user holds no data",
        )
        # A probe that cannot run leaves its vantage without data: news at once.
        self.alarms = function_alarms(self, "Probe", self.function, alarm_topic)
