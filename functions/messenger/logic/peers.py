"""Asking another cell to act for one of its users: the typed side of the Relay call.

Every operation names users of the peer only (the peer refuses anything else) and is
idempotent, so a retry after a lost answer changes nothing (docs/scale.md). The request
shapes below are read by the peer with the protocol's own field rules, like frames.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from messenger.logic.cells import Cells
from messenger.transport.relay import RelayClient
from messenger_protocol.errors import BadRequest
from messenger_protocol.fields import (
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
from messenger_protocol.frames import AckFrame, KeysFrame, PresenceEntry, Record, SendMessage
from messenger_protocol.limits import MAX_IDS_PER_FRAME, MAX_SENT_AT
from messenger_protocol.names import ReceiptStatus

# Watchers named in one presenceChanged: ~66 KB of ids at most, well inside the 256 KB an
# asynchronous invoke may carry.
MAX_WATCHERS_PER_CHANGE = 1000


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


class Peers:
    """The peer cells, as this cell's logic sees them."""

    def __init__(self, cells: Cells, relay: RelayClient | None) -> None:
        self._cells = cells
        self._relay = relay

    def _client(self) -> RelayClient:
        if self._relay is None:
            raise RuntimeError("a single-cell deployment has no peer to ask")
        return self._relay

    def _home(self, user_id: str) -> str:
        home = self._cells.home_of(user_id)
        if home is None or self._cells.is_home(user_id):
            raise RuntimeError(f"{user_id!r} is at home: no peer to ask")
        return home

    def store_message(self, sender: str, frame: SendMessage) -> AckFrame:
        """Store a message in its recipient's home cell; that cell's ack."""
        answer = self._client().call(
            self._home(frame.to), "storeMessage", {"sender": sender, "frame": frame.to_wire()}
        )
        return AckFrame.read(answer)

    def store_receipts(self, cell: str, receipts: Sequence[RelayedReceipt]) -> None:
        """Queue receipts for users of `cell` there (and deliver them live): one call."""
        self._client().call(cell, "storeReceipt", StoreReceipts(list(receipts)).to_wire())

    def presence(self, cell: str, query: PresenceQuery) -> PresenceAnswer:
        """What the watcher may see of users of `cell`; with subscribe, `cell` records its
        interest in them for the watcher's cell."""
        return PresenceAnswer.read(self._client().call(cell, "presence", query.to_wire()))

    def presence_changed(self, cell: str, change: PresenceChanged) -> None:
        """Tell a watcher cell of a change, without waiting for it (an Event invoke)."""
        self._client().notify(cell, "presenceChanged", change.to_wire())

    def keys_of(self, user_id: str) -> KeysFrame:
        return KeysFrame.read(self._client().call(self._home(user_id), "keys", {"userId": user_id}))
