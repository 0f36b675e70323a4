"""One record per thing the gateway did for a client, and its one-line log form.

12:00:01.234 sendMessage  conn=L0SM9cOFvHcCIhw= user=alice  200 ok  12.3ms

In a stack of cells, each line starts with its cell (its stage):

12:00:01.234 c1 Relay        conn=- user=-  200 ok (storeMessage)  8.1ms
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Invocation:
    """A function invocation (or a handshake refused before one, or a frame the stage
    answered itself), as the gateway saw it."""

    route: str  # a route key, or "authorizer"
    connection_id: str
    user: str | None
    status: int  # the HTTP status of a handshake, the integration's statusCode otherwise
    outcome: str  # "ok", "error UNKNOWN_RECIPIENT", "deny", "raised KeyError", ...
    duration_ms: float
    request_id: str = ""
    at: datetime = field(default_factory=datetime.now)
    cell: str = ""  # the stage whose function ran (its gateway names it)
    # Answered by the stage itself (a gateway route, `messenger.contract.GATEWAY_ROUTES`):
    # no function ran.
    by_gateway: bool = False

    def line(self, *, with_cell: bool = False) -> str:
        """The readable log line; `with_cell` starts it with the cell (a stack of cells)."""
        cell = f"{self.cell} " if with_cell else ""
        return (
            f"{self.at:%H:%M:%S}.{self.at.microsecond // 1000:03d} {cell}{self.route:<12} "
            f"conn={self.connection_id} user={self.user or '-'}  "
            f"{self.status} {self.outcome}{' (gateway)' if self.by_gateway else ''}  "
            f"{self.duration_ms:.1f}ms"
        )


def frame_outcome(body: Any) -> str:
    """'ok', or 'error CODE' when the route response is a docs/protocol.md error frame."""
    if isinstance(body, str):
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            return "ok"
        if isinstance(document, dict) and document.get("type") == "error":
            return f"error {document.get('code', '?')}"
    return "ok"
