"""Suite-wide: fake AWS credentials so nothing can ever reach a real account, and every
test in a tier (`./dev test fast` and the other tiers select by marker: a test without
one would silently run in none of them)."""

from __future__ import annotations

import functools
import os

import botocore.loaders
import botocore.session
import pytest

from tests.support.durations import DurationRecorder, longest_first
from tests.support.identities import TestUser

for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
    os.environ.pop(name, None)
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": os.environ.get("POWERTOOLS_LOG_LEVEL", "WARNING"),
    }
)


# moto's mock_aws gives every block a new default boto3 session, and each new botocore
# session starts with a loader of its own that parses the service models and endpoints
# from disk again (about 0.1 s of CPU per test that starts moto). The models are the same
# files for the whole run: every session shares one loader (its cache) instead.
botocore.session.create_loader = functools.cache(botocore.loaders.create_loader)  # type: ignore[attr-defined,unused-ignore]


# The tiers (pyproject.toml's markers); `slow` is not one, it narrows a tier.
TIERS = ("unit", "integration", "e2e", "infra")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--record-durations",
        action="store_true",
        help="write each file's longest test into tests/durations.json (the run order)",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("record_durations"):
        config.pluginmanager.register(DurationRecorder(), "record-durations")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse to run a suite in which a test has no tier marker (before -m deselects any);
    then order it longest first (tests/support/durations.py)."""
    untiered = [item.nodeid for item in items if not any(item.get_closest_marker(t) for t in TIERS)]
    if untiered:
        raise pytest.UsageError(
            f"{len(untiered)} test(s) have no tier marker (one of {', '.join(TIERS)}: "
            "pytestmark = pytest.mark.unit, say):\n  " + "\n  ".join(untiered)
        )
    longest_first(items)


@pytest.fixture
def alice() -> TestUser:
    return TestUser("alice")


@pytest.fixture
def bob() -> TestUser:
    return TestUser("bob")


@pytest.fixture
def carol() -> TestUser:
    return TestUser("carol")


@pytest.fixture
def mallory() -> TestUser:
    """A stranger to everyone, up to no good."""
    return TestUser("mallory")
