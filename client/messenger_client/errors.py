"""Everything the SDK raises, in one place: callers catch `MessengerError` or a precise one.

No message here ever contains a key, a signature or a plaintext.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from messenger_protocol.limits import MAX_BODY_BYTES
from messenger_protocol.names import ErrorCode

if TYPE_CHECKING:
    from messenger_client.keystore import PeerKeys


class MessengerError(Exception):
    """Base of the SDK's errors."""


# --- the keystore ---------------------------------------------------------------------


class KeystoreError(MessengerError):
    """The keystore is missing, unreadable, malformed or unsafe."""


class ProfileNotFound(KeystoreError):
    """No identity in this profile yet: `messenger init` creates one."""


class ProfileExists(KeystoreError):
    """`init` on a profile that already holds an identity: keys are never overwritten."""


class UnsafePermissions(KeystoreError):
    """A keystore file or directory that other users could read: refused."""


class KeyChanged(MessengerError):
    """A peer's public keys are not the ones we pinned: refused until re-verified.

    It carries what the JavaScript SDK's KeyChanged carries: the keys (`pinned`,
    `offered`) and their safety numbers (`pinned_fingerprint`, `offered_fingerprint`),
    the numbers both clients show.
    """

    def __init__(self, user_id: str, pinned: PeerKeys, offered: PeerKeys) -> None:
        super().__init__(
            f"the keys of {user_id!r} CHANGED: pinned safety number {pinned.fingerprint()}, "
            f"the server now gives {offered.fingerprint()}. Nothing is sent to {user_id} and "
            f"nothing from them is accepted until you compare the new number with them in "
            f"person or by another channel and, if it matches, trust it "
            f"(`messenger trust {user_id} --fingerprint '<the number>'`)"
        )
        self.user_id = user_id
        self.pinned = pinned
        self.offered = offered
        self.pinned_fingerprint = pinned.fingerprint()
        self.offered_fingerprint = offered.fingerprint()


class DeviceListRefused(KeyChanged):
    """A user's device list that does not verify under their pinned account key
    (docs/protocol.md §8): a key change, refused the same way until re-verified."""

    def __init__(self, user_id: str, pinned: PeerKeys, why: str) -> None:
        super().__init__(user_id, pinned, pinned)
        self.args = (
            f"the device list of {user_id!r} does not verify with their pinned account key "
            f"({why}): treated as a key change. Nothing is sent to {user_id} and nothing "
            f"from them is accepted until you compare safety numbers with them and trust "
            f"(`messenger trust {user_id} --fingerprint '<the number>'`)",
        )


class NotDeviceOne(MessengerError):
    """Only device 1 (the account key's holder) may change the device list (§8)."""


class FingerprintMismatch(MessengerError, ValueError):
    """`trust` with a safety number that is not the one of the keys the server holds now."""

    def __init__(self, user_id: str, actual: str) -> None:
        super().__init__(
            f"that safety number does not match the keys the server has for {user_id!r} "
            f"({actual}): nothing was trusted"
        )
        self.user_id = user_id


# --- messages -------------------------------------------------------------------------


class MessageTooLong(MessengerError, ValueError):
    """A text whose ciphertext would not fit in one frame: refused before sending."""

    def __init__(self, body_bytes: int) -> None:
        over = body_bytes - MAX_BODY_BYTES
        super().__init__(
            f"message too long: {body_bytes:,} bytes once encrypted, the limit is "
            f"{MAX_BODY_BYTES:,} bytes per message ({over:,} too many); "
            "split it into several messages"
        )
        self.body_bytes = body_bytes


class UnreadableMessage(MessengerError, ValueError):
    """A body that does not open with the sender's pinned key, or is not our plaintext."""


# --- the connection and the server -----------------------------------------------------


class NotConnected(MessengerError):
    """No open connection right now (the SDK keeps reconnecting in the background)."""


class HandshakeRefused(NotConnected):
    """The server refused the connect handshake (HTTP 401 or 403)."""

    def __init__(self, status_code: int, reason: str | None = None) -> None:
        # AWS says no more than the status; `messenger local` says why (`reason`).
        why = reason or (
            "the user id may be taken by other keys, or this machine's clock is off by "
            "more than 5 minutes"
        )
        super().__init__(f"the server refused the connection (HTTP {status_code}): {why}")
        self.status_code = status_code
        self.reason = reason


class RequestFailed(MessengerError):
    """The server answered a frame with an `error` frame."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.server_message = message


class UnknownUser(RequestFailed):
    """No such user on this server (`UNKNOWN_USER` / `UNKNOWN_RECIPIENT`)."""

    def __init__(self, user_id: str, code: str = ErrorCode.UNKNOWN_USER) -> None:
        super().__init__(code, f"no user {user_id!r} on this server")
        self.user_id = user_id


class SendRefused(RequestFailed):
    """The server refused a message for good; it left the outbox as `failed`."""
