"""Each cell side's Relay record (docs/scale.md "The mesh"): its Relay's ARN and its relay
public key, published in the directory's bucket at `relays/<cell>/<side>.json`, where the
peers read them. What lets a cell find and trust its peers without naming any of them.

A custom resource of the side's own stack runs `messenger_directory.mesh` on every deploy:
it makes the side's relay key in its own Users table if it has none (the private half never
leaves the table) and writes the record. Its role may touch that one item and that one
object only; in another account than the directory's, the bucket admits it as one of the
deployment's record writers (`admit_relay_record_writers`), by the cell tag on its role.
"""

from __future__ import annotations

from aws_cdk import CustomResource
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra import bundling
from infra.cells import CellPlacement
from infra.config import DeploymentConfig
from infra.directory import CELL_TAG, _directory_function
from infra.regions import PARTITION
from messenger_directory.mesh import PUBLISH_RELAY_RECORD_HANDLER, RelayRecordProperty
from messenger_protocol.cells import DIRECTORY_NAME
from messenger_protocol.mesh import RELAY_KEY_NAMES, RELAY_RECORD_PREFIX

RECORD_RESOURCE_TYPE = "Custom::RelayRecord"


def record_writer_role_name(env: str, cell_id: str, standby: bool) -> str:
    """Named by convention, so that one bucket-policy statement admits every writer."""
    return f"messenger-{env}-{cell_id}{'-standby' if standby else ''}-relay-record"


class RelayRecord(Construct):
    """A cell side's Relay record, written on every deploy (after its Relay exists)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        cell: CellPlacement,
        users_table: dynamodb.ITableV2,
    ) -> None:
        super().__init__(scope, construct_id)
        location = cell.directory
        function = _directory_function(
            self,
            "Writer",
            config=config,
            description=f"Messenger cell {cell.cell_id} ({cell.side}): writes its Relay record",
            handler=PUBLISH_RELAY_RECORD_HANDLER,
            role_name=record_writer_role_name(config.env, cell.cell_id, cell.standby),
            # It derives the relay key's public half: PyNaCl, as the functions have it.
            code=bundling.directory_code(bundling.FAILOVER_PACKAGES, with_signing=True),
            # The bucket policy lets it write under its cell only.
            cell_tag=cell.cell_id,
            statements=[
                iam.PolicyStatement(
                    sid="OwnRelayKey",
                    actions=["dynamodb:GetItem", "dynamodb:PutItem"],
                    resources=[users_table.table_arn],
                    conditions={
                        "ForAllValues:StringEquals": {
                            "dynamodb:LeadingKeys": [f"KEY#{RELAY_KEY_NAMES[cell.side]}"]
                        }
                    },
                ),
                iam.PolicyStatement(
                    sid="WriteOwnRelayRecord",
                    actions=["s3:PutObject"],
                    # The first bucket's and, with a second directory region, its
                    # bucket's (same account): the same key in each.
                    resources=cell.relay_record_arns,
                    conditions={"StringEquals": {"s3:ResourceAccount": location.account}},
                ),
            ],
            memory_size=128,
        )
        self.resource = CustomResource(
            self,
            "Resource",
            service_token=function.function_arn,
            resource_type=RECORD_RESOURCE_TYPE,
            properties={
                RelayRecordProperty.BUCKET.value: location.bucket,
                RelayRecordProperty.BUCKET_REGION.value: location.region,
                RelayRecordProperty.BUCKET_OWNER.value: location.account,
                RelayRecordProperty.CELL_ID.value: cell.cell_id,
                RelayRecordProperty.SIDE.value: cell.side,
                RelayRecordProperty.FUNCTION.value: cell.relay_arn,
                RelayRecordProperty.USERS_TABLE.value: users_table.table_name,
                # Written into the second region's bucket too (same owner), after the
                # first: what the cells read when the first region is lost. Absent with
                # one directory region (that template is unchanged).
                **(
                    {
                        RelayRecordProperty.FALLBACK_BUCKET.value: fallback.bucket,
                        RelayRecordProperty.FALLBACK_BUCKET_REGION.value: fallback.region,
                    }
                    if (fallback := cell.fallback_directory) is not None
                    else {}
                ),
            },
        )


def admit_relay_record_writers(bucket: s3.IBucket, env: str, organization: str) -> None:
    """The directory's bucket (each region's, with two), for cells in other accounts of the
    organization: each side's record writer may write its own cell's records (its role's
    cell tag), and the cells' functions may read every record and the signed directory
    (their shard map). Two statements for the whole deployment."""
    in_organization = {"StringEquals": {"aws:PrincipalOrgID": organization}}
    bucket.add_to_resource_policy(
        iam.PolicyStatement(
            sid="RelayRecordWriters",
            principals=[iam.AnyPrincipal()],
            actions=["s3:PutObject"],
            resources=[
                bucket.arn_for_objects(f"{RELAY_RECORD_PREFIX}${{aws:PrincipalTag/{CELL_TAG}}}/*")
            ],
            conditions={
                **in_organization,
                "ArnLike": {
                    "aws:PrincipalArn": f"arn:{PARTITION}:iam::*:role/"
                    f"{record_writer_role_name(env, '*', False)}"
                },
            },
        )
    )
    bucket.add_to_resource_policy(
        iam.PolicyStatement(
            sid="RelayRecordReaders",
            principals=[iam.AnyPrincipal()],
            actions=["s3:GetObject"],
            # The Relay records, and the signed directory the cells take the shard map from.
            resources=[
                bucket.arn_for_objects(f"{RELAY_RECORD_PREFIX}*"),
                bucket.arn_for_objects(DIRECTORY_NAME),
            ],
            conditions=in_organization,
        )
    )
