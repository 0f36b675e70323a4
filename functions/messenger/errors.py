"""Domain errors. Refusals a client can see are the protocol's own (each carries its
docs/protocol.md code); the rest are what the logic and the adapters tell each other."""

from __future__ import annotations

from messenger_protocol.errors import (
    BadRequest,
    ProtocolError,
    RateLimited,
    TooLarge,
    UnknownAction,
    UnknownRecipient,
    UnknownUser,
)

# A frame the server refuses. Nothing has been written when this is raised.
Refused = ProtocolError

__all__ = [
    "AccessDenied",
    "BadRequest",
    "ConnectionGone",
    "PushEndpointGone",
    "PushNotConfigured",
    "PushTokenRejected",
    "RateLimited",
    "Refused",
    "SideFenced",
    "SidePromoting",
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
