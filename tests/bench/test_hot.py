"""`bench hot` at a tiny size: the hot spot is really made (the recipient's partition
throttled, the watched user's changes fanned out to every watcher) and measured."""

from __future__ import annotations

import pytest

from bench import hot

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TINY = hot.HotSpot(
    senders=3,
    watchers=7,
    subscribing=3,
    others=1,
    rate=20,
    overload=1000,
    flap_every=0.3,
    seconds=1.5,
)


def test_tiny_hot_spot_is_made_and_measured(capsys: pytest.CaptureFixture[str]) -> None:
    # When the bench runs at a tiny size
    measured = hot.hot_spot(TINY)
    # Then every watching connection is subscribed: 4 recorded, 3 through getPresence
    population = measured.population
    assert population.recorded == 4
    assert population.answers == {"presence": 3}
    assert len(population.watcher_ids) == 7
    # and the watched user's changes that held reached every watcher, once each (flaps
    # 0.3 s apart are coalesced: the first change, after a quiet spell, is told at once)
    assert measured.hot.changes > 0
    assert measured.hot.presence_frames % 7 == 0
    assert 7 <= measured.hot.presence_frames <= 7 * measured.hot.changes
    assert measured.spread.presence_frames == 0
    # and the hot recipient's partition was throttled, never answered INTERNAL
    assert measured.partition.throttled > 0
    assert measured.internal == 0
    assert sum(measured.hot.outcomes.answers.values()) > 0
    # and the other users were measured in every run, and the figures printed
    for run in (measured.quiet, measured.spread, measured.hot):
        assert run.times
    hot.report(TINY, measured)
    printed = capsys.readouterr().out
    assert "hot / spread: p50" in printed
    assert "load average" in printed
