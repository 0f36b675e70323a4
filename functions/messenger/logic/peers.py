"""Asking another cell to act for one of its users: the typed side of the Relay call.

Every operation names users of the peer only (the peer refuses anything else) and is
idempotent, so a retry after a lost answer changes nothing (docs/scale.md).
"""

from __future__ import annotations

from messenger.logic.cells import Cells
from messenger.transport.relay import RelayClient
from messenger_protocol.frames import AckFrame, KeysFrame, SendMessage


class Peers:
    """The peer cells, as this cell's logic sees them."""

    def __init__(self, cells: Cells, relay: RelayClient | None) -> None:
        self._cells = cells
        self._relay = relay

    def _home(self, user_id: str) -> str:
        home = self._cells.home_of(user_id)
        if home is None or self._relay is None:
            raise RuntimeError(f"{user_id!r} is at home: no peer to ask")
        return home

    def _call(self, user_id: str, operation: str, request: dict[str, object]) -> object:
        assert self._relay is not None
        return self._relay.call(self._home(user_id), operation, request)

    def store_message(self, sender: str, frame: SendMessage) -> AckFrame:
        """Store a message in its recipient's home cell; that cell's ack."""
        answer = self._call(frame.to, "storeMessage", {"sender": sender, "frame": frame.to_wire()})
        return AckFrame.read(answer)

    def keys_of(self, user_id: str) -> KeysFrame:
        return KeysFrame.read(self._call(user_id, "keys", {"userId": user_id}))
