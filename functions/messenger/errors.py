"""Domain errors. Refusals a client can see are the protocol's own (each carries its
docs/protocol.md code); the rest are what the logic and the adapters tell each other."""

from __future__ import annotations

import secrets

from messenger.dal.errors import is_throttle
from messenger_protocol.errors import (
    BadRequest,
    ProtocolError,
    QueueFull,
    RateLimited,
    StaleDevices,
    TooLarge,
    UnknownAction,
    UnknownRecipient,
    UnknownUser,
)

# A frame the server refuses. Nothing has been written when this is raised.
Refused = ProtocolError

# How long a client waits before resending a frame that met overloaded storage: about a
# second, spread over half a second either way so that the clients a throttle refused
# together do not all come back at the same moment.
STORAGE_RETRY_AFTER_MS = 1000
STORAGE_RETRY_SPREAD_MS = 500


def as_refusal(error: Exception) -> Refused | None:
    """The refusal a client is answered for `error`, or None if it is a failure (INTERNAL).

    Storage that is overloaded (a throttled table or partition, after botocore's own
    retries) is answered RATE_LIMITED with `retryAfter`, never INTERNAL (docs/protocol.md
    §3): clients back off instead of retrying at once and making the hot spot hotter.
    """
    if isinstance(error, Refused):
        return error
    if is_throttle(error):
        spread = secrets.randbelow(2 * STORAGE_RETRY_SPREAD_MS + 1) - STORAGE_RETRY_SPREAD_MS
        return RateLimited(
            "the server is busy; resend later", retry_after=STORAGE_RETRY_AFTER_MS + spread
        )
    return None


__all__ = [
    "AccessDenied",
    "BadRequest",
    "ConnectionGone",
    "PushEndpointGone",
    "PushNotConfigured",
    "PushTokenRejected",
    "QueueFull",
    "RateLimited",
    "Refused",
    "SideFenced",
    "SidePromoting",
    "StaleDevices",
    "TooLarge",
    "UnknownAction",
    "UnknownRecipient",
    "UnknownUser",
]


class PushNotConfigured(BadRequest):
    """registerPush for a platform this deployment has no SNS application for."""


class PushTokenRejected(BadRequest):
    """The push service refused a device token that looked well formed to us."""


class ConnectionGone(Exception):
    """The @connections API answered 410: the socket is closed."""

    def __init__(self, connection_id: str) -> None:
        super().__init__(connection_id)
        self.connection_id = connection_id


class PushEndpointGone(Exception):
    """SNS will not deliver to this endpoint again: disabled (the platform refused its
    token) or deleted. The device has to register again."""

    def __init__(self, endpoint_arn: str) -> None:
        super().__init__(endpoint_arn)
        self.endpoint_arn = endpoint_arn


class AccessDenied(Exception):
    """The connect handshake is refused (the authorizer answers Deny)."""


class SideFenced(AccessDenied):
    """This side of the cell is not the active one (docs/protocol.md §7 Fencing): a
    handshake is refused 403, a frame answered MOVED and its connection closed, a Relay
    call refused MOVED."""


class SidePromoting(Exception):
    """This side was just made active and takes writes in a few seconds (logic/cell_view):
    try again. Not a refusal of the caller: the authorizer fails (500, retried)."""
