"""Load, at a size the test suite can afford: the checks of `./dev bench load` (issue 7).

The full size (1,000 connections, 20,000 messages) is `./dev bench load` (and
`./dev bench load --cells 2` across two cells); this runs the same script, the same
clients and the same checks on 100 connections and 200 messages, with a low rate limit
so that the RATE_LIMITED path is taken under load too, and once more on two cells.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from bench.load import LoadConfig, LoadResult, run_local
from bench.load.checks import RECEIPTS_CHECK

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

USERS = 100
MESSAGES = 200
CHURN = 0.2
# 100 users connected at once, a fifth of whom drop and come back mid-run.
SUITE_SIZE = LoadConfig(users=USERS, messages=MESSAGES, churn=CHURN, in_flight=16, timeout=150)


async def test_no_message_lost_duplicated_or_reordered_under_load_with_churn() -> None:
    # Given 100 users connected at once, a fifth of whom drop and come back mid-run, and a
    # rate limit some senders will meet (one message, then one every 2 s: a sender's next message
    # usually comes sooner than that)
    config = replace(SUITE_SIZE, seed=11, rate_per_minute=30, rate_burst=1)

    # When they exchange 200 messages between random pairs as careful clients do
    result = await run_local(config)

    # Then every check of the load script passes
    report = "\n".join(result.lines)
    assert result.passed, report
    assert result.peak_connections == USERS, report
    assert result.counts["disconnects"] == result.counts["reconnects"] == USERS * CHURN, report
    # Whether senders meet RATE_LIMITED depends on how fast this machine is; when they do,
    # their resends are among the messages the checks above found delivered exactly once.


@pytest.fixture(scope="module")
def across_two_cells() -> LoadResult:
    """The run on two cells, once for the tests of this module that look at it: the same
    100 users and churn, each user connected to their home cell, so that about half of
    the random pairs cross cells."""
    return asyncio.run(run_local(replace(SUITE_SIZE, seed=13, cells=2)))


def test_nothing_lost_duplicated_or_reordered_across_two_cells(
    across_two_cells: LoadResult,
) -> None:
    # Given the run on two cells (the fixture), about half of whose messages crossed cells
    result = across_two_cells
    report = "\n".join(result.lines)
    assert 0.4 <= result.cross_cell / MESSAGES <= 0.6, report
    # Then each crossed through exactly one Relay storeMessage (no resends needed here)
    assert result.relays >= result.cross_cell, report
    # And every check passes but the receipts' (see below)
    failed = [c.name for c in result.checks if not c.passed and c.name != RECEIPTS_CHECK]
    assert failed == [], report
    assert result.peak_connections == USERS, report
    assert result.counts["disconnects"] == result.counts["reconnects"] == USERS * CHURN, report


# Cross-cell `delivered` receipts come with the functions' `cells-flows` branch.
@pytest.mark.xfail(strict=True, reason="cells-flows")
def test_one_delivered_receipt_per_message_across_two_cells(across_two_cells: LoadResult) -> None:
    [receipts] = [c for c in across_two_cells.checks if c.name == RECEIPTS_CHECK]
    assert receipts.passed, "\n".join(across_two_cells.lines)
