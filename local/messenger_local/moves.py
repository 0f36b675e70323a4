"""Shard moves on a local stack of cells (docs/scale.md "Shard moves"):

    POST /_local/move  {"from": "c0", "to": "c2", "lo": 0, "hi": 16383}
        (header X-Messenger-Local: 1)
    200 {"users": N, "items": N, "seconds": S, "version": V, "move": ID}, once done
    500 {"message": ...}  the move stopped (its record, `LocalMoves.mover.status(from)`,
                          says where; `mover.run(from, move)` resumes it)
    400 {"message": ...}  a range `from` does not own, an unknown cell, a malformed body
    409 {"message": ...}  a range overlapping a move still running

The steps are the deployed ones (messenger.logic.shard_move), on the cells' own tables;
the directory is published by the stack's directory (as its publisher does on AWS), and
the moved users' connections are told MOVED and closed through each cell's @connections
API. A cell's functions share one container here, so a step's change is seen at once
(the cell's cache is dropped) and the step waits only for invocations already running.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from messenger.logic.clock import Clock
from messenger.logic.shard_move import (
    CellTables,
    MoveBusy,
    MovedConnections,
    MoveRefused,
    MoveResult,
    ShardMove,
)
from messenger.observability import logger
from messenger_local.cells import LocalCell
from messenger_local.directory import LocalDirectory
from messenger_local.gateway import json_response
from messenger_protocol.cells import ShardMap

MOVE_PATH = "/_local/move"
# Long enough for an invocation that read the old state just before a step to finish.
LOCAL_SETTLE_SECONDS = 1.0


class LocalPublisher:
    """The stack's directory, as a move publishes through it."""

    def __init__(self, directory: LocalDirectory) -> None:
        self._directory = directory

    def current_map(self) -> ShardMap:
        return self._directory.current.shard_map

    def publish(self, shard_map: ShardMap) -> int:
        self._directory.publish_map(shard_map)
        return self._directory.current.version


class LocalMoves:
    """Runs one move at a time on the stack's cells (another one asked meanwhile: 409)."""

    def __init__(self, cells: Mapping[str, LocalCell], directory: LocalDirectory) -> None:
        self._cells = dict(cells)
        tables = {
            cell_id: CellTables.of(
                cell_id,
                cell.services.dynamodb,
                cell.services.settings.users_table,
                cell.services.settings.queue_table,
                cell.services.settings.limits_table,
            )
            for cell_id, cell in self._cells.items()
        }
        self.mover = ShardMove(
            tables,
            LocalPublisher(directory),
            {
                cell_id: MovedConnections(cell.services.connections(cell.http_url))
                for cell_id, cell in self._cells.items()
            },
            Clock(),
            wait=self._settle,
            settle_seconds=LOCAL_SETTLE_SECONDS,
        )
        self._lock = asyncio.Lock()

    def _settle(self, seconds: float) -> None:
        for cell in self._cells.values():
            cell.services.cells.forget()
        time.sleep(seconds)

    def move(self, source: str, target: str, lo: int, hi: int) -> MoveResult:
        """Start a move and run it to the end (blocking: run it on a worker thread)."""
        record = self.mover.start(source, target, lo, hi)
        return self.mover.run(source, record.move_id)

    async def serve(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except (ValueError, json.JSONDecodeError):
            return json_response(400, {"message": "the body must be JSON"})
        try:
            source, target, lo, hi = _parse(body)
        except MoveRefused as refused:
            return json_response(400, {"message": str(refused)})
        if self._lock.locked():
            return json_response(409, {"message": "a move is running; try when it is done"})
        async with self._lock:
            try:
                result = await asyncio.get_running_loop().run_in_executor(
                    None, self.move, source, target, lo, hi
                )
            except MoveRefused as refused:
                return json_response(400, {"message": str(refused)})
            except MoveBusy as busy:
                return json_response(409, {"message": str(busy)})
            except Exception as error:  # the record says where it stopped (`moves`)
                logger.exception("shard move failed")
                return json_response(500, {"message": f"the move stopped: {error}"})
        return json_response(200, result.to_wire())

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(MOVE_PATH, self.serve)


def _parse(body: Any) -> tuple[str, str, int, int]:
    if not isinstance(body, dict):
        raise MoveRefused('the body is {"from": CELL, "to": CELL, "lo": SHARD, "hi": SHARD}')
    source, target, lo, hi = (body.get(name) for name in ("from", "to", "lo", "hi"))
    if not isinstance(source, str) or not isinstance(target, str):
        raise MoveRefused("from and to must be cell ids")
    if type(lo) is not int or type(hi) is not int:
        raise MoveRefused("lo and hi must be integers")
    return source, target, lo, hi
