"""`./dev bench move` at a tiny size (issue 23): a load run on three cells during which a
range holding about a quarter of the users moves from c0 to c1. Nothing is lost, doubled
or reordered, every `delivered` and `seen` receipt arrives, the move moved the users
chosen, and the figures it prints are there."""

from __future__ import annotations

import pytest

from bench.load.run import LoadConfig, run_local
from bench.move import CELLS, MoveMidRun, figure_lines

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


async def test_a_quarter_of_the_users_moved_mid_run_loses_nothing() -> None:
    # Given a small load on three cells, every message marked seen
    config = LoadConfig(users=16, messages=160, churn=0.2, timeout=300.0, cells=CELLS, seen=True)
    event = MoveMidRun("c0", "c1", share=0.25, at=0.3)
    # When a quarter of the users move from c0 to c1 once 30% of the messages are acked
    result = await run_local(config, during=event)
    # Then every check holds, the load run's and the move's
    failed = [f"{c.name}: {c.failures} {c.detail}" for c in result.checks if not c.passed]
    assert failed == [], "\n".join(result.lines)
    names = [check.name for check in result.checks]
    assert "a seen receipt for every message" in names
    assert "the move moved the users chosen" in names
    # And the move happened mid-run, moving about a quarter of the users
    outcome = event.outcome
    assert outcome is not None and event.run is not None
    assert 0 < outcome.acked_at_start < config.messages
    assert outcome.answer["users"] == len(outcome.range.users) >= 3
    assert outcome.answer["seconds"] > 0
    lines = "\n".join(figure_lines(event.run.plan, sorted(event.run.clients), outcome))
    assert "(a) sends overlapping the move" in lines and "(b) the move took" in lines
