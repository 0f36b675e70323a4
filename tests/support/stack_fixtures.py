"""pytest fixtures for tests that run against the local stack, in-process.

Import them into a conftest.py to use them:

    from tests.support.stack_fixtures import connect, shared_aws, stack  # noqa: F401

`shared_aws` is one moto server for the whole session; every `stack` on it gets its
own tables, so tests stay independent and each stack starts in a fraction of a second.
`cells_stack` is a stack of two cells (c0, c1: docs/protocol.md §6), and `connect_home`
connects a user to their home cell in it. `site` runs a test twice, on "one cell" and
on "two cells", with its users spread over the cells (`site.user("bob", home=1)`).
`dump(stack)` (or `dump(stack, cell="c1")`) reads every item of a stack's tables, to
compare before and after a refusal.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from messenger.config import LOCAL_CELL_EPOCH
from messenger.contract import Env
from messenger.dal.profiles import user_key
from messenger.logic.epoch import epoch_name
from messenger.logic.relay_callers import CALLERS_BUCKET_OWNER
from messenger_local import EmbeddedAws, LocalStack
from messenger_local.activity import TableDump
from messenger_local.harness import counts_refusals
from messenger_protocol.cells import DIRECTORY_VERSION_STAGE_VARIABLE
from tests.support.cells import user_homed_in
from tests.support.identities import TestUser
from tests.support.ws_client import WsClient, connect_as

Connect = Callable[..., Awaitable[WsClient]]
CELLS = 2

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
async def cells_stack(shared_aws: EmbeddedAws) -> AsyncIterator[LocalStack]:
    """A running LocalStack of two cells, c0 and c1, each at its own URL."""
    async with LocalStack(aws=shared_aws, cells=CELLS) as running:
        yield running


# How long the standby's replicas trail the primary in `standby_stack` (seconds).
STANDBY_LAG = 0.3


@pytest.fixture
async def standby_stack(shared_aws: EmbeddedAws) -> AsyncIterator[LocalStack]:
    """Two cells, each with a standby whose tables trail by STANDBY_LAG seconds."""
    async with LocalStack(
        aws=shared_aws, cells=CELLS, standby=True, replication_lag=STANDBY_LAG
    ) as running:
        yield running


@asynccontextmanager
async def connector(stack: LocalStack) -> AsyncIterator[Connect]:
    """`await connect(user, **query_options)`: a WsClient connected to the user's home
    (the stack's one stage, or the user's home cell), with its connection_id; every
    client it made is closed when the block ends.

    The id is found as the one connection that opened meanwhile: connect one client
    at a time (with asyncio.gather, connection_id may stay None).
    """
    clients: list[WsClient] = []

    async def connect_user(
        user: TestUser, *, check_frames: bool = True, **query_options: Any
    ) -> WsClient:
        cell = stack.home_of(user.user_id) if stack.cell_ids else None
        url = stack.cell_url(cell) if cell is not None else stack.ws_url
        before = set(stack.connection_ids(cell))
        client = await connect_as(url, user, check_frames=check_frames, **query_options)
        clients.append(client)
        # The server registers the connection right after its 101 is written, which
        # may be a moment after the client has read it.
        for _ in range(100):
            opened = set(stack.connection_ids(cell)) - before
            if len(opened) == 1:
                client.connection_id = opened.pop()
                break
            await asyncio.sleep(0.01)
        return client

    try:
        yield connect_user
    finally:
        for client in clients:
            await client.close()


@pytest.fixture
async def connect(stack: LocalStack) -> AsyncIterator[Connect]:
    """`await connect(user, **query_options)`: see `connector`."""
    async with connector(stack) as connect_user:
        yield connect_user


@pytest.fixture
async def connect_home(cells_stack: LocalStack) -> AsyncIterator[Connect]:
    """`await connect_home(user, **query_options)`: connected to the user's home cell."""
    async with connector(cells_stack) as connect_user:
        yield connect_user


ONE_CELL, TWO_CELLS = "one cell", "two cells"


@dataclass
class Site:
    """A running stack the users of a test live on: one stage without cells, or two
    cells where `user(name, home=1)` lives in the second (the same user as home=0
    without cells)."""

    stack: LocalStack
    connect: Connect

    def user(self, name: str, home: int = 0) -> TestUser:
        """A user whose id is `name` (or `name-N`, to land in the cell `home` names)."""
        cells = self.stack.cell_ids
        return user_homed_in(cells[home], name, cells) if cells else TestUser(name)

    def directory_version_of(self, user: TestUser) -> int:
        """The directory version the user's home cell knows (`dv` in its ack and syncDone,
        docs/protocol.md §6): its stage's variable (0 without cells: no directory)."""
        cell = self.stack.home_of(user.user_id) if self.stack.cell_ids else None
        return int(self.stack.stage_variables(cell)[DIRECTORY_VERSION_STAGE_VARIABLE])

    def epoch_of(self, user: TestUser) -> str:
        """The epoch of the user's home (in every syncDone it sends): "local#0" without
        cells, "local-c1#0" in c1 (no failover switched it yet)."""
        if not self.stack.cell_ids:
            return epoch_name(LOCAL_CELL_EPOCH, 0)
        return epoch_name(f"{LOCAL_CELL_EPOCH}-{self.stack.home_of(user.user_id)}", 0)


@pytest.fixture(params=[ONE_CELL, TWO_CELLS])
async def site(request: pytest.FixtureRequest, shared_aws: EmbeddedAws) -> AsyncIterator[Site]:
    """A test's site: "one cell" (a stack without cells) or "two cells"."""
    cells = CELLS if request.param == TWO_CELLS else None
    async with LocalStack(aws=shared_aws, cells=cells) as running, connector(running) as connect:
        yield Site(running, connect)


def dump(stack: LocalStack, cell: str | None = None) -> TableDump:
    """Every item of the stack's tables, or of one cell's, by table name (verification
    only: a Scan in a test is fine), but the counts of each connection's refused frames,
    which every refusal adds to (docs/protocol.md §3). Blocking: call it with
    asyncio.to_thread."""
    return {
        table: [item for item in items if not counts_refusals(item)]
        for table, items in stack.dump(cell).items()
    }


async def dump_cells(stack: LocalStack, *, relay_budgets: bool = True) -> dict[str, TableDump]:
    """Every cell's tables, once no invocation is in flight; without `relay_budgets`, less
    the budget each Relay keeps per calling cell (docs/scale.md "The mesh"), which any
    call a proven peer makes uses, refused or not."""
    await stack.settled()
    dumps = {cell: await asyncio.to_thread(dump, stack, cell) for cell in stack.cell_ids}
    if relay_budgets:
        return dumps
    return {
        cell: {
            name: [item for item in items if item["pk"]["S"] != user_key(CALLERS_BUCKET_OWNER)]
            for name, items in tables.items()
        }
        for cell, tables in dumps.items()
    }
