"""Asking another cell to act for one of its users: the typed side of the Relay call.

Every operation names users of the peer only (the peer refuses anything else) and is
idempotent, so a retry after a lost answer changes nothing (docs/scale.md). What each
request and answer looks like is transport/relay_records.py's.
"""

from __future__ import annotations

from collections.abc import Sequence

from messenger.logic.cells import Cells
from messenger.transport.relay import RelayClient
from messenger.transport.relay_records import (
    CountRegistration,
    KeysQuery,
    PresenceAnswer,
    PresenceChanged,
    PresenceQuery,
    RelayedReceipt,
    StoreMessage,
    StoreReceipts,
)
from messenger_protocol.frames import AckFrame, KeysFrame, SendMessage
from messenger_protocol.limits import PRIMARY_DEVICE_ID
from messenger_protocol.names import RelayOperation


class Peers:
    """The peer cells, as this cell's logic sees them (none in a single cell)."""

    def __init__(self, cells: Cells, relay: RelayClient) -> None:
        self._cells = cells
        self._relay = relay

    @property
    def cells(self) -> tuple[str, ...]:
        """The peer cells; empty for a deployment that is one cell."""
        return self._cells.peers

    def _home(self, user_id: str) -> str:
        """The user's home now. The caller found it elsewhere a moment ago; a move's step
        seen in between may make it this cell, whose own Relay then answers (with the
        view of that moment), as a peer's would (logic/relay_callers.py)."""
        return self._cells.home_of(user_id)

    def store_message(
        self, sender: str, frame: SendMessage, sender_device: str = PRIMARY_DEVICE_ID
    ) -> AckFrame:
        """Store a message in its recipient's home cell; that cell's ack."""
        answer = self._relay.call(
            self._home(frame.to),
            RelayOperation.STORE_MESSAGE,
            StoreMessage(sender, frame, sender_device).to_wire(),
        )
        return AckFrame.read(answer)

    def store_receipts(self, cell: str, receipts: Sequence[RelayedReceipt]) -> str | None:
        """Queue receipts for users of `cell` there (and deliver them live): one call. The
        epoch `cell` stored them in (None from a cell that does not say)."""
        answer = self._relay.call(
            cell, RelayOperation.STORE_RECEIPT, StoreReceipts(list(receipts)).to_wire()
        )
        epoch = answer.get("epoch") if isinstance(answer, dict) else None
        return epoch if isinstance(epoch, str) else None

    def presence(self, cell: str, query: PresenceQuery) -> PresenceAnswer:
        """What the watcher may see of users of `cell`; with subscribe, `cell` records its
        interest in them for the watcher's cell."""
        answer = self._relay.call(cell, RelayOperation.PRESENCE, query.to_wire())
        return PresenceAnswer.read(answer)

    def presence_changed(self, cell: str, change: PresenceChanged) -> None:
        """Tell a watcher cell of a change, without waiting for it (an Event invoke)."""
        self._relay.notify(cell, RelayOperation.PRESENCE_CHANGED, change.to_wire())

    def keys_of(self, user_id: str) -> KeysFrame:
        """A user's keys, from their home cell."""
        answer = self._relay.call(
            self._home(user_id), RelayOperation.KEYS, KeysQuery(user_id).to_wire()
        )
        return KeysFrame.read(answer)

    def count_registration(self, cell: str, address: str, block: str | None, attempt: str) -> bool:
        """Count a registration from a source address (digests) in `cell`, which keeps its
        budget; False when it has none left this hour (nothing counted)."""
        answer = self._relay.call(
            cell,
            RelayOperation.COUNT_REGISTRATION,
            CountRegistration(address=address, attempt=attempt, block=block).to_wire(),
        )
        return isinstance(answer, dict) and answer.get("counted") is True
