"""What travels between cells: the Relay's requests and answers (docs/scale.md).

A request is a JSON object `{"op": <RelayOperation>, "from": <calling cell>, ...}` whose
other fields are one of the records below, read by the peer with the protocol's own field
rules, like frames. Its answer is `{"ok": <value>}` or `{"error": {"code", "message"}}`.
The caller's side is logic/peers.py over transport/relay.py; the answering side is
logic/relay.py behind handlers/relay.py. Each shape is spelled here only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from messenger_protocol.errors import BadRequest
from messenger_protocol.fields import (
    DEVICE_ID,
    MESSAGE_ID,
    USER_ID,
    Choice,
    Field,
    Flag,
    Integer,
    Listing,
    One,
    Records,
    Schema,
    wire,
)
from messenger_protocol.frames import PresenceEntry, Record, SendMessage
from messenger_protocol.limits import MAX_IDS_PER_FRAME, MAX_SENT_AT, PRIMARY_DEVICE_ID
from messenger_protocol.names import ReceiptStatus, RelayOperation

# Watchers named in one presenceChanged: ~66 KB of ids at most, well inside the 256 KB an
# asynchronous invoke may carry.
MAX_WATCHERS_PER_CHANGE = 1000

OPERATION = "op"
CALLER = "from"
ANSWER = "ok"
REFUSAL = "error"


# --- the envelope ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RelayRequest:
    """A request as the asked cell reads it: which operation, from which cell, and the
    whole object (the operation's record reads its own fields from it)."""

    operation: RelayOperation
    caller: str  # the calling cell
    body: Mapping[str, Any]


def request_payload(
    operation: RelayOperation, caller: str, fields: Mapping[str, Any]
) -> dict[str, Any]:
    """The JSON object a cell sends a peer's Relay."""
    return {OPERATION: operation.value, CALLER: caller, **fields}


def read_request(event: Any) -> RelayRequest:
    """The envelope of a request; BadRequest if it is not one, or names no operation."""
    if not isinstance(event, dict):
        raise BadRequest("a relay request is a JSON object")
    operation, caller = event.get(OPERATION), event.get(CALLER)
    if not isinstance(operation, str) or not isinstance(caller, str):
        raise BadRequest("a relay request names its op and the calling cell")
    try:
        known = RelayOperation(operation)
    except ValueError:
        raise BadRequest(f"no relay operation {operation[:64]!r}") from None
    return RelayRequest(known, caller, event)


def answered(value: Any) -> dict[str, Any]:
    """The answer of an operation done."""
    return {ANSWER: value}


def refused(code: str, message: str, **fields: Any) -> dict[str, Any]:
    """The answer of an operation refused (a docs/protocol.md code) or failed (INTERNAL),
    with the fields its error carries (STALE_DEVICES: `devices`, `selfDevices`)."""
    return {REFUSAL: {"code": code, "message": message, **fields}}


# --- the operations' records ----------------------------------------------------------------


class Nested(Field):
    """One object, read as `record` (a Record subclass)."""

    def __init__(self, name: str, record: type[Record], **options: Any) -> None:
        super().__init__(name, **options)
        self.record = record

    def check(self, value: Any) -> Any:
        return self.record.read(value)

    def dump(self, value: Any) -> Any:
        return value.to_wire()

    def value_schema(self) -> Schema:
        return self.record.schema()


@dataclasses.dataclass(frozen=True)
class StoreMessage(Record):
    """storeMessage: a message from `sender` (a user of the calling cell) to a user of the
    called cell, as its sender's frame had it."""

    sender: str = wire(One("sender", USER_ID))
    frame: SendMessage = wire(Nested("frame", SendMessage))
    # Which of the sender's devices wrote it: `fromDevice` on the copies (§8).
    sender_device: str = wire(One("senderDevice", DEVICE_ID, default=PRIMARY_DEVICE_ID))


@dataclasses.dataclass(frozen=True)
class RelayedReceipt(Record):
    """A receipt for `recipient` (a user of the called cell) about its messages."""

    recipient: str = wire(One("recipient", USER_ID))
    status: ReceiptStatus = wire(Choice("status", ReceiptStatus))
    message_ids: list[str] = wire(Listing("messageIds", MESSAGE_ID))
    by: str = wire(One("by", USER_ID))
    at: int = wire(Integer("at", low=0, high=MAX_SENT_AT))


@dataclasses.dataclass(frozen=True)
class StoreReceipts(Record):
    """storeReceipt: the receipts of one ack (or one markSeen) for users of one cell."""

    receipts: list[RelayedReceipt] = wire(Records("receipts", RelayedReceipt, min_items=1))

    def check(self) -> None:
        # One ack names at most 100 messages, so at most 100 senders.
        if len(self.receipts) > MAX_IDS_PER_FRAME:
            raise BadRequest(f"receipts: at most {MAX_IDS_PER_FRAME}")


@dataclasses.dataclass(frozen=True)
class PresenceQuery(Record):
    """presence: what `watcher` (a user of the calling cell) may see of these users."""

    watcher: str = wire(One("watcher", USER_ID))
    user_ids: list[str] = wire(Listing("userIds", USER_ID))
    subscribe: bool = wire(Flag("subscribe", default=False))


@dataclasses.dataclass(frozen=True)
class PresenceAnswer(Record):
    """The entries, in the order asked, and those among them the watcher may see (whose
    changes it will hear of: its cell keeps its subscriptions to these only)."""

    users: list[PresenceEntry] = wire(Records("users", PresenceEntry, min_items=1))
    allowed: list[str] = wire(Listing("allowed", USER_ID, min_items=0))


@dataclasses.dataclass(frozen=True)
class PresenceChanged(Record):
    """presenceChanged: `entry` is what `watchers` see of `user` now; `hiddenFrom` may no
    longer see the user (they are shown an unknown user, and their subscriptions end)."""

    user: str = wire(One("user", USER_ID))
    entry: PresenceEntry = wire(Nested("entry", PresenceEntry))
    watchers: list[str] = wire(
        Listing("watchers", USER_ID, min_items=0, max_items=MAX_WATCHERS_PER_CHANGE)
    )
    hidden_from: Sequence[str] = wire(
        Listing("hiddenFrom", USER_ID, min_items=0, max_items=MAX_WATCHERS_PER_CHANGE, default=())
    )

    def check(self) -> None:
        if self.entry.user_id != self.user:
            raise BadRequest("entry: must be the user's")
        if not self.watchers and not self.hidden_from:
            raise BadRequest("watchers: nobody to tell")


@dataclasses.dataclass(frozen=True)
class KeysQuery(Record):
    """keys: the public keys of a user of the called cell (answered with a keys frame)."""

    user_id: str = wire(One("userId", USER_ID))
