"""`bench failover`'s modelled RTO of a full cell: the arithmetic, on numbers checked by hand."""

from __future__ import annotations

import math

import pytest

from bench.failover_model import Assumptions, CellAtPeak, last_arrival_served, model_rto
from bench.scale_model import DAY

pytestmark = pytest.mark.unit

ASSUMED = Assumptions(
    probe_seconds=60, failed_probes=3, switch_seconds=30, ping_seconds=240, pong_seconds=30
)


def cell(sockets: float = 100_000, new_connections: float = 100) -> CellAtPeak:
    return CellAtPeak(
        sockets=sockets,
        new_connections=new_connections,
        messages_in=100,
        api_requests=8_000,
        offline=0.5,
        connects_per_device_day=20,
    )


def test_a_slow_quota_drains_the_backlog_after_everyone_arrived() -> None:
    # 1,000 clients over 10 s, served at 10/s from 5 s: the queue never catches up
    assert last_arrival_served(1_000, 10, 5, 10) == pytest.approx(105)


def test_a_fast_quota_serves_the_last_client_as_it_arrives() -> None:
    # 1,000 over 100 s (10/s), served at 20/s from 10 s: caught up at 20 s, last at 100 s
    assert last_arrival_served(1_000, 100, 10, 20) == 100


def test_clients_that_all_learnt_before_the_switch_wait_for_it() -> None:
    assert last_arrival_served(1_000, 10, 50, 100) == pytest.approx(60)


def test_no_spare_quota_never_ends() -> None:
    assert math.isinf(last_arrival_served(1_000, 10, 5, 0))


def test_the_default_quota_makes_the_reconnect_storm_the_rto() -> None:
    # Given 100,000 sockets, 100 new connections/s of the cell's own, 500/s quota
    rto = model_rto(cell(), 500, 10_000, ASSUMED)
    # Then detection is 3 probes + the switch, and 400/s drain 100,000 sockets from then
    assert rto.detection == 210
    assert rto.discovery_worst == 270
    assert rto.reconnect_rate == 400
    assert rto.last_reconnect == pytest.approx(210 + 100_000 / 400)
    # And the resends: 100 messages/s x half offline x a 36-minute mean wait x half online
    assert rto.resends == pytest.approx(100 * 0.5 * (DAY / 20 / 2) * 0.5)
    assert rto.resend_seconds == pytest.approx(rto.resends * 2 / 2_000)
    assert rto.rto == rto.last_reconnect


def test_a_raised_quota_leaves_dead_socket_discovery_as_the_rto() -> None:
    rto = model_rto(cell(), 5_000, 50_000, ASSUMED)
    # 4,900/s outrun the 417/s who learn their socket is dead: the last learns at 270 s
    assert rto.last_reconnect == pytest.approx(270)
    assert rto.rto == pytest.approx(270)
