"""The Mover's object graph (a shard move's runner on AWS, messenger.handlers.mover): the
same `ShardMove` as the local stack's (messenger_local.moves), on AWS's adapters, made
once per container.

- every cell's tables, through a DynamoDB client of the cell's region (the Mover's role
  may write the new home's and the peers' tables, and only what a move writes there:
  infra/mover.py), found at run time (`DeploymentCells`): the cells are the published
  map's, each one's tables named by the rule (contract.table_name), its region that of
  its published Relay, so that nothing in the Mover grows with the number of cells;
- the directory: the directory function, invoked (transport/directory_publisher.py);
- the old home's connections: its own @connections API (only moves out of its own cell).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

from botocore.config import Config

from messenger.config import MoverCell, MoverSettings, mover_settings
from messenger.contract import LIMITS_TABLE, QUEUE_TABLE, USERS_TABLE, Metric, table_name
from messenger.dal.moves import MoveRecord
from messenger.dal.relay_directory import RelayDirectory
from messenger.logic.clock import Clock
from messenger.logic.shard_move import CellTables, MovedConnections, ShardMove
from messenger.observability import count, duration, logger
from messenger.transport.connections import Connections
from messenger.transport.directory_publisher import LambdaDirectoryPublisher
from messenger.wiring import management_client
from messenger_aws.clients import Clients

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

# A page of a Scan and its BatchWriteItems: throttles are retried with backoff, long.
DYNAMODB_CONFIG = Config(
    retries={"mode": "adaptive", "max_attempts": 10}, connect_timeout=5, read_timeout=20
)
# The directory function merges, signs with KMS and sets the stages' version: up to its
# 60 s timeout. One try: a failed step is retried by the state machine.
DIRECTORY_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 1}, connect_timeout=5, read_timeout=70
)


class MoveMetrics:
    """`logic.shard_move.MoveObserver` as CloudWatch metrics (EMF, flushed per invocation)
    and a log line per step."""

    def step_done(self, before: MoveRecord, after: MoveRecord, seconds: float) -> None:
        count(Metric.MOVE_STEPS_RUN)
        count(Metric.MOVE_USERS_COPIED, after.users - before.users)
        count(Metric.MOVE_ITEMS_COPIED, after.items - before.items)
        # Per step: a copy's page and a settle wait are different things to watch.
        duration(Metric.MOVE_STEP_DURATION, seconds, Step=before.step)
        logger.info(
            "move step run",
            extra={"move": before.move_id, "step": before.step, "next": after.step, "s": seconds},
        )

    def step_failed(self, record: MoveRecord, error: Exception) -> None:
        count(Metric.MOVE_STEP_FAILURES)
        logger.exception("move step failed", extra={"move": record.move_id, "step": record.step})


class DeploymentCells(Mapping[str, CellTables]):
    """Every cell's tables, as a move needs them, found when first asked for: the cells
    given (the Mover's own, and any whose tables the rule does not name), else a cell with
    a published Relay record, its tables named by the rule in that Relay's region. The
    cells iterated (a move's `switch-peers`) are those of the published shard map."""

    def __init__(
        self,
        given: Mapping[str, MoverCell],
        deployment: str,
        relays: RelayDirectory,
        published_cells: Callable[[], Iterable[str]],
        dynamodb_for: Callable[[str], DynamoDBClient],
    ) -> None:
        self._given = given
        self._deployment = deployment
        self._relays = relays
        self._published_cells = published_cells
        self._dynamodb_for = dynamodb_for
        self._made: dict[str, CellTables] = {}

    def __getitem__(self, cell_id: str) -> CellTables:
        made = self._made.get(cell_id)
        if made is None:
            cell = self._given.get(cell_id) or self._by_rule(cell_id)
            made = CellTables.of(
                cell_id, self._dynamodb_for(cell.region), cell.users, cell.queue, cell.limits
            )
            self._made[cell_id] = made
        return made

    def _by_rule(self, cell_id: str) -> MoverCell:
        sides = self._relays.sides_of(cell_id)
        if not sides:
            raise KeyError(cell_id)  # no such cell: it has published no Relay
        # arn:aws:lambda:<region>:<account>:function:<name>: the primary's region.
        region = sides[0].function.split(":")[3]
        return MoverCell(
            region=region,
            **{
                role: table_name(self._deployment, cell_id, spec)
                for role, spec in (
                    ("users", USERS_TABLE),
                    ("queue", QUEUE_TABLE),
                    ("limits", LIMITS_TABLE),
                )
            },
        )

    def __iter__(self) -> Iterator[str]:
        return iter(sorted({*self._published_cells(), *self._given}))

    def __len__(self) -> int:
        return sum(1 for _ in self)


def mover_of(
    settings: MoverSettings,
    dynamodb_for: Callable[[str], DynamoDBClient],
    lambda_for: Callable[[str], Any],
    management_for: Callable[[str], Any],
    s3_for: Callable[[str], S3Client],
    wait: Callable[[float], None] = time.sleep,
) -> ShardMove:
    """The ShardMove of `settings`, with clients made by these factories (tests: moto's)."""
    # arn:aws:lambda:<region>:<account>:function:<name>: Invoke is asked of its region.
    directory_region = settings.directory_function.split(":")[3]
    publisher = LambdaDirectoryPublisher(
        lambda: lambda_for(directory_region), settings.directory_function
    )
    mesh = settings.mesh
    relays = RelayDirectory(
        lambda: s3_for(mesh.region), mesh.name, mesh.owner, Clock(), fallback=mesh.fallback(s3_for)
    )
    cells = DeploymentCells(
        settings.cells,
        settings.deployment,
        relays,
        lambda: publisher.current_map().cells(),
        dynamodb_for,
    )
    closers = {
        settings.cell_id: MovedConnections(
            Connections(management_for(settings.connections_endpoint))
        )
    }
    return ShardMove(cells, publisher, closers, Clock(), wait=wait, observer=MoveMetrics())


@cache
def shard_move() -> ShardMove:
    """The container's ShardMove, its clients made (and kept) with it."""
    tables, directory, buckets = Clients(DYNAMODB_CONFIG), Clients(DIRECTORY_CONFIG), Clients()
    return mover_of(
        mover_settings(),
        tables.dynamodb,
        lambda region: directory.client("lambda", region),
        management_client,
        buckets.s3,
    )


def forget_mover() -> None:
    """Make everything again at next use (tests, each under its own moto)."""
    shard_move.cache_clear()
    mover_settings.cache_clear()
