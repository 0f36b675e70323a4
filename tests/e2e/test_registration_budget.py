"""One registration budget per address across the cells of a local stack (docs/limits.md),
over real WebSocket handshakes: every local user comes from 127.0.0.1."""

from __future__ import annotations

import pytest

from messenger.contract import Env
from messenger_local import EmbeddedAws, LocalStack
from tests.support.cells import user_homed_in
from tests.support.stack_fixtures import dump_cells
from tests.support.ws_client import handshake_status, signed_url

pytestmark = pytest.mark.e2e


async def test_registrations_in_c0_use_up_the_budget_of_a_registration_in_c1(
    shared_aws: EmbeddedAws,
) -> None:
    limit = {Env.REGISTRATIONS_PER_IP_PER_HOUR.value: "3"}
    async with LocalStack(aws=shared_aws, cells=2, environment=limit) as stack:
        # Given 127.0.0.1 registered three users of c0 this hour
        for n in range(3):
            user = user_homed_in("c0", f"first{n}")
            assert await handshake_status(signed_url(stack.cell_url("c0"), user)) == 101
        # When it registers a user of c1, Then c1 refuses it and no cell wrote anything
        before = await dump_cells(stack, relay_budgets=False)
        late = user_homed_in("c1", "late")
        assert await handshake_status(signed_url(stack.cell_url("c1"), late)) == 403
        assert await dump_cells(stack, relay_budgets=False) == before
