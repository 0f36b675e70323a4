"""pytest fixtures for tests that run against the local stack, in-process.

Import them into a conftest.py to use them:

    from tests.support.stack_fixtures import connect, shared_aws, stack  # noqa: F401

`shared_aws` is one moto server for the whole session; every `stack` on it gets its
own tables, so tests stay independent and each stack starts in a fraction of a second.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from messenger.contract import Env
from messenger_local import EmbeddedAws, LocalStack
from tests.support.identities import TestUser
from tests.support.ws_client import WsClient, connect_as

Connect = Callable[..., Awaitable[WsClient]]

# Every test user registers from loopback: a test that registers more users than the
# per-address hourly limit (30) gives its stack this environment.
MANY_REGISTRATIONS = {Env.REGISTRATIONS_PER_IP_PER_HOUR.value: "1000000"}


@pytest.fixture(scope="session")
def shared_aws() -> Iterator[EmbeddedAws]:
    aws = EmbeddedAws(port=0)
    aws.start()
    yield aws
    aws.stop()


@pytest.fixture
async def stack(shared_aws: EmbeddedAws) -> AsyncIterator[LocalStack]:
    """A running LocalStack with the real functions and the contract's routes."""
    async with LocalStack(aws=shared_aws) as running:
        yield running


@pytest.fixture
async def connect(stack: LocalStack) -> AsyncIterator[Connect]:
    """`await connect(user, **query_options)`: a connected WsClient with its connection_id.

    The id is found as the one connection that opened meanwhile: connect one client
    at a time (with asyncio.gather, connection_id may stay None).
    """
    clients: list[WsClient] = []

    async def connect_user(
        user: TestUser, *, check_frames: bool = True, **query_options: Any
    ) -> WsClient:
        before = set(stack.connection_ids())
        client = await connect_as(stack.ws_url, user, check_frames=check_frames, **query_options)
        clients.append(client)
        # The server registers the connection right after its 101 is written, which
        # may be a moment after the client has read it.
        for _ in range(100):
            opened = set(stack.connection_ids()) - before
            if len(opened) == 1:
                client.connection_id = opened.pop()
                break
            await asyncio.sleep(0.01)
        return client

    yield connect_user
    for client in clients:
        await client.close()
