"""The price of a presence flap (bench/flap_cost.py), held invocation against settle queue."""

from __future__ import annotations

import pytest

from bench.cost import LAMBDA_MEMORY_GB, LAMBDA_PER_GB_SECOND_ARM64
from bench.flap_cost import SEND_MS, STORM_FLAPS_PER_SECOND, held, settle_queue
from messenger.contract import PRESENCE_SETTLE_BATCH_SIZE, PRESENCE_SETTLE_MS

pytestmark = pytest.mark.unit


def test_the_held_invocation_pays_the_settle_time_and_one_environment_per_flap() -> None:
    design = held()
    waited = PRESENCE_SETTLE_MS / 1000 * LAMBDA_MEMORY_GB * LAMBDA_PER_GB_SECOND_ARM64 * 1e6
    assert design.total == pytest.approx(0.20 + waited)
    assert design.environments == STORM_FLAPS_PER_SECOND * PRESENCE_SETTLE_MS / 1000


def test_the_settle_queue_pays_sqs_requests_and_holds_no_environment() -> None:
    full, single = settle_queue(), settle_queue(batch=1)
    # One send a flap, one receive and one delete a batch, $0.40 a million each
    sqs = "SQS requests (send; receive and delete per batch)"
    assert full.lines[sqs] == pytest.approx(0.40 * (1 + 2 / PRESENCE_SETTLE_BATCH_SIZE))
    assert single.lines[sqs] == pytest.approx(1.20)
    # Cheaper than holding, full batches or not, and a small share of the environments
    assert full.total < single.total < held().total / 3
    assert full.environments == pytest.approx(
        STORM_FLAPS_PER_SECOND * SEND_MS / 1000 + STORM_FLAPS_PER_SECOND / 10 * 0.005
    )
    assert full.environments < held().environments / 50
