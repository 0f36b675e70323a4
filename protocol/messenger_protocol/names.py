"""The protocol's vocabulary: every name that travels on the wire (docs/protocol.md §1-§3)."""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    """What a client frame asks for: its `action` field (and the API's route key)."""

    SEND_MESSAGE = "sendMessage"
    ACK = "ack"
    MARK_SEEN = "markSeen"
    SYNC = "sync"
    GET_PRESENCE = "getPresence"
    GET_KEYS = "getKeys"
    REGISTER_PUSH = "registerPush"
    PING = "ping"
    SET_PRESENCE_VISIBILITY = "setPresenceVisibility"


class FrameType(StrEnum):
    """What a server frame is: its `type` field."""

    ACK = "ack"
    MESSAGE = "message"
    RECEIPT = "receipt"
    SYNC_DONE = "syncDone"
    ITEMS = "items"
    PRESENCE = "presence"
    KEYS = "keys"
    PUSH_REGISTERED = "pushRegistered"
    PONG = "pong"
    PRESENCE_VISIBILITY = "presenceVisibility"
    ERROR = "error"


class ErrorCode(StrEnum):
    """The `code` of an `error` frame."""

    BAD_REQUEST = "BAD_REQUEST"
    UNKNOWN_ACTION = "UNKNOWN_ACTION"
    UNKNOWN_RECIPIENT = "UNKNOWN_RECIPIENT"
    UNKNOWN_USER = "UNKNOWN_USER"
    TOO_LARGE = "TOO_LARGE"
    RATE_LIMITED = "RATE_LIMITED"
    INTERNAL = "INTERNAL"


class ReceiptStatus(StrEnum):
    DELIVERED = "delivered"
    SEEN = "seen"


class PresenceVisibility(StrEnum):
    """Who may see a user's presence (§2 setPresenceVisibility)."""

    EVERYONE = "everyone"  # the default, for a user who never set it
    CONTACTS = "contacts"
    NOBODY = "nobody"


class PushPlatform(StrEnum):
    APNS = "APNS"
    APNS_SANDBOX = "APNS_SANDBOX"
    GCM = "GCM"  # Firebase Cloud Messaging, by its SNS name


class QueryParam(StrEnum):
    """The parameters of the connect query string (§1)."""

    USER_ID = "userId"
    TS = "ts"
    NONCE = "nonce"
    SIG = "sig"
    SIGN_KEY = "signKey"
    BOX_KEY = "boxKey"


# What the server answers to a message it stored.
SENT_STATUS = "sent"

# What each error code means (the AsyncAPI document and the docs say it from here).
ERROR_MEANINGS = {
    ErrorCode.BAD_REQUEST: "not JSON, or a field is missing or malformed",
    ErrorCode.UNKNOWN_ACTION: "JSON without a known `action`",
    ErrorCode.UNKNOWN_RECIPIENT: "`to` names no registered user",
    ErrorCode.UNKNOWN_USER: "the user asked about is not registered",
    ErrorCode.TOO_LARGE: "`body` is over 24,000 bytes once decoded",
    ErrorCode.RATE_LIMITED: "too many frames of this action; resend later, nothing is lost",
    ErrorCode.INTERNAL: "the server failed; resend later",
}


class RelayOperation(StrEnum):
    """What one cell may ask of a peer cell's Relay: the `op` of a relay request
    (docs/scale.md). Cell to cell only; no client ever sends one."""

    STORE_MESSAGE = "storeMessage"
    STORE_RECEIPT = "storeReceipt"
    PRESENCE = "presence"
    PRESENCE_CHANGED = "presenceChanged"
    KEYS = "keys"
