"""Domain errors. Each refusal a client can see carries its PROTOCOL.md code."""

from __future__ import annotations


class Refused(Exception):
    """A frame the server refuses. Nothing has been written when this is raised."""

    code = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(Refused):
    code = "BAD_REQUEST"


class UnknownAction(Refused):
    code = "UNKNOWN_ACTION"


class UnknownRecipient(Refused):
    code = "UNKNOWN_RECIPIENT"


class UnknownUser(Refused):
    code = "UNKNOWN_USER"


class TooLarge(Refused):
    code = "TOO_LARGE"


class RateLimited(Refused):
    code = "RATE_LIMITED"


class PushNotConfigured(Refused):
    code = "BAD_REQUEST"


class PushTokenRejected(Refused):
    """The push service refused a device token that looked well formed to us."""

    code = "BAD_REQUEST"


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
