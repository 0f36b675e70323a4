"""`bench cost`'s least bill for a short text's life under the contract's limits: every
frame in runs a function and writes a count of itself (docs/protocol.md §3), and the
design bills at least that, which is more than issue 24's $10 target."""

from __future__ import annotations

import pytest

from bench import cost
from bench.catchup import metered_harness

pytestmark = pytest.mark.integration


def test_a_short_texts_life_bills_at_least_its_floor_and_a_counted_function_per_frame() -> None:
    # When a short text's life between users who talked before runs on the real handlers
    with metered_harness(rate_limit_per_minute=6000, rate_limit_burst=1000) as (h, c, meter):
        life = cost.run_second_life(h, c, meter, cost.SHORT_TEXT_BYTES)
    # Then three frames came in (send, bob's ack, alice's ack of the receipt)
    assert life.invocations == 3
    # And the least any design keeping the limits bills is its floor and, per frame, a
    # function's request and one write unit
    per_frame = cost.LAMBDA_PER_MILLION_REQUESTS + cost.DYNAMODB_PER_MILLION_WRU
    least = life.least_with_limits()
    assert least == pytest.approx(life.floor().total() + 3 * per_frame)
    # And this design bills no less, with at least one Limits write unit per frame
    assert life.bill().total() >= least
    limits_wru = sum(units for (_, table), units in life.units.wru_at.items() if "Limits" in table)
    assert limits_wru >= life.invocations
    # And the least is above issue 24's target
    assert least > cost.TARGET_SHORT_TEXT
