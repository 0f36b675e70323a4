"""Longest tests first: the suite runs its files in the order of their longest test, as last
recorded in tests/durations.json, so that on a few workers (pytest-xdist hands out one test
at a time, in collection order) no long test starts last while the others sit idle.

Files with no test recorded keep their place after the others; tests inside a file keep
theirs (a module-scoped fixture is then set up once per worker). A run with
`--record-durations` writes what it measured back into the file (setup + call + teardown
of each test that ran, those of a second or more): commit it after a whole-suite run.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

DURATIONS = Path(__file__).resolve().parents[1] / "durations.json"

# Shorter tests are not recorded: their order among themselves hardly matters.
RECORDED_FROM_SECONDS = 1.0


def recorded() -> dict[str, float]:
    """Seconds of each recorded test, by node id."""
    try:
        return {
            nodeid: float(seconds) for nodeid, seconds in json.loads(DURATIONS.read_text()).items()
        }
    except FileNotFoundError:
        return {}


def _file_of(nodeid: str) -> str:
    return nodeid.partition("::")[0]


def longest_first(items: list[pytest.Item]) -> None:
    """Order `items` by their file's longest recorded test, longest first (stable)."""
    longest: defaultdict[str, float] = defaultdict(float)
    for nodeid, seconds in recorded().items():
        path = _file_of(nodeid)
        longest[path] = max(longest[path], seconds)
    items.sort(key=lambda item: -longest.get(_file_of(item.nodeid), 0.0))


class DurationRecorder:
    """Adds up each test's phases as their reports arrive (in the controller under xdist)
    and writes them into tests/durations.json at the end, over what was recorded of the
    same tests before."""

    def __init__(self) -> None:
        self.tests: defaultdict[str, float] = defaultdict(float)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.tests[report.nodeid] += report.duration

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if hasattr(session.config, "workerinput"):
            return  # a worker: the controller writes
        kept = {
            nodeid: seconds for nodeid, seconds in recorded().items() if nodeid not in self.tests
        }
        measured = {
            nodeid: round(seconds, 1)
            for nodeid, seconds in self.tests.items()
            if seconds >= RECORDED_FROM_SECONDS
        }
        ordered = sorted((kept | measured).items(), key=lambda entry: (-entry[1], entry[0]))
        DURATIONS.write_text(json.dumps(dict(ordered), indent=1) + "\n")
