"""The protocol's vocabulary: every name that travels on the wire (docs/protocol.md §1-§3, §8)."""

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
    SET_BLOCKED = "setBlocked"
    GET_SETTINGS = "getSettings"
    SET_DEVICES = "setDevices"


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
    SEEN_STORED = "seenStored"
    BLOCKED = "blocked"
    SETTINGS = "settings"
    DEVICES = "devices"
    ERROR = "error"


class ErrorCode(StrEnum):
    """The `code` of an `error` frame."""

    BAD_REQUEST = "BAD_REQUEST"
    UNKNOWN_ACTION = "UNKNOWN_ACTION"
    UNKNOWN_RECIPIENT = "UNKNOWN_RECIPIENT"
    UNKNOWN_USER = "UNKNOWN_USER"
    TOO_LARGE = "TOO_LARGE"
    RATE_LIMITED = "RATE_LIMITED"
    QUEUE_FULL = "QUEUE_FULL"
    STALE_DEVICES = "STALE_DEVICES"
    MOVED = "MOVED"
    INTERNAL = "INTERNAL"
    # Why the server closes a connection on its own (MOVED too): sent just before it does.
    REPLACED = "REPLACED"
    DEVICE_REMOVED = "DEVICE_REMOVED"
    TOO_MANY_REFUSED = "TOO_MANY_REFUSED"


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
    DEVICE_ID = "deviceId"  # a linked device (§8); absent: device 1
    AUD = "aud"  # the endpoint the signature is bound to; selects the v1.2 form


# What the server answers to a message it stored.
SENT_STATUS = "sent"

# What each error code means (the AsyncAPI document and the docs say it from here).
ERROR_MEANINGS = {
    ErrorCode.BAD_REQUEST: "not JSON, or a field is missing or malformed",
    ErrorCode.UNKNOWN_ACTION: "JSON without a known `action`",
    ErrorCode.UNKNOWN_RECIPIENT: "`to` names no registered user",
    ErrorCode.UNKNOWN_USER: "the user asked about is not registered",
    ErrorCode.TOO_LARGE: "the frame is over 32,768 bytes, or `body` over 24,000 bytes once decoded",
    ErrorCode.RATE_LIMITED: (
        "too many frames (of this action, or on this connection), or the server is busy; "
        "resend no sooner than `retryAfter` ms, nothing is lost"
    ),
    ErrorCode.QUEUE_FULL: (
        "a queue of the recipient holds as many messages as it may (from this sender, or in "
        "all); nothing was stored: keep the message and resend no sooner than `retryAfter` ms"
    ),
    ErrorCode.STALE_DEVICES: (
        "`copies`/`selfCopies` do not name exactly the devices of the lists the server holds, "
        "whose versions `devices` and `selfDevices` give: fetch the lists again and resend"
    ),
    ErrorCode.MOVED: (
        "this side of the cell is not (or no longer) the user's home: fetch the directory "
        "and connect where it says; the connection closes (1012)"
    ),
    ErrorCode.INTERNAL: "the server failed; resend later",
    ErrorCode.REPLACED: (
        "the device opened a fifth connection: this one, its oldest, closes (1008)"
    ),
    ErrorCode.DEVICE_REMOVED: (
        "the device is no longer in its user's device list: the connection closes (1008)"
    ),
    ErrorCode.TOO_MANY_REFUSED: (
        "this connection sent more than 100 refused frames within a minute: it closes (1008)"
    ),
}

# The errors the server sends just before it closes a connection on its own, and the
# WebSocket close code each implies (§3 Closing). API Gateway cannot choose a close code,
# so clients act on the error frame; `messenger local` closes with these codes.
CLOSE_CODES = {
    ErrorCode.MOVED: 1012,  # service restart: connect again, elsewhere
    ErrorCode.REPLACED: 1008,  # policy violation
    ErrorCode.DEVICE_REMOVED: 1008,
    ErrorCode.TOO_MANY_REFUSED: 1008,
}


class RelayOperation(StrEnum):
    """What one cell may ask of a peer cell's Relay: the `op` of a relay request
    (docs/scale.md). Cell to cell only; no client ever sends one."""

    STORE_MESSAGE = "storeMessage"
    STORE_RECEIPT = "storeReceipt"
    PRESENCE = "presence"
    PRESENCE_CHANGED = "presenceChanged"
    KEYS = "keys"
    # One registration from an address, counted in the cell the shard rule gives the
    # address: one budget per address in the whole deployment (docs/limits.md).
    COUNT_REGISTRATION = "countRegistration"
