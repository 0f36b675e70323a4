"""Client SDK and the `messenger` command line.

from messenger_client import MessengerClient, Profile

profile = Profile.create("alice")            # once: new keys, in the keystore
profile = Profile.load("alice")              # afterwards
async with MessengerClient(url, profile) as client:
    await client.send_and_wait("bob", "hi")  # encrypted, stored by the server
    async with client.events() as events:    # messages, receipts, presence, connection
        async for event in events: ...
"""

from messenger_client.client import ClientSettings, MessengerClient
from messenger_client.connection import ConnectionPolicy, ConnectionState, ConnectionStatus
from messenger_client.errors import (
    FingerprintMismatch,
    HandshakeRefused,
    KeyChanged,
    MessageTooLong,
    MessengerError,
    NotConnected,
    RequestFailed,
    SendRefused,
    UnknownUser,
)
from messenger_client.events import (
    ConnectionChanged,
    EpochChanged,
    Event,
    EventStream,
    MessageAdded,
    MessageRejected,
    Presence,
    PresenceChanged,
    SendFailed,
    ServerError,
    StatusChanged,
    Synced,
)
from messenger_client.keystore import PeerKeys, Profile
from messenger_client.server_settings import Settings
from messenger_client.store import (
    Conversation,
    HeldMessage,
    HoldReason,
    MessageStatus,
    Rejection,
    StoredMessage,
)

__all__ = [
    "ClientSettings",
    "ConnectionChanged",
    "ConnectionPolicy",
    "ConnectionState",
    "ConnectionStatus",
    "Conversation",
    "EpochChanged",
    "Event",
    "EventStream",
    "FingerprintMismatch",
    "HandshakeRefused",
    "HeldMessage",
    "HoldReason",
    "KeyChanged",
    "MessageAdded",
    "MessageRejected",
    "MessageStatus",
    "MessageTooLong",
    "MessengerClient",
    "MessengerError",
    "NotConnected",
    "PeerKeys",
    "Presence",
    "PresenceChanged",
    "Profile",
    "Rejection",
    "RequestFailed",
    "SendFailed",
    "SendRefused",
    "ServerError",
    "Settings",
    "StatusChanged",
    "StoredMessage",
    "Synced",
    "UnknownUser",
]
