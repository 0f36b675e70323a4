from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.harness import Harness, harness
from tests.support.identities import TestUser


@pytest.fixture
def h() -> Iterator[Harness]:
    with harness() as running:
        yield running


@pytest.fixture
def alice() -> TestUser:
    return TestUser("alice")


@pytest.fixture
def bob() -> TestUser:
    return TestUser("bob")


@pytest.fixture
def carol() -> TestUser:
    return TestUser("carol")
