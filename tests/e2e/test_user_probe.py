"""The failover probe against the real local stack (issue 21, docs/availability.md "The
probe"): a signed handshake as the cell's probe user, a `ping`, its `pong`; and what a
dead endpoint, or a refused handshake, looks like to it."""

from __future__ import annotations

import asyncio
import socket

import pytest

from messenger_directory.user_probe import (
    PROBE_NAMESPACE,
    ROUND_TRIP_METRIC,
    SUCCESS_METRIC,
    ProbeUser,
    probe_cell,
    probe_metric_data,
)
from messenger_local import LocalStack

pytestmark = pytest.mark.e2e

PROBE = ProbeUser.from_secret("a secret of the test", "probe-c0-test")


def dead_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_given_a_live_cell_then_the_probe_gets_its_pong_again_and_again(
    stack: LocalStack,
) -> None:
    # When the probe runs twice (the first handshake registers the probe user, the
    # second finds the same keys)
    first = await asyncio.to_thread(probe_cell, stack.ws_url, PROBE)
    second = await asyncio.to_thread(probe_cell, stack.ws_url, PROBE)
    # Then both saw their pong, with a measured round trip
    for outcome in (first, second):
        assert outcome.ok, outcome.reason
        assert outcome.reason == "pong"
        assert outcome.round_trip_ms is not None and 0 < outcome.round_trip_ms < 10_000


async def test_given_a_dead_port_then_the_probe_fails_and_says_so() -> None:
    # When the probe connects to a port nobody listens on
    outcome = await asyncio.to_thread(
        probe_cell, f"ws://127.0.0.1:{dead_port()}/local", PROBE, timeout_s=2.0
    )
    # Then it failed without raising, and has no round trip
    assert not outcome.ok
    assert outcome.round_trip_ms is None
    assert "ConnectionRefused" in outcome.reason


async def test_given_a_refused_handshake_then_the_probe_fails_with_its_status(
    stack: LocalStack,
) -> None:
    # Given the probe user registered with its keys
    assert (await asyncio.to_thread(probe_cell, stack.ws_url, PROBE)).ok
    # When someone else's keys claim the same id
    impostor = ProbeUser.from_secret("another secret", PROBE.user_id)
    outcome = await asyncio.to_thread(probe_cell, stack.ws_url, impostor)
    # Then the authorizer's refusal is a failed probe, naming the status
    assert not outcome.ok
    assert "handshake refused" in outcome.reason
    assert " 40" in outcome.reason  # 401 or 403


@pytest.mark.unit
def test_given_outcomes_then_the_metric_is_success_and_round_trip_by_cell_and_vantage() -> None:
    from messenger_directory.user_probe import ProbeOutcome

    dimensions = [{"Name": "Cell", "Value": "c1"}, {"Name": "Vantage", "Value": "eu-west-1"}]
    # A success: 1, and its round trip
    data = probe_metric_data(ProbeOutcome(True, 42.5, "pong"), cell="c1", vantage="eu-west-1")
    assert data == {
        "Namespace": PROBE_NAMESPACE,
        "MetricData": [
            {"MetricName": SUCCESS_METRIC, "Dimensions": dimensions, "Value": 1},
            {
                "MetricName": ROUND_TRIP_METRIC,
                "Dimensions": dimensions,
                "Value": 42.5,
                "Unit": "Milliseconds",
            },
        ],
    }
    # A failure: 0, and no round trip
    failed = probe_metric_data(ProbeOutcome(False, None, "x"), cell="c1", vantage="eu-west-1")
    assert failed["MetricData"] == [
        {"MetricName": SUCCESS_METRIC, "Dimensions": dimensions, "Value": 0}
    ]
