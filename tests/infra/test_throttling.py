"""Stage throttles derived from API Gateway's account quota and the posts a message needs."""

from __future__ import annotations

import pytest

from infra.config import DEFAULTS
from infra.regions import DEFAULT_QUOTA, SMALL_QUOTA, AccountQuota
from infra.throttling import MESSAGE_LIFE, Throttle, account_requests, stage_throttle
from tests.support.harness import harness

pytestmark = pytest.mark.infra


def test_given_the_quota_and_a_share_then_frames_and_their_posts_fit_in_that_share():
    # 10,000 requests/s, all of it: 3 frames for every 2 posts leave 6,000 frames/s
    assert stage_throttle(DEFAULT_QUOTA, 1.0) == Throttle(rate=6_000, burst=3_000)
    assert stage_throttle(SMALL_QUOTA, 1.0) == Throttle(rate=1_500, burst=750)
    assert stage_throttle(DEFAULT_QUOTA, 0.5) == Throttle(rate=3_000, burst=1_500)
    # A raised quota (Service Quotas) raises the stage with it
    assert stage_throttle(AccountQuota(rate=50_000, burst=25_000), 0.9) == Throttle(
        rate=27_000, burst=13_500
    )


@pytest.mark.parametrize("share", [0.01, 0.05, 0.33, 0.9, 1.0])
@pytest.mark.parametrize("quota", [DEFAULT_QUOTA, SMALL_QUOTA])
def test_given_any_share_then_the_stage_and_its_posts_never_exceed_it(quota, share):
    rate, burst = account_requests(stage_throttle(quota, share))
    assert rate <= quota.rate * share
    assert burst <= max(quota.burst * share, 2)


def test_given_a_share_outside_zero_to_one_then_it_is_refused():
    for share in (0, -0.1, 1.5):
        with pytest.raises(ValueError):
            stage_throttle(DEFAULT_QUOTA, share)


def test_given_dev_and_prod_in_one_account_then_their_shares_fit_in_it():
    assert sum(config.account_share for config in DEFAULTS.values()) <= 1


@pytest.mark.integration
def test_given_bench_calls_then_a_message_costs_what_the_throttle_assumes(monkeypatch):
    # bench.calls turns powertools' metrics off for its process when imported (setdefault):
    # set it here first, so that it stays off for this test only
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    from bench.calls import MESSAGE_LIFE_FRAMES, CallCounter, instrument, message_life, posts_of

    # When: one message's life runs on the real handlers (moto), counted as `bench calls`
    with harness() as h:
        counter = CallCounter()
        instrument(h, counter)
        calls = message_life(h, counter)

    # Then: its frames and @connections posts are the ones the derivation uses
    assert (MESSAGE_LIFE.frames, MESSAGE_LIFE.posts) == (MESSAGE_LIFE_FRAMES, posts_of(calls))
