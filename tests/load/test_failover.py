"""The fault test (issue 14): a load run across two cells with standbys, cell c0 failed
over mid-run with its unreplicated writes dropped. Every message reaches its recipient
once as the user sees it, each sender's order holds, every message gets a `delivered`
receipt, and the clients did resend (docs/protocol.md §7). `./dev bench failover` is the same
at full size, against a baseline."""

from __future__ import annotations

import pytest

from bench.failover import run_once
from bench.load.run import LoadConfig
from messenger_local import EmbeddedAws

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


async def test_a_cell_failed_over_mid_run_loses_nothing() -> None:
    # Given a modest load across two cells, replication a little behind
    config = LoadConfig(users=16, messages=240, churn=0.2, timeout=300.0)
    aws = EmbeddedAws(port=0)
    aws.start()
    try:
        # When c0 fails over halfway
        result, figures = await run_once(config, aws, lag=0.5, fail_over=True)
    finally:
        aws.stop()
    # Then every check holds
    failed = [
        f"{check.name}: {check.failures} {check.detail}"
        for check in result.checks
        if not check.passed
    ]
    assert failed == [], "\n".join(result.lines)
    # And the failover did cost writes, which the clients' resends made good
    assert figures is not None
    assert figures.failover.dropped_writes > 0
    assert figures.messages_resent > 0
    assert figures.first_delivery is not None
