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
   resend what has no `delivered` receipt. The same write makes the target the cell's
   active side from `activeFrom`, the switch time plus the fence's cache time
   (messenger.logic.cell_view): the target takes writes only once every container of the
   old side must have seen that it was demoted (docs/protocol.md §7 Fencing), so the
   two sides never take writes at once, and nobody sleeps for it;
2. fence the old side where it can still be reached (`DemotedSide`:
   messenger.dal.cell_state, the same generation and side written into its replica):
   from then on it refuses handshakes, frames and Relay calls. Best effort: a region
   that is gone cannot be told, and learns it from replication when it comes back.
   Where the switch knows the old side's URL, its API stage is fenced too (`StageFences`:
   API Gateway answers `ping` there with MOVED, where no function runs), and the
   target's stage is opened (it was fenced if a switch demoted it before);
3. write the cell's directory entry with the target's WebSocket URL (`DirectoryEntries`:
   `store.write_entry` into the directory's bucket);
4. publish the directory (`DirectoryPublisher`): on AWS the directory function does it,
   run by EventBridge after the entry write; the local stack merges at once. Clients sent
   away by the old side find the new one.

With the directory in two regions, steps 3 and 4 go to one directory region
(`EitherDirectoryRegion`): the first, else the second, within a deadline: the entry into
that region's bucket, then its function, invoked, takes it into the table both regions
read (messenger_directory.entries) and publishes; a switch goes through while either
directory region is lost.

Idempotent: the bump is conditional on the target not being the active side already (a
second run keeps the generation and the `activeFrom` of the first), the fence on the old
side's generation being older, and an entry written again with the same URL publishes
nothing. The entry a switch writes names the side it switched to, and a deploy of the
primary's stack never writes the primary's URL over a switch to the standby (`store`).

The automated path fires once: a switch that stands disarms it (`CellState.disarm`), and a
second alarm (a flap, a failback followed by a new alarm) finds it disarmed until an
operator re-arms it (`arm`); each firing, and each refusal to fire, is published to the
alarm topic (FAILOVER_ALARM_TOPIC) when one is set.
Unlike the rest of this package, this module imports `messenger` (the generation's item
layout and the epoch's name have one home there): its asset ships both (infra/bundling.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from messenger.dal.cell_generation import CellGeneration
from messenger.dal.cell_state import CellState
from messenger.logic.cell_view import promotion_delay_ms
from messenger.logic.epoch import epoch_name
from messenger_directory.config import (
    FailoverEnv,
    alarm_topic,
    failover_cell,
)
from messenger_directory.observability import logger
from messenger_directory.sides import (
    PRIMARY,
    SIDES,
    STANDBY,
    CellSides,
    DirectoryBucket,
    DirectoryRegion,
    Side,
)
from messenger_directory.stages import set_fenced
from messenger_directory.store import parse_entry, write_entry
from messenger_directory.wiring import CLIENT_CONFIG, failover_clients, publisher_clients

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

# What the operator's command and the stacks take from here (infra/failover.py,
# infra/failover_automation.py).
__all__ = [
    "CLIENT_CONFIG",
    "FAILOVER_HANDLER",
    "PRIMARY",
    "SIDES",
    "STANDBY",
    "SWITCH_STEPS",
    "CellSides",
    "DirectoryBucket",
    "DirectoryRegion",
    "DirectoryUnreachable",
    "FailoverEnv",
    "Side",
    "Switched",
    "arm",
    "failover",
    "run_switch",
    "switch",
]

FAILOVER_HANDLER = f"{__name__}.failover"


# --- the ports: where a switch's side effects go -----------------------------------------


class Generations(Protocol):
    """The cell's generation in the target side's replica (messenger.dal.cell_generation)."""

    def bump(self, side: str, now_ms: int, active_from_ms: int | None = None) -> int | None:
        """Make `side` active with the next generation from `active_from_ms`; None if it
        already is."""
        ...

    def read(self) -> int:
        """The generation the replica holds."""
        ...


class DemotedSide(Protocol):
    """The old side's replica (messenger.dal.cell_state), told it was demoted."""

    def record_switch(self, to: str, generation: int, active_from_ms: int, now_ms: int) -> bool:
        """Write the switch there; False if it already holds it (or a later one)."""
        ...


class StageFences(Protocol):
    """The sides' API stages (messenger_directory.stages.set_fenced): whether API Gateway
    answers `ping` there with MOVED (fenced) or `pong`."""

    def set_fenced(self, url: str, fenced: bool) -> None: ...


@dataclass(frozen=True)
class ApiStageFences:
    """StageFences on AWS: UpdateStage, with an API Gateway v2 client of each region."""

    apigateway_for: Callable[[str], Any]

    def set_fenced(self, url: str, fenced: bool) -> None:
        set_fenced(self.apigateway_for, url, fenced)


class DirectoryEntries(Protocol):
    """Where a cell's entry, its URL, is written for the directory to publish; `to`, the
    side switched to, guards it against a later deploy of the other side."""

    def write(self, cell_id: str, url: str, epoch: str, to: str | None = None) -> bool: ...


class DirectoryPublisher(Protocol):
    """Turns the written entries into the directory clients read."""

    def publish(self) -> None: ...


@dataclass(frozen=True)
class SwitchPorts:
    generations: Generations
    entries: DirectoryEntries
    publisher: DirectoryPublisher
    # The side switched away from, where it can be reached; None: not reachable from here.
    demoted: DemotedSide | None = None
    # The sides' API stages (None: not set from here), and the old side's URL where known.
    stages: StageFences | None = None
    demoted_url: str | None = None


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
    # When the target takes writes (ms); the old side refuses from the switch on.
    active_from_ms: int = 0
    # Whether the old side's replica was told here (else replication tells it).
    fenced: bool = False

    def summary(self) -> dict[str, Any]:
        return {
            "activeFrom": self.active_from_ms,
            "fenced": self.fenced,
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
    # How long after the switch the target takes writes (cell_view.promotion_delay_ms).
    delay_ms: int
    generation: int = 0
    bumped: bool = False
    fenced: bool = False

    @property
    def active_from_ms(self) -> int:
        return self.now_ms + self.delay_ms

    def switched(self) -> Switched:
        return Switched(
            cell_id=self.cell_id,
            to=self.to,
            url=self.target.url,
            generation=self.generation,
            epoch=epoch_name(self.target.region, self.generation),
            bumped=self.bumped,
            active_from_ms=self.active_from_ms,
            fenced=self.fenced,
        )


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[SwitchRun], None]


def bump_generation(run: SwitchRun) -> None:
    """A new generation where the target serves; a second run keeps the one it has."""
    bumped = run.ports.generations.bump(run.to, run.now_ms, run.active_from_ms)
    run.bumped = bumped is not None
    run.generation = run.ports.generations.read() if bumped is None else bumped


def fence_the_old_side(run: SwitchRun) -> None:
    """Tell the old side's replica, if it can be reached, that it was demoted."""
    if run.ports.demoted is None:
        return
    try:
        run.ports.demoted.record_switch(run.to, run.generation, run.active_from_ms, run.now_ms)
        run.fenced = True
    except Exception:  # a lost region: replication tells it once it is back
        logger.warning("the old side could not be told", extra={"cell": run.cell_id}, exc_info=True)


def fence_the_old_stage(run: SwitchRun) -> None:
    """API Gateway answers `ping` on the old side's stage with MOVED (its functions answer
    every other frame so): an idle client there moves too."""
    if run.ports.demoted_url is not None:
        _set_stage(run, run.ports.demoted_url, fenced=True)


def open_the_target_stage(run: SwitchRun) -> None:
    """The target's stage answers `ping` with `pong` (a failback: a switch fenced it)."""
    _set_stage(run, run.target.url, fenced=False)


def _set_stage(run: SwitchRun, url: str, *, fenced: bool) -> None:
    """Best effort, as the fence: the switch goes on whatever a stage answers (a lost
    region's connections went with it; a target left fenced answers pings MOVED, which
    its clients follow back to it: logged as an error, for the operator to run again)."""
    if run.ports.stages is None:
        return
    try:
        run.ports.stages.set_fenced(url, fenced)
    except Exception:
        log = logger.warning if fenced else logger.error
        log(
            "a side's stage was not set",
            extra={"cell": run.cell_id, "url": url, "fenced": fenced},
            exc_info=True,
        )


def write_directory_entry(run: SwitchRun) -> None:
    run.ports.entries.write(run.cell_id, run.target.url, run.switched().epoch, run.to)


def publish_directory(run: SwitchRun) -> None:
    run.ports.publisher.publish()


# In this order: a client that follows the directory to the target meets the new epoch.
SWITCH_STEPS = (
    Step("bump the generation", bump_generation),
    Step("fence the old side", fence_the_old_side),
    Step("fence the old side's stage", fence_the_old_stage),
    Step("open the target's stage", open_the_target_stage),
    Step("write the directory entry", write_directory_entry),
    Step("publish the directory", publish_directory),
)


def run_switch(
    cell_id: str,
    to: str,
    target: Side,
    ports: SwitchPorts,
    now_ms: int | None = None,
    delay_ms: int | None = None,
) -> Switched:
    """Make `target`, the cell's side `to`, the active one: every step of SWITCH_STEPS.

    `delay_ms`: how long the target waits before it takes writes; by default until the old
    side's containers must have read the switch (a caller that tells them itself, as the
    local stack does, may pass 0)."""
    run = SwitchRun(
        cell_id,
        to,
        target,
        ports,
        time.time_ns() // 1_000_000 if now_ms is None else now_ms,
        promotion_delay_ms() if delay_ms is None else delay_ms,
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

    def write(self, cell_id: str, url: str, epoch: str, to: str | None = None) -> bool:
        """`to`: the side a switch made active; None, a deploy's write (guarded)."""
        return write_entry(
            self.s3,
            self.directory.name,
            cell_id,
            url,
            owner=self.directory.owner,
            epoch=epoch,
            switched_to=to,
        )


class DirectoryUnreachable(RuntimeError):
    """No directory function of either region published the switch within the deadline:
    the switch fails (the automated one stays armed and Lambda runs it again; every step
    before is idempotent)."""


# How long a switch tries the directory's regions, all together: the Switch function has
# 60 s, and the generation's bump and the fence come first.
PUBLISH_DEADLINE_SECONDS = 40
# The `source` of a switch's invoke of a directory function (it merges, as on any event).
SWITCH_SOURCE = "messenger.switch"


class EitherDirectoryRegion:
    """A directory in two regions: the switch writes the cell's entry into a region's
    bucket (as in one region: each bucket admits a cell's roles to its own entry only)
    and asks that region's function to merge, which takes the entry into the table both
    regions read (messenger_directory.entries) and publishes the next version, numbered
    in that table (a version names one document, docs/protocol.md §6). The first region,
    then the second: a region whose bucket or function fails, throttles or cannot be
    reached is passed over for the next, within PUBLISH_DEADLINE_SECONDS."""

    def __init__(
        self,
        directory: DirectoryBucket,
        s3_for: Callable[[str], S3Client],
        lambda_for: Callable[[str], Any],
        deadline_seconds: float = PUBLISH_DEADLINE_SECONDS,
    ) -> None:
        self._directory = directory
        self._s3_for = s3_for
        self._lambda_for = lambda_for
        self._deadline_seconds = deadline_seconds
        self._entry: tuple[str, str, str, str] | None = None

    def write(self, cell_id: str, url: str, epoch: str, to: str | None = None) -> bool:
        """Kept for `publish`, which writes it into the region that then publishes it."""
        if to is None:
            raise ValueError("a switch names the side it switched to")
        parse_entry(cell_id, {"url": url, "epoch": epoch})  # refused here, not per region
        self._entry = (cell_id, url, epoch, to)
        return True

    def publish(self) -> None:
        assert self._entry is not None, "the entry is written before it is published"
        cell_id, url, epoch, to = self._entry
        payload = json.dumps({"source": SWITCH_SOURCE, "cell": cell_id}).encode()
        deadline = time.monotonic() + self._deadline_seconds
        failures = []
        for place in self._directory.regions:
            if time.monotonic() >= deadline:
                failures.append(f"{place.region}: not tried, past {self._deadline_seconds} s")
                continue
            try:
                write_entry(
                    self._s3_for(place.region),
                    place.bucket,
                    cell_id,
                    url,
                    owner=self._directory.owner,
                    epoch=epoch,
                    switched_to=to,
                )
                answer = self._lambda_for(place.region).invoke(
                    FunctionName=place.publisher, Payload=payload
                )
                body = answer["Payload"].read()
                if answer.get("FunctionError"):
                    raise RuntimeError(f"{answer['FunctionError']}: {body[:500]!r}")
            except Exception as error:  # its region may be gone: try the next
                logger.warning(
                    "directory region did not publish the switch",
                    extra={"region": place.region, "function": place.publisher},
                    exc_info=True,
                )
                failures.append(f"{place.region}: {error}")
                continue
            logger.info(
                "switch published",
                extra={"region": place.region, "summary": json.loads(body or b"{}")},
            )
            return
        raise DirectoryUnreachable(
            "no directory region published the switch: " + "; ".join(failures)
        )


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
    s3: S3Client | None = None,
    s3_for: Callable[[str], S3Client] | None = None,
    lambda_for: Callable[[str], Any] | None = None,
    apigateway_for: Callable[[str], Any] | None = None,
    now_ms: int | None = None,
) -> Switched:
    """Make `to` ("primary" or "standby") the cell's active side, on AWS.

    `dynamodb_for(region)` gives a DynamoDB client of that region (only the target's is
    asked for: the other may be gone). One directory region: `s3` writes into the
    directory's bucket. Two (`cell.directory.regions`): `s3_for(region)` and
    `lambda_for(region)` give an S3 and a Lambda client of a directory region, for its
    bucket and its function (`EitherDirectoryRegion`). `apigateway_for(region)`, an API
    Gateway v2 client of a side's region: the old side's stage is fenced, the target's
    opened (`StageFences`); without it, neither.
    """
    target = cell.side(to)
    old = next((side for name, side in cell.sides.items() if name != to), None)
    entries: DirectoryEntries
    publisher: DirectoryPublisher
    if cell.directory.regions:
        assert s3_for and lambda_for, "a directory in two regions: its buckets and functions"
        entries = publisher = EitherDirectoryRegion(cell.directory, s3_for, lambda_for)
    else:
        assert s3 is not None, "a directory in one region is written into its bucket"
        entries, publisher = BucketEntries(s3, cell.directory), PublishedByTheDirectoryFunction()
    ports = SwitchPorts(
        generations=CellGeneration(dynamodb_for(target.region), target.users_table),
        entries=entries,
        publisher=publisher,
        demoted=None if old is None else CellState(dynamodb_for(old.region), old.users_table),
        stages=None if apigateway_for is None else ApiStageFences(apigateway_for),
        demoted_url=None if old is None else old.url,
    )
    return run_switch(cell.cell_id, to, target, ports, now_ms)


def arm(cell: CellSides, *, dynamodb_for: Callable[[str], DynamoDBClient]) -> None:
    """The operator's: let the automated switch to the standby fire again."""
    standby = cell.side(STANDBY)
    CellState(dynamodb_for(standby.region), standby.users_table).arm()


# --- the automated path (infra/failover_automation.py), in the standby region ---------


@logger.inject_lambda_context(clear_state=True)
def failover(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """EventBridge: the primary-unreachable alarm went to ALARM. Switch to this standby."""
    cell = failover_cell()
    clients = failover_clients()
    standby = cell.side(STANDBY)
    state = CellState(clients.dynamodb(standby.region), standby.users_table)
    if not state.armed():
        logger.warning(
            "the automated switch is disarmed: not switching", extra={"cell": cell.cell_id}
        )
        _notify(f"cell {cell.cell_id}: alarm again, automated switch disarmed, nothing done")
        return {"cell": cell.cell_id, "switched": False, "reason": "disarmed"}
    logger.warning(
        "switching the cell to its standby",
        extra={"cell": cell.cell_id, "alarm": event.get("detail")},
    )
    switched = switch(
        cell,
        STANDBY,
        dynamodb_for=clients.dynamodb,
        s3=clients.s3(cell.directory.region),
        s3_for=clients.s3,
        lambda_for=publisher_clients().lambda_,
        # Its own stage only (it knows no other side): opened, if a failback fenced it.
        apigateway_for=clients.apigatewayv2,
    )
    # Disarmed once it stands (reserved concurrency 1: no other run in between); a switch
    # that failed is retried by Lambda, still armed.
    state.disarm(time.time_ns() // 1_000_000)
    logger.warning("switched", extra=switched.summary())
    _notify(
        f"cell {cell.cell_id} switched to its standby ({switched.epoch}); the automated switch "
        "is disarmed until an operator re-arms it"
    )
    return switched.summary()


def _notify(message: str) -> None:
    """Tell the operators, on the alarm topic when one is set."""
    topic = alarm_topic()
    if topic is None:
        return
    try:
        failover_clients().sns().publish(
            TopicArn=topic, Subject="Messenger failover", Message=message
        )
    except Exception:  # the switch stands whether or not anyone heard of it
        logger.exception("the alarm topic was not told")
