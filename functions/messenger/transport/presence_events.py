"""Handing a presence change to the presence function: Lambda's asynchronous invoke.

The caller (a $connect, a $disconnect, a send that found a closed connection) pays one
Invoke, whatever the number of watchers; Lambda queues the event and retries it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

USER_ID = "userId"
ENDPOINT = "endpoint"
# A visibility change: only watchers who may no longer see the user are told (they see
# what they would for an unknown user) and forgotten.
HIDDEN_ONLY = "hiddenOnly"
# What the change made the user (online or not), when (ms: the connect, or the lastSeen
# stamp of the close), and until when it must hold before it is told (0: at once).
ONLINE = "online"
AT = "at"
SETTLE_UNTIL = "settleUntil"


@dataclass(frozen=True)
class PresenceEvent:
    user_id: str
    endpoint: str  # the @connections endpoint of the API stage the watchers are on
    hidden_only: bool = False
    # None: not an online/offline change (a visibility change, an older caller's event).
    online: bool | None = None
    at_ms: int = 0
    settle_until_ms: int = 0

    def to_payload(self) -> bytes:
        return json.dumps(
            {
                USER_ID: self.user_id,
                ENDPOINT: self.endpoint,
                HIDDEN_ONLY: self.hidden_only,
                ONLINE: self.online,
                AT: self.at_ms,
                SETTLE_UNTIL: self.settle_until_ms,
            }
        ).encode()

    @classmethod
    def from_payload(cls, event: dict[str, Any]) -> PresenceEvent:
        return cls(
            user_id=str(event[USER_ID]),
            endpoint=str(event[ENDPOINT]),
            hidden_only=event.get(HIDDEN_ONLY) is True,
            online=event[ONLINE] if isinstance(event.get(ONLINE), bool) else None,
            at_ms=int(event.get(AT) or 0),
            settle_until_ms=int(event.get(SETTLE_UNTIL) or 0),
        )


class PresenceAnnouncer:
    """Invokes the presence function (asynchronously) with one user's change."""

    def __init__(self, client_factory: Callable[[], Any], function_name: str) -> None:
        self._client_factory = client_factory
        self._function_name = function_name
        self._client: Any = None

    def warm(self) -> None:
        """Make the Lambda client now (at cold start) rather than on the first change."""
        if self._client is None:
            self._client = self._client_factory()

    def announce(self, event: PresenceEvent) -> None:
        self.warm()
        self._client.invoke(
            FunctionName=self._function_name,
            InvocationType="Event",
            Payload=event.to_payload(),
        )
