"""Reconnects and resends back off exponentially, with jitter, within bounds."""

from __future__ import annotations

import random

import pytest

from messenger_client.connection import ConnectionPolicy
from messenger_protocol.client_rules import (
    PING_INTERVAL_SECONDS,
    PING_JITTER_SECONDS,
    PONG_TIMEOUT_SECONDS,
    RETRYABLE_CODES,
    backoff_delay,
    ping_delay,
    resend_wait,
)
from messenger_protocol.limits import IDLE_TIMEOUT_SECONDS, MAX_CONNECTION_SECONDS

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("attempt", range(12))
def test_each_delay_is_between_half_and_all_of_the_capped_step(attempt: int) -> None:
    rng = random.Random(attempt)
    step = min(30.0, 0.5 * 2**attempt)
    for _ in range(200):
        assert step / 2 <= backoff_delay(attempt, 0.5, 30.0, rng) <= step


def test_the_delay_never_exceeds_the_cap_even_after_very_many_attempts() -> None:
    assert backoff_delay(10_000, 0.5, 30.0) <= 30.0


def test_clients_that_failed_together_spread_out() -> None:
    rng = random.Random(1)
    delays = {round(backoff_delay(5, 0.5, 30.0, rng), 3) for _ in range(100)}
    assert len(delays) > 90


def test_the_default_timings_respect_api_gateways_limits() -> None:
    policy = ConnectionPolicy()
    # A quiet connection pings just under the 10-minute idle limit (API Gateway answers
    # the ping itself, so waiting long is what makes it cheap), and even its latest ping,
    # noticed a tick late, is answered inside the limit.
    assert policy.ping_interval == 540
    latest = policy.ping_interval + PING_JITTER_SECONDS + 1.0
    assert latest + PONG_TIMEOUT_SECONDS / 2 < IDLE_TIMEOUT_SECONDS
    # A connection is replaced before API Gateway's 2 hours are up.
    assert policy.max_age < MAX_CONNECTION_SECONDS


def test_a_refusal_with_retry_after_is_resent_no_sooner_than_it_says() -> None:
    # QUEUE_FULL and RATE_LIMITED store nothing: the SDK keeps the message and resends it
    assert {"QUEUE_FULL", "RATE_LIMITED"} <= set(RETRYABLE_CODES)
    assert resend_wait(0.5, None) == 0.5
    assert resend_wait(0.5, 60_000) == 60.0
    assert resend_wait(3.0, 1_000) == 3.0


class Draw(random.Random):
    """A random source that always draws the same fraction of a range."""

    def __init__(self, fraction: float) -> None:
        super().__init__()
        self.fraction = fraction

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.fraction


def test_a_ping_waits_540_seconds_give_or_take_30() -> None:
    # Given the default cadence, drawn at both ends and the middle of its range
    assert ping_delay(rng=Draw(0)) == PING_INTERVAL_SECONDS - PING_JITTER_SECONDS == 510
    assert ping_delay(rng=Draw(0.5)) == 540
    assert ping_delay(rng=Draw(1)) == 570
    # And a test's shortened interval is jittered in proportion
    assert ping_delay(180, Draw(0)) == pytest.approx(170)


def test_clients_that_connected_together_ping_apart() -> None:
    rng = random.Random(7)
    delays = [ping_delay(rng=rng) for _ in range(200)]
    assert all(510 <= delay <= 570 for delay in delays)
    assert len({round(delay, 3) for delay in delays}) > 190
