"""Reconnects and resends back off exponentially, with jitter, within bounds."""

from __future__ import annotations

import random

import pytest

from messenger_client.connection import ConnectionPolicy
from messenger_protocol.client_rules import RETRYABLE_CODES, backoff_delay, resend_wait
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
    # A quiet connection pings well before the 10-minute idle limit, even if the ping
    # is only noticed a tick late and its answer is slow.
    assert policy.ping_interval + 1.0 <= IDLE_TIMEOUT_SECONDS / 2
    # A connection is replaced before API Gateway's 2 hours are up.
    assert policy.max_age < MAX_CONNECTION_SECONDS


def test_a_refusal_with_retry_after_is_resent_no_sooner_than_it_says() -> None:
    # QUEUE_FULL and RATE_LIMITED store nothing: the SDK keeps the message and resends it
    assert {"QUEUE_FULL", "RATE_LIMITED"} <= set(RETRYABLE_CODES)
    assert resend_wait(0.5, None) == 0.5
    assert resend_wait(0.5, 60_000) == 60.0
    assert resend_wait(3.0, 1_000) == 3.0
