"""Answering the peer cells: what another cell may ask of this one (docs/scale.md).

Each request is first admitted by logic/relay_callers.py (signed by the cell it names as
its caller, for this cell, recently, within that caller's budget). It names the calling
cell and users of THIS cell only: a request about anyone
else is refused BAD_REQUEST, so a peer can never act for a user here that its own users
could not reach through the protocol. Fields are read with the protocol's own rules
(transport/relay_records.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from messenger.logic.cells import MOVING_RETRY_AFTER_MS, Cells
from messenger.logic.identity import Identity
from messenger.logic.messaging import Messaging
from messenger.logic.peers import Peers
from messenger.logic.presence import Presence
from messenger.logic.presence_changes import PresenceChanges
from messenger.logic.receipts import Receipts
from messenger.logic.registrations import RegistrationBudget, RegistrationSource
from messenger.logic.relay_callers import RelayCallers
from messenger.transport.relay_records import (
    CountRegistration,
    KeysQuery,
    PresenceChanged,
    PresenceQuery,
    RelayedReceipt,
    RelayRequest,
    StoreMessage,
    StoreReceipts,
)
from messenger_protocol.errors import BadRequest, RateLimited
from messenger_protocol.names import RelayOperation


class RelayService:
    """The operations of the Relay function, each for users of this cell."""

    def __init__(
        self,
        cells: Cells,
        callers: RelayCallers,
        messaging: Callable[[], Messaging],
        receipts: Callable[[], Receipts],
        identity: Identity,
        presence: Callable[[], Presence],
        presence_changes: Callable[[], PresenceChanges],
        peers: Peers,
        registrations: RegistrationBudget,
    ) -> None:
        self._cells = cells
        self._peers = peers
        self._callers = callers
        self._messaging = messaging
        self._receipts = receipts
        self._identity = identity
        self._presence = presence
        self._presence_changes = presence_changes
        self._registrations = registrations
        self._operations: dict[RelayOperation, Callable[[RelayRequest], Any]] = {
            RelayOperation.STORE_MESSAGE: self._store_message,
            RelayOperation.STORE_RECEIPT: self._store_receipt,
            RelayOperation.PRESENCE: self._presence_of,
            RelayOperation.PRESENCE_CHANGED: self._presence_changed,
            RelayOperation.KEYS: self._keys,
            RelayOperation.COUNT_REGISTRATION: self._count_registration,
        }

    def answer(self, request: RelayRequest) -> Any:
        """Do what a peer cell asks, once it is proven to have asked (and may)."""
        self._callers.admit(request)
        return self._operations[request.operation](request)

    def _moved_away(self, user_id: str) -> str | None:
        """The new home of a user whose range moved away from this cell (docs/protocol.md
        §6 "Shard moves"): what arrives for them here is forwarded there, until every
        cell follows the new shard map. None for a user of this cell, or of no move."""
        return self._cells.moved_out_to(user_id)

    def _ours(self, user_id: str, what: str) -> str:
        if not self._cells.is_home(user_id):
            raise BadRequest(f"{what}: not a user of this cell")
        return user_id

    def _theirs(
        self, request: RelayRequest, user_id: str, what: str, about: str | None = None
    ) -> str:
        """`user_id` must be the calling cell's; or the caller is the old home of `about`
        (a user of this cell whose range moved here), forwarding for anyone. A caller
        that is proven (logic/relay_callers.py) but not the home this container last
        read may have read a move's step this one has not yet: read the moves again,
        once, before refusing."""
        for fresh in (False, True):
            if fresh:
                self._cells.forget()
            if about is not None and self._cells.moved_in_from(about) == request.caller:
                return user_id
            if self._cells.home_of(user_id) == request.caller:
                return user_id
        raise BadRequest(f"{what}: not a user of the calling cell")

    def _store_message(self, request: RelayRequest) -> Any:
        stored = StoreMessage.read(request.body)
        new_home = self._moved_away(stored.frame.to)
        if new_home is not None:
            # The caller does not know the move yet: forwarded, stored once, over there.
            self._theirs(request, stored.sender, "sender")
            forwarded = self._peers.store_message(stored.sender, stored.frame, stored.sender_device)
            return forwarded.to_wire()
        sender = self._theirs(request, stored.sender, "sender", about=stored.frame.to)
        self._ours(stored.frame.to, "to")
        accepted = self._messaging().accept(sender, stored.frame, stored.sender_device)
        return accepted.to_wire()

    def _store_receipt(self, request: RelayRequest) -> Any:
        """Receipts for users of this cell, by users of the calling cell."""
        receipts = StoreReceipts.read(request.body).receipts
        here: list[RelayedReceipt] = []
        moved: dict[str, list[RelayedReceipt]] = {}
        for receipt in receipts:
            new_home = self._moved_away(receipt.recipient)
            if new_home is not None:
                self._theirs(request, receipt.by, "by")
                moved.setdefault(new_home, []).append(receipt)
                continue
            self._ours(receipt.recipient, "recipient")
            self._theirs(request, receipt.by, "by", about=receipt.recipient)
            here.append(receipt)
        epoch = None
        for cell, forwarded in moved.items():  # forwarded first: a refusal stores nothing here
            epoch = self._peers.store_receipts(cell, forwarded)
        if here or epoch is None:
            epoch = self._receipts().accept_relayed(here)
        return {"epoch": epoch}

    def _presence_of(self, request: RelayRequest) -> Any:
        query = PresenceQuery.read(request.body)
        self._theirs(request, query.watcher, "watcher")
        for user_id in query.user_ids:
            if self._moved_away(user_id) is not None:
                # The caller does not know the move yet, and will within CACHE_SECONDS:
                # asked again then, it asks the new home (which records the interest).
                raise RateLimited(
                    f"userIds: {user_id!r} moved to another cell; ask again",
                    retry_after=MOVING_RETRY_AFTER_MS,
                )
            self._ours(user_id, "userIds")
        return self._presence().answer_peer(request.caller, query).to_wire()

    def _presence_changed(self, request: RelayRequest) -> Any:
        """A user of the calling cell changed; its watchers are users of this cell."""
        change = PresenceChanged.read(request.body)
        self._theirs(request, change.user, "user")
        for watcher in [*change.watchers, *change.hidden_from]:
            # A watcher whose range moved away is not told here: its new home holds its
            # subscriptions now, and the user's cell tells it through their own interest
            # (the one named this cell was its old connection's, which is closed).
            if self._moved_away(watcher) is None:
                self._ours(watcher, "watchers")
        self._presence_changes().relay_change(change)
        return {}

    def _keys(self, request: RelayRequest) -> Any:
        query = KeysQuery.read(request.body)
        if self._moved_away(query.user_id) is not None:
            return self._peers.keys_of(query.user_id).to_wire()
        return self._identity.keys_of(self._ours(query.user_id, "userId")).to_wire()

    def _count_registration(self, request: RelayRequest) -> Any:
        """A registration in the calling cell from an address whose budget this cell keeps."""
        count = CountRegistration.read(request.body)
        source = RegistrationSource(count.address, count.block)
        if not self._registrations.keeps(source):
            new_home = self._moved_away(source.shard_key)
            if new_home is None:
                raise BadRequest("address: its registrations are not counted in this cell")
            # The caller does not know the move yet: counted over there.
            counted = self._peers.count_registration(
                new_home, count.address, count.block, count.attempt
            )
            return {"counted": counted}
        counted = self._registrations.count_for_peer(request.caller, source, count.attempt)
        return {"counted": counted}
