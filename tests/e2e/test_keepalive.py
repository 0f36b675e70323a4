"""The keepalive over the real local stack (docs/protocol.md §2 `ping`): the stage answers
`ping` itself from its variables, as API Gateway's MOCK route does on AWS, and the
directory's publish keeps the stage's `dv` at the published version."""

from __future__ import annotations

import asyncio

import pytest

from messenger.contract import DIRECTORY_VERSION_STAGE_VARIABLE, GATEWAY_ROUTES_BY_KEY
from messenger_local import LocalStack
from tests.support.cells import user_homed_in
from tests.support.identities import TestUser
from tests.support.schemas import check_server_frame
from tests.support.stack_fixtures import Connect

pytestmark = pytest.mark.e2e


def functions_run(stack: LocalStack) -> int:
    """Invocations of functions so far (what the stage answered itself is not one)."""
    return sum(1 for invocation in stack.invocations if not invocation.by_gateway)


async def test_a_ping_is_answered_by_the_stage_with_no_function_and_no_write(
    stack: LocalStack, connect: Connect, alice: TestUser
) -> None:
    # Given alice connected, and what the stage has run and stored so far
    client = await connect(alice)
    await stack.settled()  # $connect's own work (the presence function) done
    invoked, stored = functions_run(stack), await asyncio.to_thread(stack.dump)
    # When she pings three times
    pongs = [await client.request({"action": "ping"}) for _ in range(3)]
    # Then each is a valid pong naming the stage's directory version (no directory: 0)
    for pong in pongs:
        check_server_frame(pong)
        assert pong == {"type": "pong", "dv": 0}
    # And no function ran and nothing was written; the stage logged each as its own answer
    assert functions_run(stack) == invoked
    assert await asyncio.to_thread(stack.dump) == stored
    pings = stack.invocations_of("ping")
    assert len(pings) == 3 and all(record.by_gateway for record in pings)
    assert "(gateway)" in pings[0].line()
    assert "ping" in GATEWAY_ROUTES_BY_KEY


async def test_a_new_directory_version_reaches_idle_clients_in_their_pong(
    cells_stack: LocalStack, connect_home: Connect
) -> None:
    # Given dave at home in c0, pinging: the stage holds the published version (1)
    dave = user_homed_in("c0", "dave")
    client = await connect_home(dave)
    assert await client.request({"action": "ping"}) == {"type": "pong", "dv": 1}
    await cells_stack.settled()
    invoked = functions_run(cells_stack)
    # When the deployment publishes a new directory (c1's entry changed, as a failover does)
    published = await asyncio.to_thread(
        cells_stack.publish_entry, "c1", f"ws://127.0.0.1:{cells_stack.port}/c1-standby"
    )
    assert published.version == 2
    # Then dave's next pong says so, from his stage, still without running a function
    assert await client.request({"action": "ping"}) == {"type": "pong", "dv": 2}
    assert functions_run(cells_stack) == invoked
    # And every cell's stage holds the new version
    for cell_id in cells_stack.cell_ids:
        assert cells_stack.stage_variables(cell_id)[DIRECTORY_VERSION_STAGE_VARIABLE] == "2"
