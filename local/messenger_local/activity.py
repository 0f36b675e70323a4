"""What happened in a stack, as tests and the console ask it: every invocation, the open
connections, whether anything still runs, what the tables hold.

    stack.invocations_of("sendMessage", user="alice")   # her sends, in the order they ended
    stack.invocations_of("Relay", cell="c1")             # what c1's Relay was asked
    stack.connection_ids(cell="c0")
    await stack.settled()                                # nothing in flight, in any cell
    stack.dump(cell="c1")                                # every item of c1's tables
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from typing import Any

from messenger.contract import TABLES
from messenger_local.aws import EmbeddedAws
from messenger_local.cells import LocalCell
from messenger_local.invocations import Invocation

# A table's name -> its items, each list sorted (compare a dump before and after).
TableDump = dict[str, list[dict[str, Any]]]


class Activity:
    """The invocations of a stack's cells, and the questions asked of its running cells."""

    def __init__(self, on_invocation: Callable[[Invocation], None] | None = None) -> None:
        self.invocations: list[Invocation] = []  # in the order they ended
        self._on_invocation = on_invocation

    def record(self, invocation: Invocation) -> None:
        self.invocations.append(invocation)
        if self._on_invocation is not None:
            self._on_invocation(invocation)

    def invocations_of(
        self, route: str, cell: str | None = None, *, user: str | None = None
    ) -> list[Invocation]:
        """The invocations of one route (or "authorizer", or a function Invoke ran:
        "Relay", "PresenceChanged") so far, in the order they ended; of one cell's stage,
        or of every cell; of one user's connections, or of everyone's."""
        return [
            invocation
            for invocation in self.invocations
            if invocation.route == route
            and (cell is None or invocation.cell == cell)
            and (user is None or invocation.user == user)
        ]


def connection_ids(cells: Sequence[LocalCell], stage: str | None = None) -> list[str]:
    """The connections open right now, of one stage or of every one."""
    return [
        connection_id
        for cell in cells
        if stage is None or cell.stage == stage
        for connection_id in cell.gateway.connections.ids()
    ]


async def settled(cells: Sequence[LocalCell], timeout: float) -> None:
    """Until every invocation started so far, and those it caused in any cell, has ended."""
    async with asyncio.timeout(timeout):
        while any(cell.gateway.busy for cell in cells):
            for cell in cells:
                await cell.gateway.settle(timeout)


def dump_tables(aws: EmbeddedAws, cell: LocalCell) -> TableDump:
    """Every item of a cell's tables, by table name (verification only: a Scan in a test
    is fine). Blocking: call it with asyncio.to_thread."""
    dynamodb = aws.client("dynamodb")
    state = {}
    for spec in TABLES:
        name = cell.table_names[spec.env.value]
        pages = dynamodb.get_paginator("scan").paginate(TableName=name, ConsistentRead=True)
        items = [item for page in pages for item in page["Items"]]
        state[name] = sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
    return state
