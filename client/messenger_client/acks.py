"""Acknowledging delivered items: after they are stored, a few at once.

Items that arrive together (a sync) are acked in one frame of up to 100 ids, a
moment later. If the connection is gone by then, the ids are simply dropped: the
items are still queued on the server, come again with the next sync, are recognised
as duplicates, and acked then.

An `ack` refused for load (RATE_LIMITED: storage throttled, or our pace; INTERNAL) names
only the action, not its ids: the acks sent in the last minute go again, on the same
connection, no sooner than the refusal's `retryAfter` (docs/protocol.md §3) and with the
resend backoff, one wait at a time, for up to MAX_ACK_RETRIES refusals in a row (then
the next sync brings the items again). Acking an id twice is harmless (the server
deletes what is still queued and ignores the rest).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from messenger_client.connection import Connection
from messenger_client.errors import NotConnected
from messenger_protocol.client_rules import (
    MAX_ACK_RETRIES,
    MAX_RECENT_ACK_FRAMES,
    RECENT_ACKS_SECONDS,
    RESEND_BASE_SECONDS,
    RESEND_CAP_SECONDS,
    RETRYABLE_CODES,
    backoff_delay,
    resend_wait,
)
from messenger_protocol.frames import Ack
from messenger_protocol.limits import MAX_IDS_PER_FRAME


class AckBatcher:
    def __init__(
        self,
        connection: Connection,
        delay: float,
        resend_base: float = RESEND_BASE_SECONDS,
        resend_cap: float = RESEND_CAP_SECONDS,
    ) -> None:
        self._connection = connection
        self._delay = delay
        self._ids: list[str] = []
        self._timer: asyncio.TimerHandle | None = None
        self._flushing: set[asyncio.Task[None]] = set()
        # (when, ids) of the ack frames sent lately, oldest first.
        self._recent: deque[tuple[float, list[str]]] = deque(maxlen=MAX_RECENT_ACK_FRAMES)
        self._resend_base = resend_base
        self._resend_cap = resend_cap
        self._refusals = 0  # within a minute of each other, for the backoff
        self._refused_at = float("-inf")
        self._retry: asyncio.Task[None] | None = None

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
            self._recent.append((asyncio.get_running_loop().time(), chunk))

    def refused(self, code: str, retry_after: int | None) -> bool:
        """An `error` whose ref is `ack`; True if it was for load, and the acks sent lately
        go again once its wait is over (one wait at a time, however many were refused)."""
        if code not in RETRYABLE_CODES:
            return False
        now = asyncio.get_running_loop().time()
        if now - self._refused_at > RECENT_ACKS_SECONDS:
            self._refusals = 0
        self._refused_at = now
        if (self._retry is None or self._retry.done()) and self._refusals < MAX_ACK_RETRIES:
            self._refusals += 1
            backoff = backoff_delay(self._refusals - 1, self._resend_base, self._resend_cap)
            self._retry = asyncio.get_running_loop().create_task(
                self._again(resend_wait(backoff, retry_after))
            )
        return True

    async def _again(self, wait: float) -> None:
        await asyncio.sleep(wait)
        since = asyncio.get_running_loop().time() - RECENT_ACKS_SECONDS - wait
        again = [i for at, chunk in self._recent if at >= since for i in chunk]
        self._recent.clear()
        self._ids.extend(i for i in dict.fromkeys(again) if i not in self._ids)
        await self.flush()

    async def close(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
        await self.flush()
        for task in list(self._flushing):
            with contextlib.suppress(Exception):
                await task

    def _flush_soon(self) -> None:
        self._timer = None
        task = asyncio.get_running_loop().create_task(self.flush())
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)
