"""Requests that expect an answer frame (getKeys, getPresence), matched to their answers.

Answers carry no request id: a `keys` frame names its user, a `presence` answer lists
the users asked about, and an `error` names the action in its `ref`. So one request
per action is in flight at a time, and an error with that ref can only be its answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from messenger_client.connection import Connection, first_of
from messenger_client.errors import NotConnected, RequestFailed

Frame = dict[str, Any]


@dataclass
class _Waiter:
    matches: Callable[[Frame], bool]
    action: str
    future: asyncio.Future[Frame]


class Replies:
    """The requests waiting for an answer on a connection."""

    def __init__(self, connection: Connection, timeout: float) -> None:
        self._connection = connection
        self._timeout = timeout
        self._waiters: list[_Waiter] = []
        self._locks: dict[str, asyncio.Lock] = {}

    async def request(self, frame: Frame, matches: Callable[[Frame], bool]) -> Frame:
        """Send `frame` and return the first frame that `matches`.

        RequestFailed if the server refused it; NotConnected if no connection opens, it
        closes before the answer, or no answer comes in time (worth trying again).
        """
        action = str(frame["action"])
        async with self._locks.setdefault(action, asyncio.Lock()):
            await self._connection.wait_open(self._timeout)
            waiter = _Waiter(matches, action, asyncio.get_running_loop().create_future())
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

    def answer(self, frame: Frame) -> bool:
        """Hand a frame to the request it answers; False if none was waiting for it."""
        for waiter in self._waiters:
            if not waiter.future.done() and waiter.matches(frame):
                waiter.future.set_result(frame)
                return True
        return False

    def refuse(self, ref: object, code: str, message: str) -> bool:
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
