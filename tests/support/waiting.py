"""Waiting for something that happens in the background (an invocation, a $disconnect)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def until(condition: Callable[[], T], timeout: float = 5.0, every: float = 0.01) -> T:
    """Poll `condition` until it returns something truthy; that value, or TimeoutError."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = condition()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"still false after {timeout}s: {condition}")
        await asyncio.sleep(every)


async def eventually(
    check: Callable[[], Awaitable[T]], timeout: float = 5.0, every: float = 0.2
) -> T:
    """`until` for a check that must itself await (a command, a request): its first truthy
    value, or TimeoutError."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"still false after {timeout}s: {check}")
        await asyncio.sleep(every)
