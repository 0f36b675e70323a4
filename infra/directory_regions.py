"""The directory in two regions (issue 21, docs/availability.md "The directory in two
regions"): `-c directorySecondRegion=R2 -c directoryWitness=W`.

    a cell's Switch: its entry into bucket R1 and Invoke publisher R1, else the same in R2
    (messenger_directory.failover); each publisher takes its bucket's entries into the table

    Messenger-<env>-Directory (R1)                    Messenger-<env>-Directory-R2 (R2)
    bucket R1  ◀── publisher R1 ──▶ bucket R2  ◀── publisher R2 ──▶ bucket R1
         ▲          │   reconcile R1 (schedule)          │   reconcile R2 (schedule)
         │          ▼                                    ▼
         │      versions table (DynamoDB global table, MRSC): replica R1, replica R2,
         │      witness W; a version number names one document whichever region
         │      publishes it (messenger_directory.versions); the cells' entries, which
         │      both publishers merge from (messenger_directory.entries)
    CloudFront: directory.json and directory/N.json from an origin group (bucket R1,
    failover to bucket R2 on 5xx, 403, 404), both read through the one OAC

Each publisher signs with the directory key: a KMS multi-Region key, primary in R1,
replica in R2 (same key material, so one public key). Each region has its own alarm
topic (CloudWatch alarms notify topics of their own region).

Nothing here exists in a one-region deployment: its templates are what they were.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import CfnDeletionPolicy, CfnOutput, Duration, Environment, Stack
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra import bundling
from infra.config import CellsConfig, DeploymentConfig
from infra.directory import (
    NONCURRENT_VERSION_DAYS,
    DirectoryOrigin,
    DirectoryStack,
    admit_roles,
    cloudfront_reads_directory,
    directory_bucket_name,
    failover_role_name,
    own_entry_arn,
    private_bucket,
    probe_role_name,
    publisher_environment,
    publisher_function,
)
from infra.directory_key import grant_sign
from infra.mesh import admit_relay_record_writers
from infra.monitoring import alarm_topic, function_alarms
from infra.nag import acknowledge, flattened
from infra.regions import PARTITION
from messenger_directory.handlers import RECONCILE_HANDLER, DirectoryEnv
from messenger_directory.store import COPY_PREFIX, DIRECTORY_KEY, entry_key
from messenger_directory.versions import KEY_ATTRIBUTE

# How often each region's reconcile runs: a mirror write its publisher could not make
# (the other region was down) is repaired within this, and a missed merge too.
RECONCILE_EVERY = Duration.minutes(5)
# What CloudFront fails over on: the primary bucket's region is down or answers badly
# (5xx), or the object is missing there (403: S3 answers a missing key so without
# ListBucket; 404), which a reconcile has not yet repaired.
FAILOVER_STATUS_CODES = [500, 502, 503, 504, 403, 404]
# The table's actions a publisher needs (versions.VersionLedger): read, reserve, raise.
LEDGER_ACTIONS = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
# A reconcile reads up to RECONCILE_WINDOW copies from each bucket, then merges.
RECONCILE_TIMEOUT = Duration.seconds(120)


@dataclass(frozen=True)
class DirectoryRegionPeer:
    """What the second region's stack takes from the first's."""

    bucket_name: str
    key_arn: str
    distribution_arn: str


def versions_table_name(env: str) -> str:
    """Named: both regions' publishers name it, and TableName is create-only."""
    return f"messenger-{env}-directory-versions"


def second_bucket_name(env: str, account: str, region: str) -> str:
    """The second region's bucket: the first's pattern, with its region."""
    return directory_bucket_name(env, account, region)


def versions_table(
    scope: Construct, config: DeploymentConfig, second_region: str, witness: str
) -> dynamodb.TableV2:
    """The versions table: a global table with multi-Region strong consistency, its
    replicas in the directory's two regions and its witness in `witness`."""
    return dynamodb.TableV2(
        scope,
        "Versions",
        table_name=versions_table_name(config.env),
        partition_key=dynamodb.Attribute(name=KEY_ATTRIBUTE, type=dynamodb.AttributeType.STRING),
        billing=dynamodb.Billing.on_demand(),
        multi_region_consistency=dynamodb.MultiRegionConsistency.STRONG,
        replicas=[dynamodb.ReplicaTableProps(region=second_region)],
        witness_region=witness,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
        removal_policy=config.removal_policy,
        deletion_protection=config.deletion_protection,
    )


def _table_arn(env: str, account: str, region: str) -> str:
    """The versions table's replica in `region`: each publisher reserves in its own."""
    return f"arn:{PARTITION}:dynamodb:{region}:{account}:table/{versions_table_name(env)}"


def replicate_publisher(
    function: lambda_.Function,
    *,
    env: str,
    account: str,
    region: str,
    bucket: s3.IBucket,
    mirror_bucket: str,
    mirror_region: str,
) -> dict[str, str]:
    """Make a region's directory function publish in two regions: the cells' entries and
    its number in its region's replica of the versions table, each version mirrored into
    the other region's bucket (messenger_directory.replicas, .entries); the variables it
    added. Its own bucket's entries it may write back (`entries.TableEntries.take_in`:
    a deploy wrote one there that a switch overrides)."""
    added = {
        DirectoryEnv.VERSIONS_TABLE.value: versions_table_name(env),
        DirectoryEnv.MIRROR_BUCKET.value: mirror_bucket,
        DirectoryEnv.MIRROR_REGION.value: mirror_region,
    }
    for name, value in added.items():
        function.add_environment(name, value)
    role = function.role
    assert role is not None
    for statement in mirror_statements(env, account, region, mirror_bucket):
        role.add_to_principal_policy(statement)
    entries = bucket.arn_for_objects(entry_key("*"))
    role.add_to_principal_policy(
        iam.PolicyStatement(sid="WriteBackEntries", actions=["s3:PutObject"], resources=[entries])
    )
    acknowledge(
        role,
        f"AwsSolutions-IAM5[Resource::{flattened(function, _mirror_arn(mirror_bucket))}/"
        f"{COPY_PREFIX}*]",
        "one numbered copy per directory version in the other region's bucket, each "
        "written once (If-None-Match) and read back to compare (reconcile)",
    )
    return added


def _mirror_arn(bucket: str) -> str:
    return f"arn:{PARTITION}:s3:::{bucket}"


def mirror_statements(
    env: str, account: str, region: str, mirror_bucket: str
) -> list[iam.PolicyStatement]:
    """The versions table's replica in `region` (numbers and the cells' entries: only
    the directory functions write them), and the other bucket's directory."""
    mirror = _mirror_arn(mirror_bucket)
    documents = [f"{mirror}/{DIRECTORY_KEY}", f"{mirror}/{COPY_PREFIX}*"]
    return [
        iam.PolicyStatement(
            sid="ReserveVersions",
            actions=LEDGER_ACTIONS,
            resources=[_table_arn(env, account, region)],
        ),
        iam.PolicyStatement(
            sid="MirrorDirectory", actions=["s3:GetObject", "s3:PutObject"], resources=documents
        ),
        # NoSuchKey, not AccessDenied, for a copy the other bucket lacks (reconcile).
        iam.PolicyStatement(sid="TellMissingCopies", actions=["s3:ListBucket"], resources=[mirror]),
    ]


def reconcile_on_schedule(
    scope: Construct,
    config: DeploymentConfig,
    publisher: lambda_.Function,
    environment: dict[str, str],
) -> lambda_.Function:
    """A region's scheduled reconcile (`Reconcile`): copies what either bucket missed,
    then merges as the publisher does, so it runs as the publisher's role (what it may
    touch is exactly the publisher's) with a log group of its own."""
    role = publisher.role
    assert role is not None
    log_group = logs.LogGroup(
        scope,
        "ReconcileLogs",
        retention=config.log_retention,
        removal_policy=config.removal_policy,
    )
    role.add_to_principal_policy(
        iam.PolicyStatement(
            sid="ReconcileLogGroup",
            actions=["logs:CreateLogStream", "logs:PutLogEvents"],
            resources=[log_group.log_group_arn],
        )
    )
    function = lambda_.Function(
        scope,
        "ReconcileFunction",
        description="Messenger directory: copies the versions either bucket missed, then merges",
        runtime=bundling.RUNTIME,
        architecture=bundling.ARCHITECTURE,
        code=bundling.directory_code(),
        handler=RECONCILE_HANDLER,
        role=role,
        timeout=RECONCILE_TIMEOUT,
        memory_size=256,
        log_group=log_group,
        logging_format=lambda_.LoggingFormat.JSON,
        # One at a time: a slow run never overlaps the next one the schedule starts.
        reserved_concurrent_executions=1,
        environment=environment,
    )
    events.Rule(
        scope,
        "ReconcileSchedule",
        description="Reconcile the directory's two buckets, then merge",
        schedule=events.Schedule.rate(RECONCILE_EVERY),
        targets=[events_targets.LambdaFunction(function)],
    )
    return function


class SecondRegion:
    """What the first region's stack adds for a second: the key made multi-Region, the
    versions table, its publisher publishing into both buckets, the reconcile and its
    schedule, their alarms, and the origin group."""

    def __init__(self, stack: DirectoryStack, config: DeploymentConfig, cells: CellsConfig):
        region, witness = cells.directory_second_region, cells.directory_witness
        account = stack.location.account
        assert region is not None and witness is not None
        self.region = region
        self.bucket_name = second_bucket_name(config.env, account, region)
        stack.key.make_multi_region()
        self.table = versions_table(stack, config, region, witness)
        replication = replicate_publisher(
            stack.publisher,
            env=config.env,
            account=account,
            region=stack.location.region,
            bucket=stack.bucket,
            mirror_bucket=self.bucket_name,
            mirror_region=region,
        )
        environment = publisher_environment(stack.location.bucket, stack.key.key.key_arn)
        self.reconcile = reconcile_on_schedule(
            stack, config, stack.publisher, {**environment, **replication}
        )
        self.alarms = function_alarms(stack, "Reconcile", self.reconcile, stack.alarm_topic)

    def origin_group(
        self,
        scope: Construct,
        primary: cloudfront.IOrigin,
        access_control: cloudfront.IOriginAccessControl,
    ) -> cloudfront.IOrigin:
        """directory.json's and the numbered copies' origin: the first region's bucket,
        and the second's when the first fails (`FAILOVER_STATUS_CODES`); both read
        through the same origin access control."""
        second = s3.Bucket.from_bucket_attributes(
            scope, "SecondBucket", bucket_name=self.bucket_name, region=self.region
        )
        return origins.OriginGroup(
            primary_origin=primary,
            fallback_origin=DirectoryOrigin(second, access_control),
            fallback_status_codes=FAILOVER_STATUS_CODES,
        )


class DirectoryRegionStack(Stack):
    """The directory's second region: its bucket, its publisher and reconcile (signing
    with the directory key's replica), their alarms. Deployed after the first region's
    stack, whose key and distribution it names (CDK's cross-region references)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        cells: CellsConfig,
        first: DirectoryRegionPeer,
    ) -> None:
        region = cells.directory_second_region
        account = cells.directory_target.account
        assert region is not None and account is not None
        super().__init__(
            scope,
            construct_id,
            env=Environment(account=account, region=region),
            cross_region_references=True,
            description=f"Messenger cell directory ({config.env}), second region: "
            "directory.json mirrored, published and reconciled here too",
        )
        self.config = config
        self.bucket_name = second_bucket_name(config.env, account, region)
        access_logs = private_bucket(
            self,
            "AccessLogs",
            config,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(config.log_retention_days))],
        )
        self.bucket = private_bucket(
            self,
            "Bucket",
            config,
            bucket_name=self.bucket_name,
            versioned=True,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix="directory/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    noncurrent_version_expiration=Duration.days(NONCURRENT_VERSION_DAYS)
                )
            ],
        )
        self.bucket.add_to_resource_policy(
            cloudfront_reads_directory(self.bucket, first.distribution_arn)
        )
        # The cells of other accounts read the signed directory (their shard map) and the
        # peers' Relay records here when the first region's bucket cannot be read
        # (messenger_aws.directory_buckets), and each side's deploy writes its record here
        # too: the first bucket's two statements (infra/mesh.py, infra/app.py).
        if cells.organization and len(cells.accounts) > 1:
            admit_relay_record_writers(self.bucket, config.env, cells.organization)
        # A switch writes its cell's entry here when the first region does not answer
        # (messenger_directory.failover): the standbys' Switch roles of other accounts
        # may put and read their own cell's entry, by their tag, as in the first bucket;
        # each vantage's probe reads it here when the first bucket cannot be read
        # (messenger_directory.probe), as in the first bucket.
        if config.auto_failover and any(cell.account != account for cell in cells.cells):
            assert cells.organization is not None
            admit_roles(
                self.bucket,
                cells.organization,
                "CellEntryWriters",
                ["s3:PutObject", "s3:GetObject"],
                own_entry_arn(self.bucket),
                [failover_role_name(config.env, "*")],
            )
            if any(cell.standby for cell in cells.cells):
                admit_roles(
                    self.bucket,
                    cells.organization,
                    "CellEntryProbes",
                    ["s3:GetObject"],
                    own_entry_arn(self.bucket),
                    [probe_role_name(config.env, "*", "*")],
                )
        # The directory key's replica: the same key material (one public key for
        # clients), so this region signs without calling the first region's KMS.
        self.key = kms.CfnReplicaKey(
            self,
            "KeyReplica",
            description="Messenger directory key (replica): signs every directory version (§6)",
            primary_key_arn=first.key_arn,
            key_policy=iam.PolicyDocument(
                statements=[
                    iam.PolicyStatement(
                        sid="AccountAdministersKey",
                        principals=[iam.AccountRootPrincipal()],
                        actions=["kms:*"],
                        resources=["*"],
                    )
                ]
            ),
        )
        self.key.cfn_options.deletion_policy = CfnDeletionPolicy.RETAIN
        self.key.cfn_options.update_replace_policy = CfnDeletionPolicy.RETAIN
        self.publisher = publisher_function(
            self,
            config=config,
            cells=cells,
            bucket=self.bucket,
            bucket_name=self.bucket_name,
            account=account,
            key_arn=self.key.attr_arn,
        )
        grant_sign(self.publisher, self.key.attr_arn)
        replication = replicate_publisher(
            self.publisher,
            env=config.env,
            account=account,
            region=region,
            bucket=self.bucket,
            mirror_bucket=first.bucket_name,
            mirror_region=cells.directory_target.region,
        )
        environment = publisher_environment(self.bucket_name, self.key.attr_arn)
        self.reconcile = reconcile_on_schedule(
            self, config, self.publisher, {**environment, **replication}
        )
        # CloudWatch alarms notify a topic of their own region: this region has one.
        self.alarm_topic = alarm_topic(
            Construct(self, "Monitoring"), config.removal_policy, config.alarm_email
        )
        self.alarms = [
            *function_alarms(self, "Publish", self.publisher, self.alarm_topic),
            *function_alarms(self, "Reconcile", self.reconcile, self.alarm_topic),
        ]
        CfnOutput(
            self,
            "DirectoryBucketName",
            value=self.bucket.bucket_name,
            description="The directory's second bucket: CloudFront's fallback origin",
        )
        CfnOutput(
            self,
            "AlarmTopicArn",
            value=self.alarm_topic.topic_arn,
            description="Subscribe here to receive the second region's directory alarms",
        )
