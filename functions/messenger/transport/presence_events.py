"""Handing a presence change to the presence function: Lambda's asynchronous invoke; and
holding a flap back on the settle queue until it has settled.

The caller (a $connect, a $disconnect, a send that found a closed connection) pays one
Invoke, whatever the number of watchers; Lambda queues the event and retries it. A flap
(docs/protocol.md §2) the presence function puts on its settle queue with SQS's
DelaySeconds; the queue hands it back to the presence function (its second event
source) once the delay is over. The message is the change as the invoke carried it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from messenger_protocol.encoding import is_user_id

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

    @classmethod
    def from_settled(cls, body: str) -> PresenceEvent:
        """A change read back from the settle queue: exactly what `to_payload` wrote for
        an online/offline change, or ValueError saying what is wrong with it."""
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            raise ValueError("not JSON") from None
        if not isinstance(document, dict) or set(document) != SETTLED_FIELDS:
            raise ValueError(f"not an object of exactly {sorted(SETTLED_FIELDS)}")
        user_id, endpoint = document[USER_ID], document[ENDPOINT]
        online, at_ms, until = document[ONLINE], document[AT], document[SETTLE_UNTIL]
        if not is_user_id(user_id):
            raise ValueError("userId is not a user id")
        if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
            raise ValueError("endpoint is not an http(s) URL")
        if document[HIDDEN_ONLY] is not False or not isinstance(online, bool):
            raise ValueError("not an online/offline change")
        if not all(type(value) is int and value > 0 for value in (at_ms, until)):
            raise ValueError("at and settleUntil must be positive integers (ms)")
        return cls(user_id, endpoint, False, online, at_ms, until)


# What a held flap's message carries: the event's own fields, nothing more.
SETTLED_FIELDS = frozenset({USER_ID, ENDPOINT, HIDDEN_ONLY, ONLINE, AT, SETTLE_UNTIL})


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


class SettleQueue:
    """The presence function's settle queue (SQS): a flap is sent with DelaySeconds, and
    the queue hands it back to the presence function once that is over."""

    def __init__(self, client_factory: Callable[[], Any], queue_url: str) -> None:
        self._client_factory = client_factory
        self._queue_url = queue_url
        self._client: Any = None

    def hold(self, event: PresenceEvent, delay_seconds: int) -> None:
        """Send the change, to come back in `delay_seconds` (SQS's unit: whole seconds)."""
        if not self._queue_url:
            raise RuntimeError("PRESENCE_SETTLE_QUEUE is not set: a flap cannot be held")
        if self._client is None:
            self._client = self._client_factory()
        self._client.send_message(
            QueueUrl=self._queue_url,
            MessageBody=event.to_payload().decode(),
            DelaySeconds=delay_seconds,
        )
