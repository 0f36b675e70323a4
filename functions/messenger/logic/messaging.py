"""Messages and receipts: store, deliver, acknowledge, catch up.

The rules of PROTOCOL.md §2 that matter most live here: store before acknowledging,
delete only on the recipient's ack, a resend never delivers twice, receipts are queue
items like messages.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import replace
from typing import Protocol

from messenger.contract import Metric
from messenger.dal.queue import (
    AckConflict,
    Acknowledgements,
    ItemsMissing,
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
from messenger_protocol.frames import AckFrame, SendMessage, SyncDoneFrame
from messenger_protocol.names import ReceiptStatus

MAX_ACTIONS_PER_TRANSACTION = 100
ACK_ATTEMPTS = 6


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
        acknowledgements: Acknowledgements,
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
        self._acks = acknowledgements
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
        receipts = [item_id for item_id in unique if item_id.startswith("r#")]
        # Anything else cannot be in a queue: ignored, like ids of other users' items.
        if receipts:
            self._acks.remove_receipts(owner, receipts)
        if messages:
            for receipt in self._remove_messages(owner, messages):
                count(Metric.RECEIPTS_QUEUED)
                self._push_receipt(receipt)

    def _remove_messages(self, owner: str, item_ids: list[str]) -> list[QueuedReceipt]:
        """Delete message items with their `delivered` receipts, one transaction at a time.

        Each transaction deletes some items and writes (or extends) one receipt per
        sender, so a crash or a throttle never leaves a deletion without its receipt.
        """
        now_ns = self._clock.now_ns()
        written: dict[str, QueuedReceipt] = {}
        remaining = list(item_ids)
        attempts = 0
        while remaining:
            chunk = _take_chunk(remaining)
            by_sender: dict[str, list[str]] = defaultdict(list)
            for item_id in chunk:
                sender, message_id = parse_message_item_id(item_id) or ("", "")
                by_sender[sender].append(message_id)
            new: list[QueuedReceipt] = []
            appends: list[tuple[QueuedReceipt, list[str]]] = []
            for sender, message_ids in by_sender.items():
                if sender in written:
                    appends.append((written[sender], message_ids))
                else:
                    new.append(
                        self._receipt(sender, ReceiptStatus.DELIVERED, message_ids, owner, now_ns)
                    )
            try:
                self._acks.remove_messages(owner, chunk, new, appends)
            except ItemsMissing as missing:
                remaining = [i for i in remaining if i not in missing.item_ids]
                continue
            except AckConflict:
                attempts += 1
                if attempts >= ACK_ATTEMPTS:
                    raise
                time.sleep(0.02 * 2**attempts)
                continue
            for receipt in new:
                written[receipt.recipient] = receipt
            for receipt, more in appends:
                written[receipt.recipient] = _extended(receipt, more)
            remaining = remaining[len(chunk) :]
        return list(written.values())

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
        self._push_receipt(receipt, sender)

    # --- sync ----------------------------------------------------------------------

    def sync(self, owner: str, connection_id: str) -> int:
        """Post every unexpired queued item to the caller in order, then syncDone."""
        sent = 0
        for item in self._queue.pending(owner, self._clock.now_s()):
            if not self._live.post(owner, connection_id, item.frame()):
                return sent  # the caller is gone; everything stays queued
            sent += 1
        count(Metric.ITEMS_SYNCED, sent)
        self._live.post(owner, connection_id, SyncDoneFrame(count=sent))
        return sent

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

    def _push_receipt(self, receipt: QueuedReceipt, profile: Profile | None = None) -> None:
        """Hand a queued receipt over live if its recipient is online. Never an alert."""
        profile = profile or self._users.get_profile(receipt.recipient)
        if profile is not None and self._live.deliver(profile, receipt.frame()):
            count(Metric.RECEIPTS_DELIVERED_LIVE)


def _take_chunk(remaining: list[str]) -> list[str]:
    """The longest prefix whose deletes plus one receipt write per sender fit in one
    transaction (a receipt being extended costs an action like a new one)."""
    chunk: list[str] = []
    senders: set[str] = set()
    for item_id in remaining:
        sender = (parse_message_item_id(item_id) or ("", ""))[0]
        extra = 0 if sender in senders else 1
        if len(chunk) + 1 + len(senders) + extra > MAX_ACTIONS_PER_TRANSACTION:
            break
        chunk.append(item_id)
        senders.add(sender)
    return chunk


def _extended(receipt: QueuedReceipt, more: list[str]) -> QueuedReceipt:
    return replace(receipt, message_ids=receipt.message_ids + tuple(more))
