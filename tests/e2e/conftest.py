"""End-to-end: real WebSocket clients against a LocalStack started in this process."""

from __future__ import annotations

import pytest

from tests.support.identities import TestUser
from tests.support.stack_fixtures import connect, shared_aws, stack

__all__ = ["connect", "shared_aws", "stack"]


@pytest.fixture
def alice() -> TestUser:
    return TestUser("alice")


@pytest.fixture
def bob() -> TestUser:
    return TestUser("bob")


@pytest.fixture
def carol() -> TestUser:
    return TestUser("carol")
