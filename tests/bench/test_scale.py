"""`bench scale`: the cell model's arithmetic, on small numbers checked by hand."""

from __future__ import annotations

import math

import pytest

from bench import cost
from bench.scale import (
    MONTH_SECONDS,
    TARGET_UTILIZATION,
    Load,
    Measured,
    Operation,
    binding,
    cells_needed,
    demand,
    monthly_cost,
)

pytestmark = pytest.mark.unit

NOTHING = Operation(frames=0, posts=0, invocations=0)
# 13,824,000 users x 100 messages a day = 16,000 messages a second.
USERS = 13_824_000
API_RATE = 10_000 * TARGET_UTILIZATION  # the default API Gateway quota a cell may use


def measured(*, wru: float = 0, relay: int = 0) -> Measured:
    """A message life of 3 frames and 2 posts (5 API Gateway requests); nothing else."""
    life = Operation(frames=3, posts=2, invocations=3, wru=wru)
    return Measured(
        life=life,
        cross_cell_extra=Operation(0, 0, relay),
        reconnect=NOTHING,
        ping=NOTHING,
    )


def load(users: float) -> Load:
    # Connections renewed rarely enough that only the messages matter.
    return Load(daily_users=users, connection_seconds=10**9)


def test_cells_follow_the_api_requests_by_hand_and_double_with_the_users() -> None:
    # Given 0.95 x USERS: 15,200 messages/s x 5 requests = 76,000 requests/s = 9.5 cells
    users = 0.95 * USERS
    # When the model sizes the deployment, for those users and twice as many
    one, two = (cells_needed(load(n), measured(), raised=False) for n in (users, 2 * users))
    # Then it needs what the hand computation says: 10 cells, then 19
    assert one == math.ceil(users * 100 / 86_400 * 5 / API_RATE) == 10
    assert two == math.ceil(2 * users * 100 / 86_400 * 5 / API_RATE) == 19
    # And at the same number of cells, twice the users make twice each cell's demand
    at_ten = demand(load(users), measured(), 10)
    doubled = demand(load(2 * users), measured(), 10)
    assert doubled.api_requests == pytest.approx(2 * at_ten.api_requests)
    assert doubled.dynamodb_wru == pytest.approx(2 * at_ten.dynamodb_wru)


def test_raising_the_binding_quota_hands_the_binding_to_the_next() -> None:
    # Given a message that takes 5 requests and 15 WRU: at default quotas 5/10,000 of
    # the API quota and 15/40,000 of DynamoDB's; raised, 5/50,000 and 15/80,000
    costly = measured(wru=15)
    # When the model looks for the quota that binds first
    default = binding(load(USERS), costly, 10, raised=False)
    raised = binding(load(USERS), costly, 10, raised=True)
    # Then API Gateway binds at default quotas, and DynamoDB once API Gateway's is raised
    assert default.key == "api_requests"
    assert raised.key == "dynamodb_wru"
    # And the cells needed fall accordingly: 16,000 x 15 / (80,000 x 0.8) = 3.75 -> 4
    assert cells_needed(load(USERS), costly, raised=True) == 4


def test_a_share_of_sends_cross_cells_and_adds_one_relay_invocation() -> None:
    # Given 4 cells and a cross-cell send that adds 1 Relay invocation
    cells = 4
    # When the model counts a cell's Lambda invocations
    need = demand(load(USERS), measured(relay=1), cells)
    # Then each cell runs its quarter of the messages' 3 invocations, and the Relay for the
    # 3/4 of them that cross cells
    assert need.invocations == pytest.approx(16_000 / cells * (3 + (cells - 1) / cells))
    # And one cell alone has no cross-cell sends at all
    assert demand(load(USERS), measured(relay=1), 1).invocations == pytest.approx(16_000 * 3)


def test_connection_minutes_and_the_message_tiers_are_priced_by_hand() -> None:
    # Given 4 cells, each billed per account: 16,000 / 4 messages/s x 6 billed messages
    life = Operation(frames=3, posts=2, invocations=0, api_messages=6)
    model = Measured(life=life, cross_cell_extra=NOTHING, reconnect=NOTHING, ping=NOTHING)
    users = Load(daily_users=USERS, connection_seconds=10**9, connected_share=0.5)
    # When the month is priced
    bill = monthly_cost(users, model, 4)
    # Then connection minutes are every connection's minutes of the month
    minutes = USERS * 0.5 * MONTH_SECONDS / 60
    assert bill["API Gateway connection minutes"] == pytest.approx(
        minutes * cost.API_GATEWAY_PER_MILLION_CONNECTION_MINUTES / 1e6
    )
    # And each cell pays its first billion messages at the first tier, the rest at the next
    per_cell = 16_000 / 4 * 6 * MONTH_SECONDS
    dollars = (
        1e9 * cost.API_GATEWAY_PER_MILLION_MESSAGES
        + (per_cell - 1e9) * cost.API_GATEWAY_PER_MILLION_MESSAGES_OVER_BILLION
    ) / 1e6
    assert bill["API Gateway messages"] == pytest.approx(4 * dollars)
