"""Messages and receipts: store, deliver, acknowledge.

The rules of PROTOCOL.md §2 that matter most live here: store before acknowledging,
delete only on the recipient's ack and only once its receipt is stored, a resend never
delivers twice, receipts are queue items like messages. Catching up (`sync`) is
logic/catch_up.py.
"""

from __future__ import annotations

from collections import defaultdict
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
from messenger.logic.peers import Peers
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
            written = self._remove_messages(owner, messages)
            count(Metric.RECEIPTS_QUEUED, len(written))
            live = sum(self._push_receipt(receipt) for receipt in written)
            count(Metric.RECEIPTS_DELIVERED_LIVE, live)

    def _remove_messages(self, owner: str, item_ids: list[str]) -> list[QueuedReceipt]:
        """Delete acknowledged messages, each only once its `delivered` receipt is stored.

        Only messages that are in the owner's queue now count (a consistent read), so an
        ack cannot make receipts for messages the owner never had. Receipts are written
        first and the messages deleted after: a crash or a throttle in between leaves
        the messages queued, to be delivered and acknowledged again, which costs a
        duplicate `delivered` receipt (clients take it as the same news) and never a
        deleted message without its receipt. Two devices acknowledging the same message
        at the same moment may likewise both cause a receipt.
        """
        present = self._queue.present(owner, item_ids)
        by_sender: dict[str, list[str]] = defaultdict(list)
        for item_id in item_ids:
            if item_id in present:
                sender, message_id = parse_message_item_id(item_id) or ("", "")
                by_sender[sender].append(message_id)
        if not by_sender:
            return []
        now_ns = self._clock.now_ns()
        receipts = [
            self._receipt(sender, ReceiptStatus.DELIVERED, message_ids, owner, now_ns)
            for sender, message_ids in by_sender.items()
        ]
        self._queue.store_receipts(receipts)
        self._queue.delete(owner, [item_id for item_id in item_ids if item_id in present])
        return receipts

    # --- markSeen ------------------------------------------------------------------

    def mark_seen(self, reader: str, to: str, message_ids: list[str]) -> None:
        sender = self._users.get_profile(to)
        if sender is None:
            raise UnknownRecipient(f"no user {to!r}")
        self._rate_limiter.take_seen_receipt(reader, to)
        receipt = self._receipt(
            to, ReceiptStatus.SEEN, list(dict.fromkeys(message_ids)), reader, self._clock.now_ns()
        )
        self._queue.store_receipt(receipt)
        count(Metric.RECEIPTS_QUEUED)
        count(Metric.RECEIPTS_DELIVERED_LIVE, self._push_receipt(receipt, sender))

    # --- helpers -------------------------------------------------------------------

    def _receipt(
        self, recipient: str, status: ReceiptStatus, message_ids: list[str], by: str, now_ns: int
    ) -> QueuedReceipt:
        return QueuedReceipt(
            recipient=recipient,
            status=status,
            message_ids=tuple(message_ids),
            by=by,
            at=now_ns // 1_000_000,
            seq=new_seq(now_ns // 1_000),
            expires_at=now_ns // 1_000_000_000 + self._ttl,
        )

    def _push_receipt(self, receipt: QueuedReceipt, profile: Profile | None = None) -> bool:
        """Hand a queued receipt over live if its recipient is online (never an alert);
        True if a connection took it."""
        profile = profile or self._users.get_profile(receipt.recipient)
        return profile is not None and self._live.deliver(profile, receipt.frame()) > 0
