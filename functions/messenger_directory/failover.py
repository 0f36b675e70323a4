"""Switching a cell between its primary and its standby region (docs/protocol.md §7).

    switch(cell, "standby",
           dynamodb_for=lambda region: boto3.client("dynamodb", region_name=region),
           s3=boto3.client("s3", region_name=cell.directory.region))

One function, shared by the operator's command (`python -m infra.failover switch`) and
the automated path (the `Failover` function below, in the standby region):

1. bump the cell's generation in the target region's replica of the Users table
   (messenger.dal.cell_generation: a conditional UpdateItem, ADD generation 1), so the
   functions there name a new epoch in every syncDone within 10 s and clients resend
   what has no `delivered` receipt;
2. write the cell's directory entry with the target's WebSocket URL
   (`store.write_entry`); the directory function merges it, `version` + 1, and clients
   sent away by the old side find the new one.

Idempotent enough to run twice: the bump is conditional on the target not being the
active side already, and an entry written again with the same URL publishes nothing.
Unlike the rest of this package, this module imports `messenger` (the generation's item
layout and the epoch's name have one home there): its asset ships both (infra/bundling.py).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from messenger.dal.cell_generation import CellGeneration
from messenger.logic.epoch import epoch_name
from messenger_directory.store import write_entry

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)

PRIMARY = "primary"
STANDBY = "standby"
SIDES = (PRIMARY, STANDBY)
FAILOVER_HANDLER = f"{__name__}.failover"
PROBE_HANDLER = f"{__name__}.probe"
# A switch or a probe fails well inside its function's timeout, and a probe of a region
# that is gone gives up in seconds: its failure is the signal.
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 2}, connect_timeout=3, read_timeout=5
)


@dataclass(frozen=True)
class Side:
    """One region of a cell: where its replica of the Users table is, and its API's URL.

    `region` is also the region part of the epoch its functions name (AWS_REGION, or
    CELL_EPOCH where set: the local stack passes its own names, e.g. `local-c0-standby`).
    """

    region: str
    users_table: str
    url: str


@dataclass(frozen=True)
class DirectoryBucket:
    """The directory's bucket (infra/directory.py: output DirectoryBucketName)."""

    name: str
    region: str
    owner: str  # the account it must belong to


@dataclass(frozen=True)
class CellSides:
    """A cell's sides, by name ("primary", "standby"): those a switch may go to."""

    cell_id: str
    sides: Mapping[str, Side]
    directory: DirectoryBucket

    def side(self, name: str) -> Side:
        if name not in self.sides:
            known = ", ".join(sorted(self.sides)) or "none"
            raise ValueError(f"cell {self.cell_id} has no {name!r} side (it has: {known})")
        return self.sides[name]


@dataclass(frozen=True)
class Switched:
    """What a switch did: the cell now serves at `url`, naming `epoch`."""

    cell_id: str
    to: str
    url: str
    generation: int
    epoch: str
    # False: the target was already the active side there (a second run); nothing bumped.
    bumped: bool

    def summary(self) -> dict[str, Any]:
        return {
            "cell": self.cell_id,
            "to": self.to,
            "url": self.url,
            "generation": self.generation,
            "epoch": self.epoch,
            "bumped": self.bumped,
        }


def switch(
    cell: CellSides,
    to: str,
    *,
    dynamodb_for: Callable[[str], DynamoDBClient],
    s3: S3Client,
    now_ms: int | None = None,
) -> Switched:
    """Make `to` ("primary" or "standby") the cell's active side: new epoch, then directory.

    `dynamodb_for(region)` gives a DynamoDB client of that region (only the target's is
    asked for: the other may be gone); `s3` writes into the directory's bucket.
    """
    if to not in SIDES:
        raise ValueError(f"switch to {' or '.join(SIDES)}, not {to!r}")
    target = cell.side(to)
    generations = CellGeneration(dynamodb_for(target.region), target.users_table)
    bumped = generations.bump(to, time.time_ns() // 1_000_000 if now_ms is None else now_ms)
    generation = generations.read() if bumped is None else bumped
    write_entry(s3, cell.directory.name, cell.cell_id, target.url, owner=cell.directory.owner)
    return Switched(
        cell_id=cell.cell_id,
        to=to,
        url=target.url,
        generation=generation,
        epoch=epoch_name(target.region, generation),
        bumped=bumped is not None,
    )


# --- the automated path (infra/failover_automation.py), in the standby region ---------


class FailoverEnv(StrEnum):
    """The Failover and probe functions' environment, read here and nowhere else."""

    CELL_ID = "FAILOVER_CELL_ID"
    # The standby's own side (this region): its replica and its API's URL.
    USERS_TABLE = "FAILOVER_USERS_TABLE"
    URL = "FAILOVER_URL"
    DIRECTORY_BUCKET = "FAILOVER_DIRECTORY_BUCKET"
    DIRECTORY_REGION = "FAILOVER_DIRECTORY_REGION"
    DIRECTORY_OWNER = "FAILOVER_DIRECTORY_OWNER"
    # What the probe watches: the primary's region and its replica of the Users table.
    PRIMARY_REGION = "FAILOVER_PRIMARY_REGION"
    PRIMARY_USERS_TABLE = "FAILOVER_PRIMARY_USERS_TABLE"


def standby_from(environ: Mapping[str, str]) -> CellSides:
    """The cell as the standby's Failover function knows it: its own side only."""
    return CellSides(
        cell_id=environ[FailoverEnv.CELL_ID],
        sides={
            STANDBY: Side(
                region=environ["AWS_REGION"],
                users_table=environ[FailoverEnv.USERS_TABLE],
                url=environ[FailoverEnv.URL],
            )
        },
        directory=DirectoryBucket(
            name=environ[FailoverEnv.DIRECTORY_BUCKET],
            region=environ[FailoverEnv.DIRECTORY_REGION],
            owner=environ[FailoverEnv.DIRECTORY_OWNER],
        ),
    )


def failover(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """EventBridge: the primary-unreachable alarm went to ALARM. Switch to this standby."""
    cell = standby_from(os.environ)
    logger.warning("switching cell %s to its standby: %s", cell.cell_id, event.get("detail"))
    switched = switch(
        cell,
        STANDBY,
        dynamodb_for=lambda region: boto3.client(
            "dynamodb", region_name=region, config=CLIENT_CONFIG
        ),
        s3=boto3.client("s3", region_name=cell.directory.region, config=CLIENT_CONFIG),
    )
    logger.warning("switched: %s", switched.summary())
    return switched.summary()


def probe(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Every minute, from the standby region: can the primary's table be read?

    A failure (the region's DynamoDB unreachable, or refusing) fails the invocation: the
    alarm on this function's Errors is the signal that drives `failover`.
    """
    region = os.environ[FailoverEnv.PRIMARY_REGION]
    client = boto3.client("dynamodb", region_name=region, config=CLIENT_CONFIG)
    generation = CellGeneration(client, os.environ[FailoverEnv.PRIMARY_USERS_TABLE]).read()
    return {"primaryRegion": region, "generation": generation}
