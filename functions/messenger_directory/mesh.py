"""Each cell side's Relay record (docs/scale.md "The mesh"): a CloudFormation custom
resource in the side's own stack (infra/mesh.py) makes the side's relay key, if it has
none yet, in the side's Users table, and publishes its Relay and the key's public half at
`relays/<cell>/<side>.json` in the directory's bucket (and, with the directory in two
regions, in the second region's bucket too). The private half never leaves the table,
which only the cell's functions (and this writer, for that one item) may read.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from messenger.dal.server_keys import ServerKeys
from messenger_directory.handlers import _answer_cloudformation
from messenger_directory.observability import logger
from messenger_directory.store import write_relay_record
from messenger_directory.wiring import directory_clients
from messenger_protocol.mesh import (
    RELAY_KEY_NAMES,
    RelayRecord,
    relay_public_key,
    relay_record_key,
    relay_signing_key,
)

PUBLISH_RELAY_RECORD_HANDLER = f"{__name__}.publish_relay_record"


class MirrorNotWritten(RuntimeError):
    """The record is in the first bucket, not in the second region's: the deploy fails."""


class RelayRecordProperty(StrEnum):
    """The properties of a side's `Custom::RelayRecord` resource."""

    BUCKET = "Bucket"
    BUCKET_REGION = "BucketRegion"
    BUCKET_OWNER = "BucketOwner"
    CELL_ID = "CellId"
    SIDE = "Side"
    FUNCTION = "Function"
    USERS_TABLE = "UsersTable"
    # With the directory in two regions: the second region's bucket (same owner), where
    # the record is written too, after the first. Absent with one region.
    FALLBACK_BUCKET = "FallbackBucket"
    FALLBACK_BUCKET_REGION = "FallbackBucketRegion"


@dataclass(frozen=True)
class RelayRecordRequest:
    request_type: str
    properties: dict[str, Any]

    @classmethod
    def of(cls, event: dict[str, Any]) -> RelayRecordRequest:
        return cls(str(event.get("RequestType", "")), dict(event.get("ResourceProperties", {})))

    def get(self, name: RelayRecordProperty) -> str:
        return str(self.properties.get(name.value, ""))

    @property
    def physical_id(self) -> str:
        key = relay_record_key(
            self.get(RelayRecordProperty.CELL_ID), self.get(RelayRecordProperty.SIDE)
        )
        return f"s3://{self.get(RelayRecordProperty.BUCKET)}/{key}"


def publish_relay_side(
    keys: ServerKeys,
    s3: Any,
    bucket: str,
    owner: str,
    cell_id: str,
    side: str,
    function: str,
    *,
    mirror: tuple[Any, str] | None = None,
) -> RelayRecord:
    """Make the side's relay key among its server keys if it has none, and publish its
    record (its deploy; the local stack and the tests' harness at start). `mirror`: the
    directory's second region (its S3 client and bucket, same owner), written after the
    first; a write that fails raises, the first written or not."""
    seed = keys.find_or_make(RELAY_KEY_NAMES[side])
    record = RelayRecord(cell_id, side, function, relay_public_key(relay_signing_key(seed)))
    write_relay_record(s3, bucket, record, owner=owner)
    if mirror is not None:
        mirror_s3, mirror_bucket = mirror
        try:
            write_relay_record(mirror_s3, mirror_bucket, record, owner=owner)
        except (ClientError, BotoCoreError) as error:
            raise MirrorNotWritten(
                f"written into s3://{bucket}, not into the second directory region's "
                f"s3://{mirror_bucket}: {error}"
            ) from error
    return record


@logger.inject_lambda_context(clear_state=True)
def publish_relay_record(event: dict[str, Any], context: Any) -> None:
    """CloudFormation custom resource: the side's record, written on create and update.
    Delete leaves it (as a cell's directory entry): the shard map still names the cell."""
    request = RelayRecordRequest.of(event)
    try:
        if request.request_type in ("Create", "Update"):
            clients = directory_clients()
            mirror = request.get(RelayRecordProperty.FALLBACK_BUCKET)
            publish_relay_side(
                ServerKeys(boto3.client("dynamodb"), request.get(RelayRecordProperty.USERS_TABLE)),
                clients.s3(request.get(RelayRecordProperty.BUCKET_REGION)),
                request.get(RelayRecordProperty.BUCKET),
                request.get(RelayRecordProperty.BUCKET_OWNER),
                request.get(RelayRecordProperty.CELL_ID),
                request.get(RelayRecordProperty.SIDE),
                request.get(RelayRecordProperty.FUNCTION),
                mirror=(
                    clients.s3(request.get(RelayRecordProperty.FALLBACK_BUCKET_REGION)),
                    mirror,
                )
                if mirror
                else None,
            )
            logger.info(
                "relay record written",
                extra={"at": request.physical_id, "mirror": mirror or None},
            )
        status, reason = "SUCCESS", f"relay record {request.physical_id}"
    except Exception as error:  # CloudFormation must hear of every failure, or it waits
        logger.exception("relay record not written", extra={"at": request.physical_id})
        status, reason = "FAILED", f"relay record {request.physical_id} not written: {error}"
    _answer_cloudformation(event, context, status, reason, request.physical_id)
