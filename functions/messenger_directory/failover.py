"""Switching a cell between its primary and its standby region (docs/protocol.md §7).

    switch(cell, "standby",
           dynamodb_for=lambda region: boto3.client("dynamodb", region_name=region),
           s3=boto3.client("s3", region_name=cell.directory.region))

One sequence, `SWITCH_STEPS`, run by `run_switch` wherever a cell changes sides: the
operator's command (`python -m infra.failover switch`), the automated path (the `Failover`
function below, in the standby region), and the local stack's emulated region loss
(messenger_local.standby), each through its own ports:

1. bump the cell's generation in the target side's replica of the Users table
   (`Generations`: messenger.dal.cell_generation, a conditional UpdateItem, ADD generation
   1), so the functions there name a new epoch in every syncDone within 10 s and clients
   resend what has no `delivered` receipt;
2. write the cell's directory entry with the target's WebSocket URL (`DirectoryEntries`:
   `store.write_entry` into the directory's bucket);
3. publish the directory (`DirectoryPublisher`): on AWS the directory function does it,
   run by EventBridge after the entry write; the local stack merges at once. Clients sent
   away by the old side find the new one.

Idempotent enough to run twice: the bump is conditional on the target not being the
active side already, and an entry written again with the same URL publishes nothing.
Unlike the rest of this package, this module imports `messenger` (the generation's item
layout and the epoch's name have one home there): its asset ships both (infra/bundling.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from messenger.dal.cell_generation import CellGeneration
from messenger.logic.epoch import epoch_name
from messenger_directory.config import (
    FailoverEnv,
    failover_cell,
    probe_settings,
)
from messenger_directory.observability import logger
from messenger_directory.sides import (
    PRIMARY,
    SIDES,
    STANDBY,
    CellSides,
    DirectoryBucket,
    Side,
)
from messenger_directory.store import write_entry
from messenger_directory.wiring import CLIENT_CONFIG, failover_clients

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

# What the operator's command and the stacks take from here (infra/failover.py,
# infra/failover_automation.py).
__all__ = [
    "CLIENT_CONFIG",
    "FAILOVER_HANDLER",
    "PRIMARY",
    "PROBE_HANDLER",
    "SIDES",
    "STANDBY",
    "SWITCH_STEPS",
    "CellSides",
    "DirectoryBucket",
    "FailoverEnv",
    "Side",
    "Switched",
    "failover",
    "probe",
    "run_switch",
    "switch",
]

FAILOVER_HANDLER = f"{__name__}.failover"
PROBE_HANDLER = f"{__name__}.probe"


# --- the ports: where a switch's side effects go -----------------------------------------


class Generations(Protocol):
    """The cell's generation in the target side's replica (messenger.dal.cell_generation)."""

    def bump(self, side: str, now_ms: int) -> int | None:
        """Make `side` active with the next generation; None if it already is."""
        ...

    def read(self) -> int:
        """The generation the replica holds."""
        ...


class DirectoryEntries(Protocol):
    """Where a cell's entry, its URL, is written for the directory to publish."""

    def write(self, cell_id: str, url: str) -> None: ...


class DirectoryPublisher(Protocol):
    """Turns the written entries into the directory clients read."""

    def publish(self) -> None: ...


@dataclass(frozen=True)
class SwitchPorts:
    generations: Generations
    entries: DirectoryEntries
    publisher: DirectoryPublisher


# --- the sequence --------------------------------------------------------------------------


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


@dataclass
class SwitchRun:
    """One switch on its way through the steps: what they are given and what they found."""

    cell_id: str
    to: str
    target: Side
    ports: SwitchPorts
    now_ms: int
    generation: int = 0
    bumped: bool = False

    def switched(self) -> Switched:
        return Switched(
            cell_id=self.cell_id,
            to=self.to,
            url=self.target.url,
            generation=self.generation,
            epoch=epoch_name(self.target.region, self.generation),
            bumped=self.bumped,
        )


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[SwitchRun], None]


def bump_generation(run: SwitchRun) -> None:
    """A new generation where the target serves; a second run keeps the one it has."""
    bumped = run.ports.generations.bump(run.to, run.now_ms)
    run.bumped = bumped is not None
    run.generation = run.ports.generations.read() if bumped is None else bumped


def write_directory_entry(run: SwitchRun) -> None:
    run.ports.entries.write(run.cell_id, run.target.url)


def publish_directory(run: SwitchRun) -> None:
    run.ports.publisher.publish()


# In this order: a client that follows the directory to the target meets the new epoch.
SWITCH_STEPS = (
    Step("bump the generation", bump_generation),
    Step("write the directory entry", write_directory_entry),
    Step("publish the directory", publish_directory),
)


def run_switch(
    cell_id: str, to: str, target: Side, ports: SwitchPorts, now_ms: int | None = None
) -> Switched:
    """Make `target`, the cell's side `to`, the active one: every step of SWITCH_STEPS."""
    run = SwitchRun(
        cell_id, to, target, ports, time.time_ns() // 1_000_000 if now_ms is None else now_ms
    )
    for step in SWITCH_STEPS:
        step.run(run)
        logger.info("switch step done", extra={"cell": cell_id, "to": to, "step": step.name})
    return run.switched()


# --- on AWS ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BucketEntries:
    """Entries written into the directory's bucket (`store.write_entry`)."""

    s3: S3Client
    directory: DirectoryBucket

    def write(self, cell_id: str, url: str) -> None:
        write_entry(self.s3, self.directory.name, cell_id, url, owner=self.directory.owner)


class PublishedByTheDirectoryFunction:
    """On AWS, publishing is the directory function's: EventBridge runs it after every
    entry write, one at a time (reserved concurrency 1), so that versions never race. A
    switch merging on its own would race it."""

    def publish(self) -> None:
        logger.info("the directory function publishes the entry once EventBridge runs it")


def switch(
    cell: CellSides,
    to: str,
    *,
    dynamodb_for: Callable[[str], DynamoDBClient],
    s3: S3Client,
    now_ms: int | None = None,
) -> Switched:
    """Make `to` ("primary" or "standby") the cell's active side, on AWS.

    `dynamodb_for(region)` gives a DynamoDB client of that region (only the target's is
    asked for: the other may be gone); `s3` writes into the directory's bucket.
    """
    target = cell.side(to)
    ports = SwitchPorts(
        generations=CellGeneration(dynamodb_for(target.region), target.users_table),
        entries=BucketEntries(s3, cell.directory),
        publisher=PublishedByTheDirectoryFunction(),
    )
    return run_switch(cell.cell_id, to, target, ports, now_ms)


# --- the automated path (infra/failover_automation.py), in the standby region ---------


@logger.inject_lambda_context(clear_state=True)
def failover(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """EventBridge: the primary-unreachable alarm went to ALARM. Switch to this standby."""
    cell = failover_cell()
    logger.warning(
        "switching the cell to its standby",
        extra={"cell": cell.cell_id, "alarm": event.get("detail")},
    )
    clients = failover_clients()
    switched = switch(
        cell, STANDBY, dynamodb_for=clients.dynamodb, s3=clients.s3(cell.directory.region)
    )
    logger.warning("switched", extra=switched.summary())
    return switched.summary()


@logger.inject_lambda_context(clear_state=True)
def probe(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Every minute, from the standby region: can the primary's table be read?

    A failure (the region's DynamoDB unreachable, or refusing) fails the invocation: the
    alarm on this function's Errors is the signal that drives `failover`.
    """
    settings = probe_settings()
    client = failover_clients().dynamodb(settings.primary_region)
    generation = CellGeneration(client, settings.primary_users_table).read()
    return {"primaryRegion": settings.primary_region, "generation": generation}
