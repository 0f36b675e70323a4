"""Acknowledging delivered items: after they are stored, a few at once.

Items that arrive together (a sync) are acked in one frame of up to 100 ids, a
moment later. If the connection is gone by then, the ids are simply dropped: the
items are still queued on the server, come again with the next sync, are recognised
as duplicates, and acked then.
"""

from __future__ import annotations

import asyncio
import contextlib

from messenger_client.connection import Connection
from messenger_client.errors import NotConnected
from messenger_protocol.frames import Ack
from messenger_protocol.limits import MAX_IDS_PER_FRAME


class AckBatcher:
    def __init__(self, connection: Connection, delay: float) -> None:
        self._connection = connection
        self._delay = delay
        self._ids: list[str] = []
        self._timer: asyncio.TimerHandle | None = None
        self._flushing: set[asyncio.Task[None]] = set()

    def add(self, item_id: str) -> None:
        """Ack an item that is safely stored (or that we chose to drop)."""
        self._ids.append(item_id)
        if len(self._ids) >= MAX_IDS_PER_FRAME:
            self._flush_soon()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._delay, self._flush_soon)

    async def flush(self) -> None:
        """Send every ack not sent yet, now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._ids:
            chunk = self._ids[:MAX_IDS_PER_FRAME]
            del self._ids[:MAX_IDS_PER_FRAME]
            try:
                await self._connection.send(Ack(ids=chunk))
            except NotConnected:
                self._ids.clear()  # they come again with the next sync
                return

    async def close(self) -> None:
        await self.flush()
        for task in list(self._flushing):
            with contextlib.suppress(Exception):
                await task

    def _flush_soon(self) -> None:
        self._timer = None
        task = asyncio.get_running_loop().create_task(self.flush())
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)
