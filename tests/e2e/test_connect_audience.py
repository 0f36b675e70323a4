"""A connect query signed for one cell side is worthless at another (docs/protocol.md §1
`aud`): the directory spoof of issue 22, where a fake cell relayed a freshly signed query to
the real one, ends at the real cell's authorizer. Real WebSocket handshakes on loopback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from messenger.contract import Env
from messenger_local import EmbeddedAws, LocalStack
from messenger_protocol.connect import canonical_endpoint
from tests.support.cells import CELLS, user_homed_in
from tests.support.local_command import messenger_local
from tests.support.local_control import post_local
from tests.support.stack_fixtures import dump_cells
from tests.support.ws_client import handshake_status, signed_url

pytestmark = pytest.mark.e2e


async def test_a_query_signed_for_c0_and_relayed_to_c1_is_refused_and_writes_nothing(
    cells_stack: LocalStack,
) -> None:
    # Given bob, at home in c1, lured (a spoofed directory) into signing for c0's URL
    bob = user_homed_in("c1", "bob")
    c0, c1 = cells_stack.cell_url("c0"), cells_stack.cell_url("c1")
    relayed = signed_url(c1, bob, aud=canonical_endpoint(c0))
    before = await dump_cells(cells_stack)
    # When whoever holds the query presents it at c1, bob's real home
    # Then c1 refuses it 403, and no table of any cell changed
    assert await handshake_status(relayed) == 403
    assert await dump_cells(cells_stack) == before
    # And bob's own query, signed for c1, connects
    assert await handshake_status(signed_url(c1, bob)) == 101


async def test_a_query_signed_for_the_primary_is_refused_by_the_active_standby(
    standby_stack: LocalStack,
) -> None:
    sides = standby_stack.standby("c0")
    # Given c0 failed over: its standby is the active side
    status, _ = await asyncio.to_thread(
        post_local, f"http://127.0.0.1:{standby_stack.port}/_local/failover/c0"
    )
    assert status == 200
    amy = user_homed_in("c0", "amy")
    primary, standby = sides.primary.ws_url, sides.standby.ws_url
    # When a query amy signed for the primary is presented at the standby
    relayed = signed_url(standby, amy, aud=canonical_endpoint(primary))
    # Then it is refused; signed for the standby itself, it connects
    assert await handshake_status(relayed) == 403
    assert await handshake_status(signed_url(standby, amy)) == 101


async def test_a_stack_with_v11_turned_off_takes_only_bound_queries(
    shared_aws: EmbeddedAws,
) -> None:
    off = {Env.ACCEPT_V11_CONNECT.value: "false"}
    async with LocalStack(aws=shared_aws, environment=off) as stack:
        amy = user_homed_in("c0", "amy")
        # The v1.1 form (no aud) is refused; the v1.2 form, bound to the stage, connects
        assert await handshake_status(signed_url(stack.ws_url, amy, aud=None)) == 403
        assert await handshake_status(signed_url(stack.ws_url, amy)) == 101


@pytest.mark.slow
async def test_messenger_local_cells_2_no_v11_connect_refuses_relayed_and_unbound_queries(
    tmp_path: Path,
) -> None:
    # Given `messenger local --cells 2 --no-v11-connect --registrations-per-hour 2`
    options = ("--cells", "2", "--no-v11-connect", "--registrations-per-hour", "2")
    async with messenger_local(tmp_path / "functions.log", *options) as command:
        await command.read_until("Ctrl-C stops it.")
        urls = {cell: f"ws://127.0.0.1:{command.port}/{cell}" for cell in CELLS}
        bob = user_homed_in("c1", "bob")
        # Then a query bob signed for c0, presented at c1, is refused
        relayed = signed_url(urls["c1"], bob, aud=canonical_endpoint(urls["c0"]))
        assert await handshake_status(relayed) == 403
        # And so is the unbound v1.1 form
        assert await handshake_status(signed_url(urls["c1"], bob, aud=None)) == 403
        # And signed for c1 he connects; by the name localhost too
        assert await handshake_status(signed_url(urls["c1"], bob)) == 101
        by_name = urls["c1"].replace("127.0.0.1", "localhost")
        assert await handshake_status(signed_url(by_name, bob, with_keys=False)) == 101
        # And 127.0.0.1, having registered bob in c1, registers one user of c0 and no more
        # in any cell: one budget for the whole stack
        amy, cy = user_homed_in("c0", "amy"), user_homed_in("c0", "cy")
        assert await handshake_status(signed_url(urls["c0"], amy)) == 101
        assert await handshake_status(signed_url(urls["c0"], cy)) == 403
        assert await handshake_status(signed_url(urls["c1"], user_homed_in("c1", "di"))) == 403
