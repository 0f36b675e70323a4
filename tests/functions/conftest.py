from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.harness import Harness, harness


@pytest.fixture
def h() -> Iterator[Harness]:
    with harness() as running:
        yield running
