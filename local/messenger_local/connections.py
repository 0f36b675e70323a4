"""Open WebSocket connections: who they belong to, and sending to them in order."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from messenger_local.events import Handshake, epoch_ms


class ConnectionGoneError(Exception):
    """The connection is closed or closing (what @connections answers with 410)."""


@dataclass
class LiveConnection:
    """One upgraded connection and what API Gateway remembers about it."""

    handshake: Handshake
    socket: web.WebSocketResponse
    # requestContext.authorizer of every event on this connection, None without one.
    authorizer: dict[str, Any] | None
    principal_id: str | None
    last_active_at: int = field(default_factory=epoch_ms)
    opened_monotonic: float = field(default_factory=time.monotonic)
    last_active_monotonic: float = field(default_factory=time.monotonic)
    # Set by whoever closes the connection on the server side: code and reason for
    # the close frame and for $disconnect.
    close_status: tuple[int, str] | None = None
    # The `code` of the last error frame posted that says why the server closes this
    # connection (docs/protocol.md §3 Closing): a DELETE then closes with its close code.
    closing_error: str | None = None
    # Frames whose invocations this connection may have running at once (Limits).
    in_flight: asyncio.Semaphore = field(default_factory=asyncio.Semaphore)
    _send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def connection_id(self) -> str:
        return self.handshake.connection_id

    def touch(self) -> None:
        """The client sent a data frame: the idle timer starts again."""
        self.last_active_at = epoch_ms()
        self.last_active_monotonic = time.monotonic()

    async def send(self, data: str | bytes) -> None:
        """Send one frame. Sends keep the order in which they were asked for."""
        async with self._send_lock:
            if self.socket.closed or self.close_status is not None:
                raise ConnectionGoneError(self.connection_id)
            try:
                if isinstance(data, str):
                    await self.socket.send_str(data)
                else:
                    await self.socket.send_bytes(data)
            except (ConnectionError, RuntimeError) as error:
                raise ConnectionGoneError(self.connection_id) from error

    async def close(self, code: int, reason: str) -> None:
        """Close from the server side; the first reason given is the one reported."""
        if self.close_status is None:
            self.close_status = (code, reason)
        await self.socket.close(code=code, message=reason.encode())


class ConnectionRegistry:
    """The connections of one stage, by connectionId."""

    def __init__(self) -> None:
        self._by_id: dict[str, LiveConnection] = {}

    def add(self, connection: LiveConnection) -> None:
        self._by_id[connection.connection_id] = connection

    def get(self, connection_id: str) -> LiveConnection | None:
        return self._by_id.get(connection_id)

    def remove(self, connection_id: str) -> LiveConnection | None:
        """Forget a connection: from now on @connections answers 410 for it."""
        return self._by_id.pop(connection_id, None)

    def ids(self) -> list[str]:
        return list(self._by_id)

    def all(self) -> list[LiveConnection]:
        return list(self._by_id.values())
