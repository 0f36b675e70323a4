"""Requests that expect an answer frame (getKeys, getPresence), matched to their answers.

Answers carry no request id: a `keys` frame names its user, a `presence` answer lists
the users asked about, and an `error` names the action in its `ref`. So one request
per action is in flight at a time, and an error with that ref can only be its answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from messenger_client.connection import Connection, first_of
from messenger_client.errors import NotConnected, RequestFailed
from messenger_protocol.frames import ClientFrame, ServerFrame
from messenger_protocol.names import Action, ErrorCode

Answer = TypeVar("Answer", bound=ServerFrame)


@dataclass
class _Waiter(Generic[Answer]):
    answer: type[Answer]
    matches: Callable[[Answer], bool]
    action: Action
    future: asyncio.Future[Answer]

    def offer(self, frame: ServerFrame) -> bool:
        """Take `frame` if it is the answer awaited; False if it is not."""
        if self.future.done() or not isinstance(frame, self.answer) or not self.matches(frame):
            return False
        self.future.set_result(frame)
        return True


class Replies:
    """The requests waiting for an answer on a connection."""

    def __init__(self, connection: Connection, timeout: float) -> None:
        self._connection = connection
        self._timeout = timeout
        self._waiters: list[_Waiter[Any]] = []
        self._locks: dict[Action, asyncio.Lock] = {}

    async def request(
        self, frame: ClientFrame, answer: type[Answer], matches: Callable[[Answer], bool]
    ) -> Answer:
        """Send `frame` and return the first `answer` frame that `matches`.

        RequestFailed if the server refused it; NotConnected if no connection opens, it
        closes before the answer, or no answer comes in time (worth trying again).
        """
        action = frame.ACTION
        async with self._locks.setdefault(action, asyncio.Lock()):
            await self._connection.wait_open(self._timeout)
            waiter = _Waiter(answer, matches, action, asyncio.get_running_loop().create_future())
            self._waiters.append(waiter)
            try:
                session = await self._connection.send(frame)
                await first_of(waiter.future, session.ended, timeout=self._timeout)
                if waiter.future.done():
                    return waiter.future.result()
                if session.ended.done():
                    raise NotConnected("the connection closed before the answer came")
                raise NotConnected(f"no answer to {action} within {self._timeout:g}s")
            finally:
                self._waiters.remove(waiter)

    def answer(self, frame: ServerFrame) -> bool:
        """Hand a frame to the request it answers; False if none was waiting for it."""
        return any(waiter.offer(frame) for waiter in self._waiters)

    def refuse(self, ref: str | None, code: ErrorCode, message: str) -> bool:
        """An `error` frame whose ref names a pending request's action; False otherwise."""
        for waiter in self._waiters:
            if waiter.action == ref and not waiter.future.done():
                waiter.future.set_exception(RequestFailed(code, message))
                return True
        return False

    def fail_all(self, error: Exception) -> None:
        for waiter in self._waiters:
            if not waiter.future.done():
                waiter.future.set_exception(error)
