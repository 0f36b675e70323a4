"""The directory's Lambda entry points: the directory function, and each cell's entry.

- `publish` (the directory function, in the directory's stack): runs after a cell's
  entry was written (S3 through EventBridge), merges the entries into directory.json and
  sets the version on the cells' stages, where API Gateway answers `ping` (`stages`).
  Reserved concurrency 1, so that two merges never race over the version. In a
  directory of two regions a switch invokes it too, once it wrote the cell's entry into
  this region's bucket: the merge takes it into the table both regions read
  (`entries`) and publishes. A shard
  move's Mover invokes the same function (`messenger_protocol.cells.MOVE_REQUEST`): to
  read the published map, and to publish a new one (`store.publish_map`), in that same
  one-at-a-time line.
- `publish_entry` (a CloudFormation custom resource in each cell's stack): writes that
  cell's entry, its WebSocket URL and epoch, into the directory's bucket, which may be in
  another account and region.
- `directory_public_key` (a custom resource in the directory's stack): reads the directory
  key's public half from KMS, for the stack output `DirectoryPublicKey`.
- `seed_map` (a custom resource in the directory's stack): writes the deployment's first
  shard map into the bucket (`store.write_seed`), which the first merge publishes.

Each parses what it is given (`config` for the environment, `EntryRequest` for the custom
resource's properties), calls one `store` function with its clients (`wiring`), and maps
the outcome: a log line, or CloudFormation's answer.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from messenger_directory.config import DirectoryEnv, PublishSettings, publish_settings
from messenger_directory.entries import TableEntries
from messenger_directory.observability import logger
from messenger_directory.replicas import DirectoryBucketAt, Replication, reconcile
from messenger_directory.signer import KmsDirectorySigner
from messenger_directory.stages import set_directory_version
from messenger_directory.store import (
    SEED_MAP_KEY,
    MergeOutcome,
    entry_key,
    merge,
    publish_map,
    read_directory,
    write_entry,
    write_seed,
)
from messenger_directory.versions import VersionLedger
from messenger_directory.wiring import directory_clients, directory_signer
from messenger_protocol.cells import MOVE_CURRENT, MOVE_MAP, MOVE_PUBLISH, MOVE_REQUEST, ShardMap

# What the directory's stack takes from here (infra/directory.py).
__all__ = [
    "DIVERGENCE_METRIC",
    "PUBLIC_KEY_ATTRIBUTE",
    "PUBLIC_KEY_HANDLER",
    "PUBLISH_ENTRY_HANDLER",
    "PUBLISH_HANDLER",
    "RECONCILE_HANDLER",
    "SEED_HANDLER",
    "DirectoryEnv",
    "EntryProperty",
    "KeyProperty",
    "SeedProperty",
    "directory_public_key",
    "publish",
    "publish_entry",
    "reconcile_buckets",
    "seed_map",
]

PUBLISH_HANDLER = f"{__name__}.publish"
SEED_HANDLER = f"{__name__}.seed_map"
PUBLISH_ENTRY_HANDLER = f"{__name__}.publish_entry"
RECONCILE_HANDLER = f"{__name__}.reconcile_buckets"
# The reconcile's log field counting the objects it had to repair (a metric filter reads it).
DIVERGENCE_METRIC = "divergentObjects"
PUBLIC_KEY_HANDLER = f"{__name__}.directory_public_key"
# The `Custom::DirectoryPublicKey` resource's attribute: the key, base64url.
PUBLIC_KEY_ATTRIBUTE = "PublicKey"


class EntryProperty(StrEnum):
    """The properties of a cell's `Custom::DirectoryEntry` resource."""

    BUCKET = "Bucket"
    BUCKET_REGION = "BucketRegion"
    BUCKET_OWNER = "BucketOwner"
    CELL_ID = "CellId"
    URL = "Url"
    # The cell's first epoch (docs/protocol.md §7), `<region>#0`: kept over by a switch's.
    EPOCH = "Epoch"


class SeedProperty(StrEnum):
    """The properties of the directory stack's `Custom::DirectorySeed` resource."""

    BUCKET = "Bucket"
    SHARD_MAP = "ShardMap"


def _replication(settings: PublishSettings) -> Replication | None:
    """A two-region directory's versions table (its replica in this region) and the
    other region's bucket; None: one region."""
    if settings.versions_table is None or settings.mirror_bucket is None:
        return None
    clients = directory_clients()
    return Replication(
        VersionLedger(clients.dynamodb(), settings.versions_table),
        mirrors=[DirectoryBucketAt(clients.s3(settings.mirror_region), settings.mirror_bucket)],
        entries=TableEntries(clients.dynamodb(), settings.versions_table),
    )


@logger.inject_lambda_context(clear_state=True)
def publish(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Merge every cell's entry into directory.json (whatever entry the event names); or,
    from a shard move, answer the published map or publish a new one."""
    settings = publish_settings()
    s3 = directory_clients().s3()
    request = event.get(MOVE_REQUEST)
    if request == MOVE_CURRENT:
        current = read_directory(s3, settings.bucket)
        if current is None:
            raise ValueError("nothing is published yet: no move before the first merge")
        return {MOVE_MAP: current.shard_map.to_compact(), "version": current.version}
    signer = directory_signer(settings.key_id)
    replication = _replication(settings)
    if request == MOVE_PUBLISH:
        # A malformed map raises InvalidDirectory: the Mover's step fails, nothing written.
        moved = ShardMap.from_compact(str(event.get(MOVE_MAP, "")))
        outcome = publish_map(s3, settings.bucket, moved, signer, replication=replication)
        if outcome.waiting_for or outcome.refused:
            raise ValueError(f"the moved map was not published: {outcome.summary()}")
    elif request is not None:
        raise ValueError(f"{MOVE_REQUEST} must be {MOVE_CURRENT!r} or {MOVE_PUBLISH!r}")
    else:
        outcome = merge(s3, settings.bucket, None, signer, replication=replication)
    return _published(outcome)


def _published(outcome: MergeOutcome) -> dict[str, Any]:
    """Log what a merge or a move's publish did, set the version on the stages."""
    summary = outcome.summary()
    if outcome.refused:
        logger.error("entries refused, their cells keep their published URL", extra=summary)
    else:
        logger.info("directory merged", extra=summary)
    if outcome.directory is not None:
        # After every merge, not only one that published: setting the same version again
        # is harmless, and heals a stage a deploy put back to its initial `dv`.
        try:
            stages = set_directory_version(directory_clients().apigatewayv2, outcome.directory)
            summary["stages"] = [f"{s.region}/{s.api_id}/{s.stage}" for s in stages]
        except Exception:  # the directory is out; the next merge sets the stages again
            logger.exception("directory version not set on the stages", extra=summary)
    return summary


@logger.inject_lambda_context(clear_state=True)
def reconcile_buckets(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """On a schedule, in each directory region: copy into either bucket the versions it
    missed (its region was down, or a mirror write failed), then merge, so that an entry
    written while the directory function could not run is published. An error fails the
    invocation (the stack's reconcile alarm); an unreachable bucket fails it after the
    merge, which runs regardless."""
    settings = publish_settings()
    replication = _replication(settings)
    if replication is None:
        raise ValueError(f"{RECONCILE_HANDLER} runs only in a directory of two regions")
    own = DirectoryBucketAt(directory_clients().s3(), settings.bucket)
    summary: dict[str, Any] = {}
    unreconciled: Exception | None = None
    try:
        report = reconcile([own, *replication.mirrors], replication.ledger)
    except Exception as error:  # the other region may be lost: merge all the same
        logger.exception("directory buckets not reconciled; merging from the shared entries")
        unreconciled = error
    else:
        summary = report.summary()
        # One figure per run: how many objects the buckets differed by (the divergence
        # alarm).
        logger.info(
            "directory buckets reconciled",
            extra={**summary, DIVERGENCE_METRIC: len(report.repaired)},
        )
    # The entries are in the table both regions read: this region publishes whatever a
    # switch wrote there, whether or not the other region's bucket answers.
    summary["merged"] = publish(event, context)
    if unreconciled is not None:
        # The merge stands; the failure is the reconcile alarm's news (a bucket unreachable).
        raise BucketsNotReconciled(f"merged {summary['merged']}, but: {unreconciled}")
    return summary


class BucketsNotReconciled(RuntimeError):
    """A reconcile could not compare the buckets (the other region's unreachable); its
    merge ran all the same."""


@dataclass(frozen=True)
class EntryRequest:
    """A `Custom::DirectoryEntry` event: what to write where, and whom to answer."""

    request_type: str
    bucket: str
    cell_id: str
    properties: dict[str, Any]

    @classmethod
    def of(cls, event: dict[str, Any]) -> EntryRequest:
        properties = dict(event.get("ResourceProperties", {}))
        return cls(
            request_type=str(event.get("RequestType", "")),
            bucket=str(properties.get(EntryProperty.BUCKET, "")),
            cell_id=str(properties.get(EntryProperty.CELL_ID, "")),
            properties=properties,
        )

    @property
    def physical_id(self) -> str:
        return f"s3://{self.bucket}/{entry_key(self.cell_id)}"

    @property
    def writes(self) -> bool:
        """Create and Update write the entry; Delete leaves it (see `publish_entry`)."""
        return self.request_type in ("Create", "Update")

    def write(self) -> bool:
        """The entry, into the bucket; KeyError for a missing property, InvalidDirectory
        for a URL that is not a §6 cell's. False: unwritten, the cell is failed over to
        its standby (store.write_entry), and a deploy does not undo a switch."""
        return write_entry(
            directory_clients().s3(str(self.properties[EntryProperty.BUCKET_REGION])),
            self.bucket,
            self.cell_id,
            str(self.properties[EntryProperty.URL]),
            owner=str(self.properties[EntryProperty.BUCKET_OWNER]),
            epoch=str(self.properties[EntryProperty.EPOCH]),
        )


@logger.inject_lambda_context(clear_state=True)
def publish_entry(event: dict[str, Any], context: Any) -> None:
    """CloudFormation custom resource: this cell's entry, written on create and update.

    Delete leaves the entry: the shard map still sends the cell's users to it, and taking
    a cell out is a change of the shard map, not of a stack.
    """
    request = EntryRequest.of(event)
    try:
        if request.writes and not request.write():
            logger.warning("entry kept: the cell is failed over", extra={"cell": request.cell_id})
        elif request.writes:
            logger.info("entry written", extra={"cell": request.cell_id, "at": request.physical_id})
        status, reason = "SUCCESS", f"entry of {request.cell_id}: {request.physical_id}"
    except Exception as error:  # CloudFormation must hear of every failure, or it waits
        logger.exception("entry not written", extra={"cell": request.cell_id})
        status, reason = "FAILED", f"entry of {request.cell_id} not written: {error}"
    _answer_cloudformation(event, context, status, reason, request.physical_id)


class KeyProperty(StrEnum):
    """The properties of the directory stack's `Custom::DirectoryPublicKey` resource."""

    KEY_ID = "KeyId"


@logger.inject_lambda_context(clear_state=True)
def directory_public_key(event: dict[str, Any], context: Any) -> None:
    """CloudFormation custom resource: the directory key's public half (base64url, 32
    bytes), as the attribute PUBLIC_KEY_ATTRIBUTE. Delete does nothing."""
    key_id = str(event.get("ResourceProperties", {}).get(KeyProperty.KEY_ID, ""))
    data: dict[str, str] = {}
    try:
        if event.get("RequestType") != "Delete":
            signer = KmsDirectorySigner(directory_clients().kms(), key_id)
            data[PUBLIC_KEY_ATTRIBUTE] = signer.public_key()
        status, reason = "SUCCESS", f"public key of {key_id}"
    except Exception as error:  # CloudFormation must hear of every failure, or it waits
        logger.exception("public key not read", extra={"key": key_id})
        status, reason = "FAILED", f"public key of {key_id} not read: {error}"
    _answer_cloudformation(event, context, status, reason, f"directory-key:{key_id}", data)


@logger.inject_lambda_context(clear_state=True)
def seed_map(event: dict[str, Any], context: Any) -> None:
    """CloudFormation custom resource: the deployment's first shard map, written into the
    directory's bucket on create and update (a map given after the first publish changes
    nothing: shard moves do). Delete leaves it."""
    properties = event.get("ResourceProperties", {})
    bucket = str(properties.get(SeedProperty.BUCKET, ""))
    physical_id = f"s3://{bucket}/{SEED_MAP_KEY}"
    try:
        if event.get("RequestType") in ("Create", "Update"):
            shard_map = ShardMap.from_compact(str(properties.get(SeedProperty.SHARD_MAP, "")))
            write_seed(directory_clients().s3(), bucket, shard_map)
            logger.info(
                "shard map seeded", extra={"at": physical_id, "cells": len(shard_map.cells())}
            )
        status, reason = "SUCCESS", f"shard map seeded at {physical_id}"
    except Exception as error:  # CloudFormation must hear of every failure, or it waits
        logger.exception("shard map not seeded", extra={"at": physical_id})
        status, reason = "FAILED", f"shard map not seeded at {physical_id}: {error}"
    _answer_cloudformation(event, context, status, reason, physical_id)


def _answer_cloudformation(
    event: dict[str, Any],
    context: Any,
    status: str,
    reason: str,
    physical_id: str,
    data: dict[str, str] | None = None,
) -> None:
    """PUT the custom resource's result to the pre-signed URL CloudFormation gave."""
    answer: dict[str, Any] = {
        "Status": status,
        "Reason": f"{reason} (log stream {getattr(context, 'log_stream_name', '?')})"[:4000],
        "PhysicalResourceId": physical_id,
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
    }
    if data:
        answer["Data"] = data
    body = json.dumps(answer).encode()
    request = urllib.request.Request(
        event["ResponseURL"],
        data=body,
        method="PUT",
        # The URL is signed for an empty content type.
        headers={"Content-Type": "", "Content-Length": str(len(body))},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()
