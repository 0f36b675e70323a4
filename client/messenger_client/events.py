"""What a `MessengerClient` tells the app, as an async stream of events.

async with client.events() as events:
    async for event in events:
        match event:
            case MessageAdded(message=message): ...
            case StatusChanged(peer=peer, message_ids=ids, status=status): ...
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TypeVar

from messenger_client.connection import ConnectionStatus
from messenger_client.store import MessageStatus, Rejection, StoredMessage


@dataclass(frozen=True)
class Presence:
    """A user's online state; `last_seen` (ms) is when their last connection closed."""

    user_id: str
    online: bool
    last_seen: int | None

    @property
    def hidden(self) -> bool:
        """Offline and never seen: how the server shows a user who does not let us see
        their presence, and a user who does not exist alike (docs/protocol.md §2)."""
        return not self.online and self.last_seen is None

    def hidden_reason(self) -> str:
        """Why nothing is shown, without claiming more than the server said."""
        return (
            f"{self.user_id}'s presence is not shown to you: {self.user_id} shares it with"
            " their contacts only (or with nobody), or there is no such user"
        )


@dataclass(frozen=True)
class MessageAdded:
    """A message entered the history: one we received, or one we are sending (pending)."""

    message: StoredMessage


@dataclass(frozen=True)
class StatusChanged:
    """Our messages to `peer` moved forward: sent (ack), delivered or seen (receipts)."""

    peer: str
    message_ids: tuple[str, ...]
    status: MessageStatus


@dataclass(frozen=True)
class SendFailed:
    """The server refused one of our messages for good (e.g. UNKNOWN_RECIPIENT)."""

    peer: str
    message_id: str
    code: str
    reason: str


@dataclass(frozen=True)
class MessageRejected:
    """A message arrived that we could not read or verify: not stored as a message."""

    rejection: Rejection


@dataclass(frozen=True)
class PresenceChanged:
    presence: Presence


@dataclass(frozen=True)
class ConnectionChanged:
    status: ConnectionStatus


@dataclass(frozen=True)
class Synced:
    """Everything queued for us on the server has been stored and acknowledged: `count`
    items over every page of the sync."""

    count: int


@dataclass(frozen=True)
class EpochChanged:
    """A `syncDone` named a generation of our home cell other than the last one we saw
    (docs/protocol.md §7; `previous` is None the first time). After a failover the server may
    have lost its last writes: messages without a `delivered` receipt are worth sending
    again."""

    epoch: str
    previous: str | None


@dataclass(frozen=True)
class ServerError:
    """An `error` frame that no pending request was waiting for."""

    code: str
    message: str
    ref: str | None


Event = (
    MessageAdded
    | StatusChanged
    | SendFailed
    | MessageRejected
    | PresenceChanged
    | ConnectionChanged
    | Synced
    | EpochChanged
    | ServerError
)
E = TypeVar("E")


class EventStream:
    """One subscriber's queue of events, from the moment it was made until closed."""

    def __init__(self, unsubscribe: Callable[[EventStream], None]) -> None:
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._unsubscribe = unsubscribe
        self._ended = False

    def publish(self, event: Event | None) -> None:
        """Queue an event (None ends the stream: the client closed)."""
        self._queue.put_nowait(event)

    def close(self) -> None:
        self._unsubscribe(self)
        self._ended = True

    def drain(self) -> list[Event]:
        """The events queued so far, without waiting for more."""
        drained: list[Event] = []
        while not self._queue.empty():
            event = self._queue.get_nowait()
            if event is None:
                self._ended = True
                break
            drained.append(event)
        return drained

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        if self._ended:
            raise StopAsyncIteration
        event = await self._queue.get()
        if event is None:
            self._ended = True
            raise StopAsyncIteration
        return event

    async def next(self, timeout: float | None = None) -> Event:
        """The next event; TimeoutError if none comes in time."""
        return await asyncio.wait_for(self.__anext__(), timeout)

    async def next_of(
        self, kind: type[E], where: Callable[[E], bool] = lambda _: True, timeout: float = 10.0
    ) -> E:
        """Skip events until one of `kind` for which `where` holds; TimeoutError otherwise."""
        async with asyncio.timeout(timeout):
            async for event in self:
                if isinstance(event, kind) and where(event):
                    return event
        raise EOFError("the client closed")

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
