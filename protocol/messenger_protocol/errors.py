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


class RetryLater(ProtocolError):
    """A refusal the client answers by sending the same frame again, no sooner than
    `retry_after` ms (the `retryAfter` of §3): nothing was stored, nothing is lost."""

    # What a refusal that names no wait of its own asks for (one relayed by a peer cell).
    DEFAULT_RETRY_AFTER_MS = 1000

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after or self.DEFAULT_RETRY_AFTER_MS)


class RateLimited(RetryLater):
    """Too fast for a limit, or the server's storage is overloaded (§3)."""

    code = ErrorCode.RATE_LIMITED


class QueueFull(RetryLater):
    """The recipient's queue, or the sender's share of it, is at its cap (§2)."""

    code = ErrorCode.QUEUE_FULL
    # A queue drains as its owner comes online and acknowledges: minutes, not seconds.
    DEFAULT_RETRY_AFTER_MS = 60_000


class StaleDevices(ProtocolError):
    """A sendMessage whose copies do not follow the device lists the server holds (§8):
    the error carries both versions, and the client fetches the lists and resends."""

    code = ErrorCode.STALE_DEVICES

    def __init__(self, message: str, devices: int, self_devices: int) -> None:
        super().__init__(message)
        self.devices = devices
        self.self_devices = self_devices


class InvalidConnect(ValueError):
    """A connect query string that is missing a parameter or has a malformed one."""


class InvalidLinkCode(ValueError):
    """A link code (§8) that is not `ml1:` + base64url of the JSON of a new device."""


class CannotOpen(ValueError):
    """A sealed message key or body that does not open with the keys given: it was not
    sealed for this device, or it was altered (§8)."""
