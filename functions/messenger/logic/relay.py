"""Answering the peer cells: what another cell may ask of this one (docs/scale.md).

Each request names the calling cell and users of THIS cell only: a request about anyone
else is refused BAD_REQUEST, so a peer can never act for a user here that its own users
could not reach through the protocol. Fields are read with the protocol's own rules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from messenger.logic.cells import Cells
from messenger.logic.identity import Identity
from messenger.logic.messaging import Messaging
from messenger.logic.peers import PresenceChanged, PresenceQuery, StoreReceipts
from messenger.logic.presence import Presence, PresenceChanges
from messenger_protocol.errors import BadRequest
from messenger_protocol.frames import SendMessage


@dataclass(frozen=True)
class RelayRequest:
    operation: str
    caller: str  # the calling cell
    body: dict[str, Any]


def read_request(event: Any) -> RelayRequest:
    if not isinstance(event, dict):
        raise BadRequest("a relay request is a JSON object")
    operation, caller = event.get("op"), event.get("from")
    if not isinstance(operation, str) or not isinstance(caller, str):
        raise BadRequest("a relay request names its op and the calling cell")
    return RelayRequest(operation, caller, event)


class RelayService:
    """The operations of the Relay function, each for users of this cell."""

    def __init__(
        self,
        cells: Cells,
        messaging: Callable[[], Messaging],
        identity: Identity,
        presence: Callable[[], Presence],
        presence_changes: Callable[[], PresenceChanges],
    ) -> None:
        self._cells = cells
        self._messaging = messaging
        self._identity = identity
        self._presence = presence
        self._presence_changes = presence_changes
        self._operations: dict[str, Callable[[RelayRequest], Any]] = {
            "storeMessage": self._store_message,
            "storeReceipt": self._store_receipt,
            "presence": self._presence_of,
            "presenceChanged": self._presence_changed,
            "keys": self._keys,
        }

    def answer(self, request: RelayRequest) -> Any:
        operation = self._operations.get(request.operation)
        if operation is None:
            raise BadRequest(f"no relay operation {request.operation[:64]!r}")
        if self._cells.cell_id is None or request.caller == self._cells.cell_id:
            raise BadRequest("relay requests come from peer cells")
        return operation(request)

    def _ours(self, user_id: Any, what: str) -> str:
        if not isinstance(user_id, str) or not self._cells.is_home(user_id):
            raise BadRequest(f"{what}: not a user of this cell")
        return user_id

    def _theirs(self, request: RelayRequest, user_id: Any, what: str) -> str:
        if not isinstance(user_id, str) or self._cells.home_of(user_id) != request.caller:
            raise BadRequest(f"{what}: not a user of the calling cell")
        return user_id

    def _store_message(self, request: RelayRequest) -> Any:
        frame = SendMessage.read(request.body.get("frame"))
        sender = self._theirs(request, request.body.get("sender"), "sender")
        self._ours(frame.to, "to")
        return self._messaging().accept(sender, frame).to_wire()

    def _store_receipt(self, request: RelayRequest) -> Any:
        """Receipts for users of this cell, by users of the calling cell."""
        receipts = StoreReceipts.read(request.body).receipts
        for receipt in receipts:
            self._ours(receipt.recipient, "recipient")
            self._theirs(request, receipt.by, "by")
        self._messaging().accept_receipts(receipts)
        return {}

    def _presence_of(self, request: RelayRequest) -> Any:
        query = PresenceQuery.read(request.body)
        self._theirs(request, query.watcher, "watcher")
        for user_id in query.user_ids:
            self._ours(user_id, "userIds")
        return self._presence().answer_peer(request.caller, query).to_wire()

    def _presence_changed(self, request: RelayRequest) -> Any:
        """A user of the calling cell changed; its watchers are users of this cell."""
        change = PresenceChanged.read(request.body)
        self._theirs(request, change.user, "user")
        for watcher in [*change.watchers, *change.hidden_from]:
            self._ours(watcher, "watchers")
        self._presence_changes().relay_change(change)
        return {}

    def _keys(self, request: RelayRequest) -> Any:
        return self._identity.keys_of(self._ours(request.body.get("userId"), "userId")).to_wire()
