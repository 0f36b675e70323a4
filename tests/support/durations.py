"""Longest tests first: the suite runs its files in the order of their longest test, as last
recorded in tests/durations.json, so that on a few workers (pytest-xdist hands out one test
at a time, in collection order) no long test starts last while the others sit idle.

Files not recorded keep their place after the recorded ones; tests inside a file keep
theirs (a module-scoped fixture is then set up once per worker). A run with
`--record-durations` writes what it measured back into the file (setup + call + teardown
of each test, the longest per file): commit it after a whole-suite run on the 2-core machine.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

DURATIONS = Path(__file__).resolve().parents[1] / "durations.json"


def recorded() -> dict[str, float]:
    """Seconds of each file's longest test, by path from the repository root."""
    try:
        return {
            str(path): float(seconds) for path, seconds in json.loads(DURATIONS.read_text()).items()
        }
    except FileNotFoundError:
        return {}


def longest_first(items: list[pytest.Item]) -> None:
    """Order `items` by their file's recorded longest test, longest first (stable)."""
    seconds = recorded()
    items.sort(key=lambda item: -seconds.get(item.nodeid.partition("::")[0], 0.0))


class DurationRecorder:
    """Adds up each test's phases as their reports arrive (in the controller under xdist)
    and writes each file's longest test into tests/durations.json at the end."""

    def __init__(self) -> None:
        self.tests: defaultdict[str, float] = defaultdict(float)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.tests[report.nodeid] += report.duration

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if hasattr(session.config, "workerinput"):
            return  # a worker: the controller writes
        files: dict[str, float] = {}
        for nodeid, seconds in self.tests.items():
            path = nodeid.partition("::")[0]
            files[path] = max(files.get(path, 0.0), seconds)
        merged = recorded() | {path: round(seconds, 1) for path, seconds in files.items()}
        ordered = dict(sorted(merged.items(), key=lambda entry: (-entry[1], entry[0])))
        DURATIONS.write_text(json.dumps(ordered, indent=1) + "\n")
