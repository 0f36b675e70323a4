"""Several cells on moto in one test (messenger_local.cells_harness), every frame the
functions post or answer with checked against docs/asyncapi.yaml.

    with cells_harness() as cells:
        a = cells["c0"].connect(user_homed_in("c0", "alice"))
        ...
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from messenger_local import cells_harness as on_moto
from messenger_local.cells_harness import (
    CELLS,
    CellsUnderTest,
    LambdaInvokes,
    id_homed_in,
    presence_function,
    relay_arn,
)
from tests.support.identities import TestUser
from tests.support.schemas import check_server_frame

__all__ = [
    "CELLS",
    "CellsUnderTest",
    "LambdaInvokes",
    "cells_harness",
    "presence_function",
    "relay_arn",
    "user_homed_in",
]


def user_homed_in(cell: str, name: str, cells: tuple[str, ...] = CELLS) -> TestUser:
    """A test user whose id (name, or name-N) has its home in `cell`."""
    return TestUser(id_homed_in(cell, name, cells))


@contextmanager
def cells_harness(cells: tuple[str, ...] = CELLS, **overrides: Any) -> Iterator[CellsUnderTest]:
    """One Harness per cell, on one moto, checking every frame; cross-cell calls go
    through `LambdaInvokes`."""
    with on_moto.cells_harness(cells, check_frame=check_server_frame, **overrides) as running:
        yield running
