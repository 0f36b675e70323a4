"""Refusals, each with its docs/protocol.md error code. A refused frame changes nothing."""

from __future__ import annotations

from messenger_protocol.names import ErrorCode


class ProtocolError(Exception):
    """A frame refused with an `error` frame of `code`."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ProtocolError):
    code = ErrorCode.BAD_REQUEST


class UnknownAction(ProtocolError):
    code = ErrorCode.UNKNOWN_ACTION


class UnknownRecipient(ProtocolError):
    code = ErrorCode.UNKNOWN_RECIPIENT


class UnknownUser(ProtocolError):
    code = ErrorCode.UNKNOWN_USER


class TooLarge(ProtocolError):
    code = ErrorCode.TOO_LARGE


class RateLimited(ProtocolError):
    code = ErrorCode.RATE_LIMITED


class InvalidConnect(ValueError):
    """A connect query string that is missing a parameter or has a malformed one."""


class InvalidLinkCode(ValueError):
    """A link code (§8) that is not `ml1:` + base64url of the JSON of a new device."""


class CannotOpen(ValueError):
    """A sealed message key or body that does not open with the keys given: it was not
    sealed for this device, or it was altered (§8)."""
