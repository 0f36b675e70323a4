"""Suite-wide: fake AWS credentials so nothing can ever reach a real account."""

from __future__ import annotations

import os

import pytest

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
