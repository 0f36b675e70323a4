"""Messages and receipts: store, deliver, acknowledge.

The rules of docs/protocol.md §2 that matter most live here: store before acknowledging,
delete only on the recipient's ack and only once its receipt is stored, a resend never
delivers twice, receipts are queue items like messages. Catching up (`sync`) is
logic/catch_up.py.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Protocol

from messenger.contract import Metric
from messenger.dal.queue import (
    RECEIPT_PREFIX,
    Queue,
    QueuedMessage,
    QueuedReceipt,
    new_seq,
)
from messenger.dal.users import Profile, Users
from messenger.errors import UnknownRecipient
from messenger.logic.cells import Cells
from messenger.logic.clock import Clock
from messenger.logic.live import Live
from messenger.logic.peers import Peers, RelayedReceipt
from messenger.logic.rate_limit import RateLimiter
from messenger.observability import count
from messenger_protocol.frames import AckFrame, SendMessage
from messenger_protocol.names import ReceiptStatus


class OfflineNotifier(Protocol):
    """Told when something was queued for a user none of whose connections took it."""

    def something_queued(self, profile: Profile, kind: str) -> None: ...


class NoPush:
    def something_queued(self, profile: Profile, kind: str) -> None:
        return None


def parse_message_item_id(item_id: str) -> tuple[str, str] | None:
    """(sender, messageId) of a message item id, None for anything else."""
    parts = item_id.split("#")
    if len(parts) == 3 and parts[0] == "m" and parts[1] and parts[2]:
        return parts[1], parts[2]
    return None


class Messaging:
    def __init__(
        self,
        users: Users,
        queue: Queue,
        live: Live,
        clock: Clock,
        message_ttl_seconds: int,
        rate_limiter: RateLimiter,
        offline: OfflineNotifier | None = None,
        cells: Cells | None = None,
        peers: Peers | None = None,
    ) -> None:
        self._users = users
        self._queue = queue
        self._live = live
        self._clock = clock
        self._ttl = message_ttl_seconds
        self._rate_limiter = rate_limiter
        self._offline = offline or NoPush()
        self._cells = cells or Cells(None)
        self._peers = peers

    # --- sendMessage ---------------------------------------------------------------

    def send(self, sender: str, frame: SendMessage) -> AckFrame:
        """Queue a message for its recipient, then try to hand it over live.

        A recipient at home in another cell gets it through that cell's Relay, which
        stores it before it answers: the ack still means "stored for the recipient".
        """
        if not self._cells.is_home(frame.to) and self._peers is not None:
            # Rate limited here, as every frame is (handlers/_runtime.py).
            return self._peers.store_message(sender, frame)
        recipient = self._users.get_profile(frame.to)
        if recipient is None:
            raise UnknownRecipient(f"no user {frame.to!r}")
        return self._store(sender, frame, recipient)

    def accept(self, sender: str, frame: SendMessage) -> AckFrame:
        """A message a peer cell relays from one of its users (rate limited over there)."""
        recipient = self._users.get_profile(frame.to)
        if recipient is None:
            raise UnknownRecipient(f"no user {frame.to!r}")
        return self._store(sender, frame, recipient)

    def _store(self, sender: str, frame: SendMessage, recipient: Profile) -> AckFrame:
        now_ns = self._clock.now_ns()
        message = QueuedMessage(
            recipient=frame.to,
            sender=sender,
            message_id=frame.message_id,
            body=frame.body,
            nonce=frame.nonce,
            sent_at=frame.sent_at,
            server_ts=now_ns // 1_000_000,
            seq=new_seq(now_ns // 1_000),
            expires_at=now_ns // 1_000_000_000 + self._ttl,
        )
        stored, fresh = self._queue.store_message(message, now_ns // 1_000_000_000)
        if not fresh:
            # A resend while the first copy waits: same ack, never a second delivery.
            count(Metric.DUPLICATE_SENDS)
            return AckFrame(message_id=stored.message_id, server_ts=stored.server_ts)
        count(Metric.MESSAGES_STORED)
        if self._live.deliver(recipient, stored.frame()):
            count(Metric.MESSAGES_DELIVERED_LIVE)
        else:
            count(Metric.MESSAGES_LEFT_QUEUED)
            self._offline.something_queued(recipient, "message")
        return AckFrame(message_id=stored.message_id, server_ts=stored.server_ts)

    # --- ack -----------------------------------------------------------------------

    def acknowledge(self, owner: str, item_ids: list[str]) -> None:
        """Delete the owner's acknowledged items; tell each sender its messages arrived."""
        unique = list(dict.fromkeys(item_ids))
        messages = [item_id for item_id in unique if parse_message_item_id(item_id)]
        receipts = [item_id for item_id in unique if item_id.startswith(RECEIPT_PREFIX)]
        # Anything else cannot be in a queue: ignored, like ids of other users' items.
        if receipts:
            self._queue.delete(owner, receipts)
        if messages:
            self._remove_messages(owner, messages)

    def _remove_messages(self, owner: str, item_ids: list[str]) -> None:
        """Delete acknowledged messages, each only once its `delivered` receipt is stored.

        Only messages that are in the owner's queue now count (a consistent read), so an
        ack cannot make receipts for messages the owner never had. Receipts are written
        first and the messages deleted after: a crash or a throttle in between leaves
        the messages queued, to be delivered and acknowledged again, which costs a
        duplicate `delivered` receipt (clients take it as the same news) and never a
        deleted message without its receipt. Two devices acknowledging the same message
        at the same moment may likewise both cause a receipt. A sender at home in
        another cell gets its receipt there, through that cell's Relay, before anything
        is deleted: a peer that fails fails the ack (INTERNAL) and deletes nothing.
        """
        present = self._queue.present(owner, item_ids)
        by_sender: dict[str, list[str]] = defaultdict(list)
        for item_id in item_ids:
            if item_id in present:
                sender, message_id = parse_message_item_id(item_id) or ("", "")
                by_sender[sender].append(message_id)
        if not by_sender:
            return
        now_ns = self._clock.now_ns()
        by_cell = self._cells.by_home(list(by_sender))
        at = now_ns // 1_000_000
        for cell, senders in by_cell.items():
            if cell is not None:  # one call per cell, for all of its senders
                receipts = [
                    RelayedReceipt(sender, ReceiptStatus.DELIVERED, by_sender[sender], owner, at)
                    for sender in senders
                ]
                self._relayed_peers().store_receipts(cell, receipts)
        local = [
            self._receipt(sender, ReceiptStatus.DELIVERED, by_sender[sender], owner, now_ns)
            for sender in by_cell.get(None, [])
        ]
        self._store_receipts(local)
        self._queue.delete(owner, [item_id for item_id in item_ids if item_id in present])
        # Only now, with the messages gone: a failure telling the senders live leaves
        # their receipts queued for their next sync, and nothing to acknowledge again.
        self._deliver_receipts(local)

    # --- markSeen ------------------------------------------------------------------

    def mark_seen(self, reader: str, to: str, message_ids: list[str]) -> None:
        unique = list(dict.fromkeys(message_ids))
        now_ns = self._clock.now_ns()
        home = None if self._cells.is_home(to) else self._cells.home_of(to)
        if home is not None:
            # The reader's bucket is here; the sender's home tells whether it exists.
            self._rate_limiter.take_seen_receipt(reader, to)
            self._relayed_peers().store_receipts(
                home, [RelayedReceipt(to, ReceiptStatus.SEEN, unique, reader, now_ns // 1_000_000)]
            )
            return
        sender = self._users.get_profile(to)
        if sender is None:
            raise UnknownRecipient(f"no user {to!r}")
        self._rate_limiter.take_seen_receipt(reader, to)
        self._queue_receipts(
            [self._receipt(to, ReceiptStatus.SEEN, unique, reader, now_ns)], {to: sender}
        )

    # --- receipts relayed by peer cells -------------------------------------------------

    def accept_receipts(self, relayed: Sequence[RelayedReceipt]) -> None:
        """Receipts for users of this cell from an ack or a markSeen in another cell:
        queued and delivered as a local ack or markSeen queues and delivers them.

        A `seen` receipt for an unknown user is UNKNOWN_RECIPIENT (nothing written), as a
        local markSeen is. A `delivered` receipt for one is dropped: it answers messages
        that user sent, so there is nobody to tell, and the reader's ack must go through.
        """
        profiles = self._users.get_profiles([receipt.recipient for receipt in relayed])
        for receipt in relayed:
            if receipt.status is ReceiptStatus.SEEN and receipt.recipient not in profiles:
                raise UnknownRecipient(f"no user {receipt.recipient!r}")
        now_ns = self._clock.now_ns()
        self._queue_receipts(
            [
                self._receipt(r.recipient, r.status, r.message_ids, r.by, now_ns, r.at)
                for r in relayed
                if r.recipient in profiles
            ],
            profiles,
        )

    # --- helpers -------------------------------------------------------------------

    def _receipt(
        self,
        recipient: str,
        status: ReceiptStatus,
        message_ids: Sequence[str],
        by: str,
        now_ns: int,
        at: int | None = None,
    ) -> QueuedReceipt:
        """A receipt queued now; `at` (ms) is when the reader acted, if not now."""
        return QueuedReceipt(
            recipient=recipient,
            status=status,
            message_ids=tuple(message_ids),
            by=by,
            at=now_ns // 1_000_000 if at is None else at,
            seq=new_seq(now_ns // 1_000),
            expires_at=now_ns // 1_000_000_000 + self._ttl,
        )

    def _queue_receipts(
        self, receipts: Sequence[QueuedReceipt], profiles: Mapping[str, Profile] | None = None
    ) -> None:
        """Store receipts for users of this cell, then hand each over live to its
        recipient's connections (never an alert). A recipient whose profile is not
        given is read. Every receipt, local or relayed by a peer, is stored by
        `_store_receipts` and told by `_deliver_receipts` (an ack calls them apart)."""
        self._store_receipts(receipts)
        self._deliver_receipts(receipts, profiles)

    def _store_receipts(self, receipts: Sequence[QueuedReceipt]) -> None:
        if receipts:
            self._queue.store_receipts(receipts)
            count(Metric.RECEIPTS_QUEUED, len(receipts))

    def _deliver_receipts(
        self, receipts: Sequence[QueuedReceipt], profiles: Mapping[str, Profile] | None = None
    ) -> None:
        if not receipts:
            return
        live = 0
        for receipt in receipts:
            profile = (profiles or {}).get(receipt.recipient) or self._users.get_profile(
                receipt.recipient
            )
            if profile is not None and self._live.deliver(profile, receipt.frame()) > 0:
                live += 1
        count(Metric.RECEIPTS_DELIVERED_LIVE, live)

    def _relayed_peers(self) -> Peers:
        if self._peers is None:
            raise RuntimeError("a user at home in another cell, and no peers to ask")
        return self._peers
