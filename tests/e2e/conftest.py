"""End-to-end: real WebSocket clients against a LocalStack started in this process."""

from __future__ import annotations

from tests.support.stack_fixtures import (
    cells_stack,
    connect,
    connect_home,
    shared_aws,
    site,
    stack,
    standby_stack,
)

__all__ = ["cells_stack", "connect", "connect_home", "shared_aws", "site", "stack", "standby_stack"]
