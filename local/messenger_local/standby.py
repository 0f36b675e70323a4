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
2. the switch to the standby, the deployed one (`messenger_directory.failover.run_switch`,
   every step of `SWITCH_STEPS`) through local ports: the standby's generation goes up
   by one in its Users table (its functions name a new epoch), the cell's directory entry
   names the standby's URL, and the directory is published again, `version` + 1
   (messenger_local.directory);
3. the primary's connections close with 1001, so clients reconnect: their handshake
   with the primary fails, they fetch the directory again and connect to the standby.

`POST /_local/failover/CELL?keepPrimary=true` is a partial failover, a gray failure: the
primary's region stays reachable (its stage answers, its Relay too) but replication stops,
and the switch fences it (docs/protocol.md §7 Fencing): its replica is told it was demoted
(the switch's `fence the old side` step), its functions read that at once (on AWS they
would within the fence's cache time, which the standby waits out before taking writes),
and its connections get `error` MOVED and close with 1012. From then on it refuses every
handshake (403), answers every frame MOVED, and refuses every Relay call, so that no
write is accepted by both sides.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from messenger.contract import Env
from messenger.dal.cell_generation import CellGeneration
from messenger.dal.cell_state import CellState
from messenger_directory.failover import SwitchPorts, run_switch
from messenger_directory.sides import STANDBY, Side
from messenger_local.aws import MotoGate
from messenger_local.cells import LocalCell, by_cell
from messenger_local.connections import ConnectionGoneError
from messenger_local.directory import LocalDirectory
from messenger_local.replication import Replicator
from messenger_protocol.cells import FENCED_STAGE_VARIABLE
from messenger_protocol.frames import ErrorFrame
from messenger_protocol.names import CLOSE_CODES, ErrorCode

DEFAULT_REPLICATION_LAG_SECONDS = 1.0
FAILOVER_PATH = "/_local/failover/{cell}"


@dataclass(frozen=True)
class Failover:
    """What a failover did: the answer to POST /_local/failover/CELL."""

    cell: str
    url: str  # the cell's URL in the directory from now on
    epoch: str  # what the standby's syncDone names from now on
    dropped_writes: int  # writes to the primary lost with it (never replicated)
    at: float  # time.time() when the primary's region was lost
    # A partial failover (keepPrimary): the primary stays reachable, fenced.
    kept_primary: bool = False
    # False: this answer is a second request's, the cell had failed over already.
    first: bool = True

    def to_wire(self) -> dict[str, Any]:
        return {
            "cell": self.cell,
            "url": self.url,
            "epoch": self.epoch,
            "droppedWrites": self.dropped_writes,
            "keptPrimary": self.kept_primary,
            "alreadyFailedOver": not self.first,
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
        return self.primary.cell_id

    @property
    def active(self) -> LocalCell:
        """The side that serves the cell: the standby once failed over."""
        return self.standby if self.failover is not None else self.primary

    def side(self) -> Side:
        """The standby as the switch goes to it; its epoch's region part is its CELL_EPOCH."""
        return Side(
            region=self.standby.environment[Env.CELL_EPOCH.value],
            users_table=self.standby.table_names[Env.USERS_TABLE.value],
            url=self.standby.ws_url,
        )

    async def fail_over(
        self, dynamodb: Any, directory: LocalDirectory, *, keep_primary: bool = False
    ) -> Failover:
        """Lose the primary's region (or, `keep_primary`, only its replication: a gray
        failure) and switch the cell to the standby (see the module doc), with `dynamodb`
        for both sides' tables and the stack's `directory`.

        Run again, it answers what the first run did (`first` False): the cell has no
        other side left.
        """
        async with self._lock:
            if self.failover is not None:
                return replace(self.failover, first=False)
            lost_at = time.time()
            dropped = self._lose_the_primary_region(keep_primary)
            target = self.side()
            ports = SwitchPorts(
                generations=CellGeneration(dynamodb, target.users_table),
                entries=directory.entries,
                publisher=directory,
                # A lost region cannot be told; a reachable one is fenced.
                demoted=(
                    CellState(dynamodb, self.primary.table_names[Env.USERS_TABLE.value])
                    if keep_primary
                    else None
                ),
                stages=GatewayStages(
                    {side.ws_url: side.gateway for side in (self.primary, self.standby)}
                ),
                demoted_url=self.primary.ws_url if keep_primary else None,
            )
            # Both sides' functions are told below, at once: no wait for their caches.
            switched = await asyncio.to_thread(
                run_switch, self.cell_id, STANDBY, target, ports, None, 0
            )
            for side in (self.primary, self.standby):
                side.services.cell_view.forget()
            self.failover = Failover(
                self.cell_id, switched.url, switched.epoch, dropped, lost_at, keep_primary
            )
        if keep_primary:
            await self._move_everyone_away()
        else:
            await self.primary.gateway.close_all(1001, "Going away")
        return self.failover

    async def _move_everyone_away(self) -> None:
        """The fenced primary's connections: `error` MOVED, then 1012 (§3 Closing)."""
        moved = ErrorFrame(
            code=ErrorCode.MOVED, message="this side of the cell is not active", ref=None
        ).to_json()
        connections = self.primary.gateway.connections.all()
        for connection in connections:
            with contextlib.suppress(ConnectionGoneError):
                await connection.send(moved)
        await self.primary.gateway.close_all(CLOSE_CODES[ErrorCode.MOVED], "Moved")

    def _lose_the_primary_region(self, keep_primary: bool) -> int:
        """One instant, with no await in it: nothing acked after it was stored there. The
        writes replication had not carried yet are lost with it: their count. With
        `keep_primary`, only the replication is lost: the primary still answers."""
        self.primary.gateway.out_of_service = not keep_primary
        self.replicator.stop()
        return self.replicator.drop_pending()


@dataclass(frozen=True)
class GatewayStages:
    """The switch's StageFences on the local gateways, by their URL: the stage variable
    the ping's template reads (messenger.contract.GATEWAY_ROUTES), as UpdateStage sets it
    on AWS."""

    gateways: dict[str, Any]

    def set_fenced(self, url: str, fenced: bool) -> None:
        self.gateways[url].stage_variables[FENCED_STAGE_VARIABLE] = "1" if fenced else "0"


class Standbys:
    """The standbys of a stack's cells, each replicated from its primary."""

    def __init__(self, lag: float, gate: MotoGate, region: str) -> None:
        self.lag = lag
        self._gate = gate
        self._region = region
        self._pairs: dict[str, Standby] = {}

    def start(self, cells: Iterable[LocalCell]) -> None:
        """One replicator per cell with a standby: the primary's tables to the standby's."""
        cells = list(cells)
        primaries = by_cell(cells)
        for standby in (cell for cell in cells if cell.standby):
            primary = primaries[standby.cell_id]
            tables = {
                primary.table_names[env]: standby.table_names[env] for env in primary.table_names
            }
            replicator = Replicator(tables, lag=self.lag, gate=self._gate, region=self._region)
            replicator.start()
            self._pairs[standby.cell_id] = Standby(primary, standby, replicator)

    def __getitem__(self, cell_id: str) -> Standby:
        try:
            return self._pairs[cell_id]
        except KeyError:
            raise KeyError(f"no standby for cell {cell_id!r}") from None

    def __contains__(self, cell_id: object) -> bool:
        return cell_id in self._pairs

    def __iter__(self) -> Iterator[Standby]:
        return iter(self._pairs.values())

    def active(self, cell: LocalCell) -> LocalCell:
        """The side serving a cell: its primary, or its standby once failed over."""
        pair = self._pairs.get(cell.cell_id)
        return pair.active if pair is not None else cell

    async def stop(self) -> None:
        for pair in self._pairs.values():
            await asyncio.to_thread(pair.replicator.stop)
