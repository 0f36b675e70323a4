"""The directory (docs/protocol.md §6) on AWS: `directory.json` at a stable HTTPS URL.

    cell stacks (any account, any region)        Messenger-<env>-Directory (the first cell's)
    DirectoryEntry custom resource ──PutObject──▶ S3 bucket, private: cells/<cell>.json
                                                    │ EventBridge: Object Created, cells/
                                                    ▼
                                                  directory function (reserved concurrency 1)
                                                    │ merge, validate, version + 1
                                                    ▼
    clients ──HTTPS──▶ CloudFront (OAC, 5 s) ───▶ directory.json      = output DirectoryUrl
                         (immutable)        ───▶ directory/N.json     each version, forever
                                                  signed by the KMS directory key
                                                                       = output DirectoryPublicKey
    browsers ─HTTPS──▶   the same, / and the rest ▶ S3 bucket, private: the web app
                                                                       = output WebUrl

A cell writes only its own entry (its role's policy names the one key; for a cell of
another account the bucket policy admits it by its role's cell tag); only the directory
function writes directory.json, one merge at a time, so the version increases by exactly
one per change (`messenger_directory.store`). A failover
(docs/protocol.md §7) takes the same path: write the cell's entry, the function publishes.

The deployment's one web app (infra/web.py `Site`) is served by the same distribution, so
its `config.js` names the directory on the page's own origin (`/directory.json`): the page
finds its user's home cell as every other client does. No cell deploys a web app.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING

import jsii
from aws_cdk import (
    CfnOutput,
    CustomResource,
    Duration,
    Environment,
    RemovalPolicy,
    Stack,
    Tags,
)
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct, IConstruct

from infra import bundling
from infra.config import CellsConfig, DeploymentConfig
from infra.directory_key import DirectoryKey, numbered_copies_behavior
from infra.monitoring import alarm_topic, function_alarms
from infra.nag import acknowledge, flattened
from infra.regions import PARTITION
from infra.web import INDEX, Site, regional_api_sources
from messenger_directory.handlers import (
    PUBLISH_ENTRY_HANDLER,
    PUBLISH_HANDLER,
    SEED_HANDLER,
    DirectoryEnv,
    EntryProperty,
    SeedProperty,
)
from messenger_directory.sides import DirectoryRegion
from messenger_directory.store import (
    CACHE_SECONDS,
    COPY_PREFIX,
    DIRECTORY_KEY,
    ENTRY_PREFIX,
    SEED_MAP_KEY,
    entry_key,
)

if TYPE_CHECKING:
    from infra.directory_regions import SecondRegion

LAMBDA_PRINCIPAL = "lambda.amazonaws.com"
# The tag naming the cell a writer of the directory's bucket writes for (its role's): the
# bucket policy lets a role of another account write and read under that cell only, one
# statement for every cell (`DirectoryStack._admit_cells`, infra/mesh.py).
CELL_TAG = "messenger-cell"
CLOUDFRONT_PRINCIPAL = "cloudfront.amazonaws.com"
ENTRY_RESOURCE_TYPE = "Custom::DirectoryEntry"
SEED_RESOURCE_TYPE = "Custom::DirectorySeed"
# Old versions of directory.json and of the entries: a record of what clients were told.
NONCURRENT_VERSION_DAYS = 30


@dataclass(frozen=True)
class DirectoryLocation:
    """Where the directory's bucket is: known to every cell at synth time."""

    bucket: str
    account: str
    region: str

    @property
    def bucket_arn(self) -> str:
        return f"arn:{PARTITION}:s3:::{self.bucket}"

    def object_arn(self, key: str) -> str:
        return f"{self.bucket_arn}/{key}"


def directory_location(env: str, cells: CellsConfig) -> DirectoryLocation:
    """The bucket's name is deterministic (cells in other accounts must name it), and
    unique per environment, account and region; writers check its owner (`store`)."""
    assert cells.has_directory, "a deployment without -c cells has no directory"
    target = cells.directory_target
    assert target.account is not None
    return DirectoryLocation(
        bucket=directory_bucket_name(env, target.account, target.region),
        account=target.account,
        region=target.region,
    )


def directory_bucket_name(env: str, account: str, region: str) -> str:
    """A directory region's bucket: deterministic (cells in other accounts must name it),
    unique per environment, account and region."""
    return f"messenger-{env}-directory-{account}-{region}"


def directory_function_name(env: str) -> str:
    """Named, so that each cell's Mover (infra/mover.py) may invoke it by its ARN."""
    return f"messenger-{env}-directory-publish"


def directory_function_arn(env: str, location: DirectoryLocation) -> str:
    return (
        f"arn:{PARTITION}:lambda:{location.region}:{location.account}:function:"
        f"{directory_function_name(env)}"
    )


def directory_regions(env: str, cells: CellsConfig) -> tuple[DirectoryRegion, ...]:
    """A directory in two regions: each region's bucket and function, in the order a
    switch tries them (the first region's first); () for a directory in one region."""
    second = cells.directory_second_region
    if second is None:
        return ()
    first = directory_location(env, cells)
    return tuple(
        DirectoryRegion(
            bucket=location.bucket,
            region=location.region,
            publisher=directory_function_arn(env, location),
        )
        for location in (
            first,
            replace(first, bucket=directory_bucket_name(env, first.account, second), region=second),
        )
    )


def entry_writer_role_name(env: str, cell_id: str) -> str:
    """Named, so that the bucket policy can admit this one role of another account."""
    return f"messenger-{env}-{cell_id}-directory-entry"


def failover_role_name(env: str, cell_id: str) -> str:
    """The standby's Failover function's role: it writes the cell's entry too."""
    return f"messenger-{env}-{cell_id}-failover"


def probe_role_name(env: str, cell_id: str, vantage: str) -> str:
    """A vantage's probe (infra/user_probe.py): it reads the cell's entry."""
    return f"messenger-{env}-{cell_id}-probe-{vantage}"


def _directory_function(
    scope: Construct,
    name: str,
    *,
    config: DeploymentConfig,
    description: str,
    handler: str,
    statements: list[iam.PolicyStatement],
    role_name: str | None = None,
    code: lambda_.Code | None = None,
    cell_tag: str | None = None,
    **properties: object,
) -> lambda_.Function:
    """A function of the directory's asset, with a log group and a role of its own: its
    log group, then `statements`, nothing else. `cell_tag`: the cell its role writes or
    reads the directory's bucket for (CELL_TAG), what the bucket policy admits it by."""
    log_group = logs.LogGroup(
        scope,
        f"{name}Logs",
        retention=config.log_retention,
        removal_policy=config.removal_policy,
    )
    role = iam.Role(
        scope,
        f"{name}Role",
        role_name=role_name,
        assumed_by=iam.ServicePrincipal(LAMBDA_PRINCIPAL),
        description=description,
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="OwnLogGroup",
            actions=["logs:CreateLogStream", "logs:PutLogEvents"],
            resources=[log_group.log_group_arn],
        )
    )
    for statement in statements:
        role.add_to_policy(statement)
    if cell_tag is not None:
        Tags.of(role).add(CELL_TAG, cell_tag)
    return lambda_.Function(
        scope,
        f"{name}Function",
        description=description,
        runtime=bundling.RUNTIME,
        architecture=bundling.ARCHITECTURE,
        code=code or bundling.directory_code(),
        handler=handler,
        role=role,
        timeout=Duration.seconds(60),
        log_group=log_group,
        logging_format=lambda_.LoggingFormat.JSON,
        **properties,  # type: ignore[arg-type]
    )


def _cell_stage_arns(config: DeploymentConfig, cells: CellsConfig, account: str) -> list[str]:
    """The cells' stages in `account` (each region, standby too), which the directory
    function sets `dv` on (messenger_directory.stages). A cell in another account keeps
    its stage's `dv`, in its pong, ack and syncDone alike (docs/performance.md: open)."""
    regions = sorted(
        {
            target.region
            for cell in cells.cells
            if cell.account == account
            for target in (cell.target, cell.standby)
            if target is not None
        }
    )
    return [
        f"arn:{PARTITION}:apigateway:{region}::/apis/*/stages/{config.env}" for region in regions
    ]


def publisher_environment(bucket_name: str, key_arn: str) -> dict[str, str]:
    """A directory function's bucket and key (messenger_directory.config): the shard map is
    the published one (or, before the first publish, the seed: `DirectoryStack._seed_map`)."""
    return {DirectoryEnv.BUCKET.value: bucket_name, DirectoryEnv.KEY_ID.value: key_arn}


def publisher_function(
    scope: Construct,
    *,
    config: DeploymentConfig,
    cells: CellsConfig,
    bucket: s3.IBucket,
    bucket_name: str,
    account: str,
    key_arn: str,
) -> lambda_.Function:
    """A region's directory function (`Publish`): merges its bucket's entries, signs with
    `key_arn`, one run at a time. Its role: that bucket's entries and directory, the
    cells' stages in `account`, nothing else (the key's grant is the caller's)."""
    directory = bucket.arn_for_objects(DIRECTORY_KEY)
    copies = bucket.arn_for_objects(f"{COPY_PREFIX}*")
    # Every cell's entry, by one pattern: the map's cells change with shard moves,
    # and the policy must not grow with them.
    entries = bucket.arn_for_objects(entry_key("*"))
    seed = bucket.arn_for_objects(SEED_MAP_KEY)
    stages = _cell_stage_arns(config, cells, account)
    function = _directory_function(
        scope,
        "Publish",
        config=config,
        description="Messenger directory: merges the cells' entries into directory.json",
        handler=PUBLISH_HANDLER,
        statements=[
            iam.PolicyStatement(
                sid="ReadEntriesAndDirectory",
                actions=["s3:GetObject"],
                resources=[entries, seed, directory, copies],
            ),
            # The numbered copies are written once each (If-None-Match), never over.
            iam.PolicyStatement(
                sid="WriteDirectory", actions=["s3:PutObject"], resources=[directory, copies]
            ),
            # With it S3 answers a missing entry with NoSuchKey (a cell not deployed
            # yet) instead of AccessDenied, which could not be told from a denial.
            iam.PolicyStatement(
                sid="TellMissingEntries",
                actions=["s3:ListBucket"],
                resources=[bucket.bucket_arn],
            ),
            *(
                [
                    iam.PolicyStatement(
                        sid="SetDirectoryVersionOnStages",
                        actions=["apigateway:PATCH"],
                        resources=stages,
                    )
                ]
                if stages
                else []
            ),
        ],
        memory_size=256,
        function_name=directory_function_name(config.env),
        # One merge (or a move's publish) at a time: each reads the version it increases.
        reserved_concurrent_executions=1,
        environment=publisher_environment(bucket_name, key_arn),
    )
    # Each cell's Mover publishes a move's map through it (infra/mover.py), and with two
    # directory regions each cell's Switch its switches (infra/failover_automation.py):
    # the cells of other accounts are admitted here by their organization (one
    # permission, whatever the number of cells), their roles by their own policies.
    if any(cell.account != account for cell in cells.cells):
        assert cells.organization is not None
        function.add_permission(
            "InvokeByMoversOfTheOrganization",
            principal=iam.OrganizationPrincipal(cells.organization),
            action="lambda:InvokeFunction",
        )
    role = function.role
    assert role is not None
    acknowledge(
        role,
        f"AwsSolutions-IAM5[Resource::{flattened(scope, entries)}]",
        "every cell's entry (cells/<cell>.json), which the directory merges: the cells "
        "are the published map's, which shard moves change, so they are not listed",
    )
    acknowledge(
        role,
        f"AwsSolutions-IAM5[Resource::{flattened(scope, copies)}]",
        "one numbered copy per directory version (directory/N.json, docs/protocol.md §6), "
        "each written once (If-None-Match) and read back only to compare",
    )
    for stage in stages:
        acknowledge(
            role,
            f"AwsSolutions-IAM5[Resource::{flattened(scope, stage)}]",
            "a cell's API id is made when its stack deploys, after this one; the grant "
            "is UpdateStage on this environment's stage of each cell region's APIs",
        )
    return function


def own_entry_arn(bucket: s3.IBucket) -> str:
    """`cells/<the caller's cell tag>.json`: a cell's role's own entry, whatever the cell."""
    return bucket.arn_for_objects(entry_key(f"${{aws:PrincipalTag/{CELL_TAG}}}"))


def admit_roles(
    bucket: s3.IBucket,
    organization: str,
    sid: str,
    actions: list[str],
    resource: str,
    role_names: list[str],
) -> None:
    """One statement of `bucket`'s policy: roles named by `role_names`' patterns in any
    account of the organization may do `actions` on `resource`."""
    patterns = [f"arn:{PARTITION}:iam::*:role/{name}" for name in role_names]
    bucket.add_to_resource_policy(
        iam.PolicyStatement(
            sid=sid,
            principals=[iam.AnyPrincipal()],
            actions=actions,
            resources=[resource],
            conditions={
                "StringEquals": {"aws:PrincipalOrgID": organization},
                "ArnLike": {"aws:PrincipalArn": patterns[0] if len(patterns) == 1 else patterns},
            },
        )
    )


def private_bucket(
    scope: Construct, construct_id: str, config: DeploymentConfig, **properties: object
) -> s3.Bucket:
    """Private, TLS 1.2+ only, encrypted; in dev gone with the stack, objects and all."""
    return s3.Bucket(
        scope,
        construct_id,
        encryption=s3.BucketEncryption.S3_MANAGED,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        enforce_ssl=True,
        minimum_tls_version=1.2,
        removal_policy=config.removal_policy,
        # CDK's provider empties the bucket before CloudFormation deletes it.
        auto_delete_objects=config.removal_policy == RemovalPolicy.DESTROY,
        **properties,  # type: ignore[arg-type]
    )


def cloudfront_reads_directory(bucket: s3.IBucket, distribution_arn: str) -> iam.PolicyStatement:
    """The bucket policy's grant to the distribution: directory.json and the copies only."""
    return iam.PolicyStatement(
        sid="CloudFrontReadsDirectoryJson",
        principals=[iam.ServicePrincipal(CLOUDFRONT_PRINCIPAL)],
        actions=["s3:GetObject"],
        resources=[
            bucket.arn_for_objects(DIRECTORY_KEY),
            bucket.arn_for_objects(f"{COPY_PREFIX}*"),
        ],
        conditions={"StringEquals": {"AWS:SourceArn": distribution_arn}},
    )


@jsii.implements(cloudfront.IOrigin)
class DirectoryOrigin:
    """The bucket as CloudFront's origin, read through an origin access control.

    CDK's `S3BucketOrigin.with_origin_access_control` would also let CloudFront read every
    object of the bucket (`bucket/*`); the stack's own policy lets it read directory.json
    only, so this origin grants nothing itself.
    """

    def __init__(self, bucket: s3.IBucket, access_control: cloudfront.IOriginAccessControl):
        self._bucket = bucket
        self._access_control = access_control

    def bind(
        self, scope: Construct, *, origin_id: str, distribution_id: str | None = None
    ) -> cloudfront.OriginBindConfig:
        return cloudfront.OriginBindConfig(
            origin_property=cloudfront.CfnDistribution.OriginProperty(
                id=origin_id,
                domain_name=self._bucket.bucket_regional_domain_name,
                # With an origin access control, CloudFront wants an empty identity here.
                s3_origin_config=cloudfront.CfnDistribution.S3OriginConfigProperty(
                    origin_access_identity=""
                ),
                origin_access_control_id=self._access_control.origin_access_control_id,
            )
        )


class DirectoryStack(Stack):
    """The directory's bucket, its publishing function and its CloudFront distribution."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        cells: CellsConfig,
    ) -> None:
        location = directory_location(config.env, cells)
        super().__init__(
            scope,
            construct_id,
            env=Environment(account=location.account, region=location.region),
            description=f"Messenger cell directory ({config.env}): directory.json on "
            "CloudFront, merged from the cells' entries",
        )
        self.config = config
        self.cells = cells
        self.location = location
        access_logs = self._bucket(
            "AccessLogs",
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(config.log_retention_days))],
        )
        self.bucket = self._bucket(
            "Bucket",
            bucket_name=location.bucket,
            versioned=True,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix="directory/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    noncurrent_version_expiration=Duration.days(NONCURRENT_VERSION_DAYS)
                )
            ],
        )
        # S3 tells EventBridge of every object written; a rule runs the directory function
        # for entries. (Set on the bucket itself: CDK's `event_bridge_enabled` would add a
        # custom resource, and a function of CDK's, to do the same.)
        cfn_bucket = self.bucket.node.default_child
        assert isinstance(cfn_bucket, s3.CfnBucket)
        cfn_bucket.notification_configuration = s3.CfnBucket.NotificationConfigurationProperty(
            event_bridge_configuration=s3.CfnBucket.EventBridgeConfigurationProperty(
                event_bridge_enabled=True
            )
        )
        self._admit_entry_writers()
        self.key = DirectoryKey(
            self, "Key", make_function=partial(_directory_function, config=config)
        )
        self.seed = self._seed_map()
        self.publisher = self._publisher()
        self.key.grant_sign(self.publisher)
        # Every cell's directory entry, and every failover, reaches clients through it.
        self.alarm_topic = alarm_topic(
            Construct(self, "Monitoring"), config.removal_policy, config.alarm_email
        )
        self.alarms = function_alarms(self, "Publish", self.publisher, self.alarm_topic)
        # `-c directorySecondRegion`: the versions table, the mirror, the reconcile.
        self.second_region = self._second_region()
        self.site = Site(
            Construct(self, "Web"),
            connect_sources=["'self'", *regional_api_sources(cells.api_regions)],
            connects_to="this origin and API Gateway in the cells' regions",
            removal_policy=config.removal_policy,
        )
        self.distribution = self._distribution()
        directory_url = f"https://{self.distribution.distribution_domain_name}/{DIRECTORY_KEY}"
        # The page follows the signed directory as the local one does: where it is, and the
        # key it must be signed with, read off KMS at deploy time (`DirectoryKey`).
        self.site.deploy(
            self.distribution,
            {"directoryUrl": directory_url, "directoryKey": self.key.public_key},
        )
        CfnOutput(
            self,
            "DirectoryUrl",
            value=directory_url,
            description="The cells' directory (docs/protocol.md §6): clients fetch it to find "
            "their home cell",
        )
        self.key.output(self)
        CfnOutput(
            self,
            "DirectoryBucketName",
            value=self.bucket.bucket_name,
            description="Each cell's entry is cells/<cell>.json here (a failover writes it)",
        )
        CfnOutput(
            self,
            "AlarmTopicArn",
            value=self.alarm_topic.topic_arn,
            description="Subscribe here to receive the directory's alarms",
        )
        CfnOutput(
            self,
            "WebUrl",
            value=f"https://{self.distribution.distribution_domain_name}/",
            description="The web app (open it in a browser): it finds each user's home cell "
            "in the directory",
        )

    def _second_region(self) -> SecondRegion | None:
        """What the first region adds for a second (infra/directory_regions.py)."""
        if self.cells.directory_second_region is None:
            return None
        from infra.directory_regions import SecondRegion  # it builds on this module

        second = SecondRegion(self, self.config, self.cells)
        self.alarms += second.alarms
        return second

    def _bucket(self, construct_id: str, **properties: object) -> s3.Bucket:
        return private_bucket(self, construct_id, self.config, **properties)

    def _admit_entry_writers(self) -> None:
        """The bucket policy lets the cells of other accounts of the organization write
        their own entry: a cell's entry writer (and, with automated failover, its
        standby's Failover function) may put and read `cells/<its cell tag>.json`, each
        vantage's probe may read it. Roles are admitted by their fixed names' pattern and
        the cell tag on them (CELL_TAG), never one by one: two statements whatever the
        number of cells (a cell in this account needs only its role's own policy)."""
        if all(cell.account == self.location.account for cell in self.cells.cells):
            return
        organization = self.cells.organization
        assert organization is not None, "cells in several accounts name their organization"
        own_entry = own_entry_arn(self.bucket)
        env = self.config.env
        writers = [entry_writer_role_name(env, "*")]
        if self.config.auto_failover:
            writers.append(failover_role_name(env, "*"))
        self._admit_roles("CellEntryWriters", ["s3:PutObject", "s3:GetObject"], own_entry, writers)
        if self.config.auto_failover and any(cell.standby for cell in self.cells.cells):
            # Each vantage's probe reads the entry (the URL users are sent to).
            self._admit_roles(
                "CellEntryProbes", ["s3:GetObject"], own_entry, [probe_role_name(env, "*", "*")]
            )

    def _admit_roles(
        self, sid: str, actions: list[str], resource: str, role_names: list[str]
    ) -> None:
        assert self.cells.organization is not None
        admit_roles(self.bucket, self.cells.organization, sid, actions, resource, role_names)

    def _seed_map(self) -> CustomResource:
        """The deployment's first shard map, one object in the bucket (store.SEED_MAP_KEY)
        that the first merge publishes: not the directory function's environment (4 KB,
        ~17 bytes a cell) nor the cells' entries, so that nothing grows per cell but this
        one property. After the first publish only shard moves change the map."""
        seed = self.bucket.arn_for_objects(SEED_MAP_KEY)
        function = _directory_function(
            self,
            "Seed",
            config=self.config,
            description="Messenger directory: writes the deployment's first shard map",
            handler=SEED_HANDLER,
            statements=[
                iam.PolicyStatement(sid="WriteSeedMap", actions=["s3:PutObject"], resources=[seed])
            ],
            memory_size=128,
        )
        resource = CustomResource(
            self,
            "SeedMap",
            service_token=function.function_arn,
            resource_type=SEED_RESOURCE_TYPE,
            properties={
                SeedProperty.BUCKET.value: self.location.bucket,
                SeedProperty.SHARD_MAP.value: self.cells.shard_map.to_compact(),
            },
        )
        resource.node.add_dependency(self.bucket)
        return resource

    def _publisher(self) -> lambda_.Function:
        """The directory function: merges after each entry write, one run at a time."""
        function = publisher_function(
            self,
            config=self.config,
            cells=self.cells,
            bucket=self.bucket,
            bucket_name=self.location.bucket,
            account=self.location.account,
            key_arn=self.key.key.key_arn,
        )
        events.Rule(
            self,
            "EntryWritten",
            description="A cell wrote its directory entry: merge",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={
                    "bucket": {"name": [self.bucket.bucket_name]},
                    "object": {"key": [{"prefix": ENTRY_PREFIX}]},
                },
            ),
            targets=[events_targets.LambdaFunction(function)],
        )
        return function

    def _distribution(self) -> cloudfront.Distribution:
        """directory.json over HTTPS only, cached for seconds, read from S3 through OAC;
        every other path is the web app's (`Site`)."""
        # CloudFront keeps a copy at most as long as a client may (Cache-Control:
        # max-age=5 on the object), so a failover shows within that.
        cache = cloudfront.CachePolicy(
            self,
            "CachePolicy",
            comment="Messenger directory: the object's max-age, at most "
            f"{CACHE_SECONDS} s; no query string, header or cookie in the key",
            min_ttl=Duration.seconds(0),
            default_ttl=Duration.seconds(CACHE_SECONDS),
            max_ttl=Duration.seconds(CACHE_SECONDS),
            cookie_behavior=cloudfront.CacheCookieBehavior.none(),
            header_behavior=cloudfront.CacheHeaderBehavior.none(),
            query_string_behavior=cloudfront.CacheQueryStringBehavior.none(),
            enable_accept_encoding_gzip=True,
            enable_accept_encoding_brotli=True,
        )
        headers = cloudfront.ResponseHeadersPolicy(
            self,
            "ResponseHeaders",
            comment="Messenger directory: readable from any web page, HTTPS only",
            # A public document, the same for everyone: web clients of any origin read it.
            cors_behavior=cloudfront.ResponseHeadersCorsBehavior(
                access_control_allow_credentials=False,
                access_control_allow_headers=["*"],
                access_control_allow_methods=["GET", "HEAD"],
                access_control_allow_origins=["*"],
                origin_override=True,
            ),
            security_headers_behavior=cloudfront.ResponseSecurityHeadersBehavior(
                strict_transport_security=cloudfront.ResponseHeadersStrictTransportSecurity(
                    access_control_max_age=Duration.days(365),
                    include_subdomains=True,
                    override=True,
                ),
                content_type_options=cloudfront.ResponseHeadersContentTypeOptions(override=True),
            ),
        )
        access_control = cloudfront.S3OriginAccessControl(
            self,
            "OriginAccessControl",
            description="CloudFront signs its reads of the directory's bucket",
            signing=cloudfront.Signing.SIGV4_ALWAYS,
        )
        origin: cloudfront.IOrigin = DirectoryOrigin(self.bucket, access_control)
        if self.second_region is not None:
            origin = self.second_region.origin_group(self, origin, access_control)
        directory = cloudfront.BehaviorOptions(
            origin=origin,
            viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
            allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
            cached_methods=cloudfront.CachedMethods.CACHE_GET_HEAD,
            cache_policy=cache,
            response_headers_policy=headers,
            compress=True,
        )
        distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment=f"Messenger {self.config.env} cell directory and web app",
            default_root_object=INDEX,
            default_behavior=self.site.behavior(),
            additional_behaviors={
                f"/{DIRECTORY_KEY}": directory,
                f"/{COPY_PREFIX}*": numbered_copies_behavior(self, directory),
            },
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            # Before the first merge, and for any path the app does not have, S3 answers
            # 403: cached no longer than the document, so the first publication shows as
            # fast.
            error_responses=[
                cloudfront.ErrorResponse(http_status=status, ttl=Duration.seconds(CACHE_SECONDS))
                for status in (403, 404)
            ],
        )
        self.bucket.add_to_resource_policy(
            cloudfront_reads_directory(self.bucket, distribution.distribution_arn)
        )
        self._acknowledge_distribution(distribution)
        return distribution

    @staticmethod
    def _acknowledge_distribution(distribution: IConstruct) -> None:
        acknowledge(
            distribution,
            "AwsSolutions-CFR1",
            "every user of the messenger, in any country, fetches the directory to find "
            "their home cell, and opens the web app from here; restricting countries "
            "would lock them out",
        )
        acknowledge(
            distribution,
            "AwsSolutions-CFR2",
            "one small public JSON document and the static web app, the same for "
            "everyone, cached at the edge and read-only, with no server code behind them; "
            "WAF would bill each of a billion users' fetches to filter nothing",
        )
        acknowledge(
            distribution,
            "AwsSolutions-CFR3",
            "CloudFront's standard logs record every viewer's IP address, which the "
            "messenger keeps out of all its logs; CloudFront's request and error metrics "
            "and the directory bucket's access logs remain",
        )
        acknowledge(
            distribution,
            "AwsSolutions-CFR4",
            "the stable URL is the distribution's own cloudfront.net name, whose "
            "certificate and TLS policy CloudFront sets; a custom domain with an ACM "
            "certificate can require TLSv1.2_2021",
        )


class DirectoryEntry(Construct):
    """A cell's entry in the directory: its WebSocket URL, written whenever it changes.

    A CloudFormation custom resource backed by a function of the cell's own, whose role
    (named, for the bucket policy) may put this cell's entry only, and only into a
    bucket of the directory's account.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        cell_id: str,
        location: DirectoryLocation,
        url: str,
        epoch: str,
    ) -> None:
        """`epoch`: the cell's first epoch (`<region>#0`, docs/protocol.md §7); a switch
        writes later ones, and a deploy keeps what the entry has (store.write_entry)."""
        super().__init__(scope, construct_id)
        function = _directory_function(
            self,
            "Writer",
            config=config,
            description=f"Messenger cell {cell_id}: writes its directory entry",
            handler=PUBLISH_ENTRY_HANDLER,
            # Named and tagged, so that the bucket policy can admit it from another account.
            role_name=entry_writer_role_name(config.env, cell_id),
            cell_tag=cell_id,
            statements=[
                iam.PolicyStatement(
                    sid="WriteOwnEntry",
                    # GetObject: HeadObject, to see whether a switch wrote the entry (a
                    # deploy never writes the primary's URL over a failover, store.py).
                    actions=["s3:PutObject", "s3:GetObject"],
                    resources=[location.object_arn(entry_key(cell_id))],
                    conditions={"StringEquals": {"s3:ResourceAccount": location.account}},
                )
            ],
            memory_size=128,
        )
        self.resource = CustomResource(
            self,
            "Resource",
            service_token=function.function_arn,
            resource_type=ENTRY_RESOURCE_TYPE,
            properties={
                EntryProperty.BUCKET.value: location.bucket,
                EntryProperty.BUCKET_REGION.value: location.region,
                EntryProperty.BUCKET_OWNER.value: location.account,
                EntryProperty.CELL_ID.value: cell_id,
                EntryProperty.URL.value: url,
                EntryProperty.EPOCH.value: epoch,
            },
        )
