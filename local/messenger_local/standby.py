"""A cell's standby, and its failover as a region loss makes one (docs/availability.md).

With `messenger local --cells N --standby`, each cell has a standby: a stage of its own
(`/c0-standby`), its own tables and its own functions' environment (the same CELL_ID,
the epoch `local-c0-standby`), kept up to date by a `replication.Replicator` as a
global table's replica is. `Standby.fail_over` is what `POST /_local/failover/CELL`
does, in this order:

1. the primary's region is gone, at one instant: its stage refuses every handshake and
   every Invoke (its Relay stops answering, so peers' Relay calls go to the standby),
   and an answer its functions were still computing never comes out; replication
   stops, and the writes not yet replicated are dropped (counted);
2. the standby's generation goes up by one (failover-infra's `CellGeneration.bump` on
   the standby's Users table, as `switch` does on AWS): its functions name a new epoch;
3. the caller (the stack) points the directory at the standby, `version` + 1;
4. the primary's connections close with 1001, so clients reconnect: their handshake
   with the primary fails, they fetch the directory again and connect to the standby.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from messenger.contract import Env
from messenger.dal.cell_generation import CellGeneration
from messenger.logic.epoch import epoch_name
from messenger_local.cells import LocalCell
from messenger_local.replication import Replicator

DEFAULT_REPLICATION_LAG_SECONDS = 1.0
FAILOVER_PATH = "/_local/failover/{cell}"
STANDBY_SIDE = "standby"


@dataclass(frozen=True)
class Failover:
    """What a failover did: the answer to POST /_local/failover/CELL."""

    cell: str
    url: str  # the cell's URL in the directory from now on
    epoch: str  # what the standby's syncDone names from now on
    dropped_writes: int  # writes to the primary lost with it (never replicated)
    at: float  # time.time() when the primary's region was lost

    def to_wire(self) -> dict[str, Any]:
        return {
            "cell": self.cell,
            "url": self.url,
            "epoch": self.epoch,
            "droppedWrites": self.dropped_writes,
        }


class Standby:
    """One cell's primary, its standby, and the replication from one to the other."""

    def __init__(self, primary: LocalCell, standby: LocalCell, replicator: Replicator) -> None:
        self.primary = primary
        self.standby = standby
        self.replicator = replicator
        self.failover: Failover | None = None
        self._lock = asyncio.Lock()

    @property
    def cell_id(self) -> str:
        assert self.primary.cell_id is not None
        return self.primary.cell_id

    @property
    def active(self) -> LocalCell:
        """The side that serves the cell: the standby once failed over."""
        return self.standby if self.failover is not None else self.primary

    async def fail_over(self, dynamodb: Any) -> Failover:
        """Lose the primary's region and make the standby serve (see the module doc).

        Run again, it answers what the first run did: the cell has no other side left.
        """
        async with self._lock:
            if self.failover is not None:
                return self.failover
            lost_at = time.time()
            # One instant, with no await between: nothing acked after it was stored here.
            self.primary.gateway.out_of_service = True
            self.replicator.stop()
            dropped = self.replicator.drop_pending()
            generations = CellGeneration(dynamodb, self.standby.table_names[Env.USERS_TABLE.value])
            now_ms = int(time.time() * 1000)
            generation = await asyncio.to_thread(generations.bump, STANDBY_SIDE, now_ms)
            if generation is None:  # a switch made it active before: keep its generation
                generation = await asyncio.to_thread(generations.read)
            epoch = epoch_name(self.standby.environment[Env.CELL_EPOCH.value], generation)
            self.failover = Failover(self.cell_id, self.standby.ws_url, epoch, dropped, lost_at)
        await self.primary.gateway.close_all(1001, "Going away")
        return self.failover
