"""The directory's Lambda entry points: the directory function, and each cell's entry.

- `publish` (the directory function, in the directory's stack): runs after a cell's
  entry was written (S3 through EventBridge) and merges the entries into directory.json.
  Reserved concurrency 1, so that two merges never race over the version.
- `publish_entry` (a CloudFormation custom resource in each cell's stack): writes that
  cell's entry, its WebSocket URL, into the directory's bucket, which may be in another
  account and region.

Configuration comes from the environment (`publish`) or the custom resource's properties
(`publish_entry`), read here and nowhere else.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.request
from enum import StrEnum
from typing import Any

import boto3
from botocore.config import Config

from messenger_directory.store import entry_key, merge, write_entry
from messenger_protocol.cells import ShardMap

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)

# Both functions make a few S3 calls: fail well inside their Lambda timeout, so that a
# custom resource always answers CloudFormation (which otherwise waits an hour).
S3_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=10
)
PUBLISH_HANDLER = f"{__name__}.publish"
PUBLISH_ENTRY_HANDLER = f"{__name__}.publish_entry"


class DirectoryEnv(StrEnum):
    """The directory function's environment."""

    BUCKET = "DIRECTORY_BUCKET"
    # The deployment's shard map, compact ("4096:0-2047=c0,2048-4095=c1").
    SHARD_MAP = "DIRECTORY_SHARD_MAP"


class EntryProperty(StrEnum):
    """The properties of a cell's `Custom::DirectoryEntry` resource."""

    BUCKET = "Bucket"
    BUCKET_REGION = "BucketRegion"
    BUCKET_OWNER = "BucketOwner"
    CELL_ID = "CellId"
    URL = "Url"
    # Not read: a changed map changes the resource, so each cell writes its entry again
    # and the directory function merges with the new map.
    SHARD_MAP = "ShardMap"


def publish(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Merge every cell's entry into directory.json (whatever entry the event names)."""
    bucket = os.environ[DirectoryEnv.BUCKET]
    shard_map = ShardMap.from_compact(os.environ[DirectoryEnv.SHARD_MAP])
    outcome = merge(boto3.client("s3", config=S3_CONFIG), bucket, shard_map)
    summary = outcome.summary()
    if outcome.refused:
        logger.error("entries refused, their cells keep their published URL: %s", summary)
    else:
        logger.info("directory merged: %s", summary)
    return summary


def publish_entry(event: dict[str, Any], context: Any) -> None:
    """CloudFormation custom resource: this cell's entry, written on create and update.

    Delete leaves the entry: the shard map still sends the cell's users to it, and taking
    a cell out is a change of the shard map, not of a stack.
    """
    properties = event.get("ResourceProperties", {})
    bucket = str(properties.get(EntryProperty.BUCKET, ""))
    cell_id = str(properties.get(EntryProperty.CELL_ID, ""))
    physical_id = f"s3://{bucket}/{entry_key(cell_id)}"
    try:
        if event["RequestType"] in ("Create", "Update"):
            s3 = boto3.client(
                "s3", region_name=properties[EntryProperty.BUCKET_REGION], config=S3_CONFIG
            )
            write_entry(
                s3,
                bucket,
                cell_id,
                str(properties[EntryProperty.URL]),
                owner=str(properties[EntryProperty.BUCKET_OWNER]),
            )
            logger.info("entry of %s written to %s", cell_id, physical_id)
        status, reason = "SUCCESS", f"entry of {cell_id}: {physical_id}"
    except Exception as error:  # CloudFormation must hear of every failure, or it waits
        logger.exception("entry of %s not written", cell_id)
        status, reason = "FAILED", f"entry of {cell_id} not written: {error}"
    _answer_cloudformation(event, context, status, reason, physical_id)


def _answer_cloudformation(
    event: dict[str, Any], context: Any, status: str, reason: str, physical_id: str
) -> None:
    """PUT the custom resource's result to the pre-signed URL CloudFormation gave."""
    body = json.dumps(
        {
            "Status": status,
            "Reason": f"{reason} (log stream {getattr(context, 'log_stream_name', '?')})"[:4000],
            "PhysicalResourceId": physical_id,
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
        }
    ).encode()
    request = urllib.request.Request(
        event["ResponseURL"],
        data=body,
        method="PUT",
        # The URL is signed for an empty content type.
        headers={"Content-Type": "", "Content-Length": str(len(body))},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()
