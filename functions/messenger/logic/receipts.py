"""Receipts: the recipient's ack (delivered) and markSeen (seen), told to the senders.

The rules of docs/protocol.md §2 for them: a message is deleted only on its recipient's
ack and only once its `delivered` receipt is stored; receipts are queue items like
messages, delivered live when their recipient is online and never an alert. A sender at
home in another cell gets its receipts there, through that cell's Relay, which accepts
them here in `accept_relayed`. A `seen` receipt from a reader its recipient blocks is
accepted and dropped, in the recipient's cell (docs/protocol.md §2 setBlocked).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from messenger.contract import Metric
from messenger.dal.blocks import Blocks
from messenger.dal.profiles import Profile, Profiles
from messenger.dal.queue import (
    Queue,
    QueuedReceipt,
    is_receipt_item_id,
    new_seq,
    parse_message_item_id,
)
from messenger.errors import UnknownRecipient
from messenger.logic.cells import Cells
from messenger.logic.clock import Clock
from messenger.logic.epoch import CellEpoch
from messenger.logic.live_delivery import LiveDelivery
from messenger.logic.peers import Peers
from messenger.logic.queue_caps import QueueCaps
from messenger.logic.rate_limit import RateLimiter
from messenger.observability import count
from messenger.transport.relay_records import RelayedReceipt
from messenger_protocol.names import ReceiptStatus


class Receipts:
    """Acknowledgements and markSeen, and the receipts they make for the senders."""

    def __init__(
        self,
        profiles: Profiles,
        queue: Queue,
        live: LiveDelivery,
        clock: Clock,
        message_ttl_seconds: int,
        rate_limiter: RateLimiter,
        cells: Cells,
        peers: Peers,
        epoch: CellEpoch,
        caps: QueueCaps,
        blocks: Blocks,
    ) -> None:
        self._epoch = epoch
        self._profiles = profiles
        self._blocks = blocks
        self._queue = queue
        self._live = live
        self._clock = clock
        self._ttl = message_ttl_seconds
        self._rate_limiter = rate_limiter
        self._cells = cells
        self._peers = peers
        self._caps = caps

    # --- ack -----------------------------------------------------------------------

    def acknowledge(self, owner: str, item_ids: list[str]) -> None:
        """Delete the owner's acknowledged items; tell each sender its messages arrived."""
        unique = list(dict.fromkeys(item_ids))
        messages = [item_id for item_id in unique if parse_message_item_id(item_id)]
        receipts = [item_id for item_id in unique if is_receipt_item_id(item_id)]
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
            parsed = parse_message_item_id(item_id)
            if item_id in present and parsed is not None:
                sender, message_id = parsed
                by_sender[sender].append(message_id)
        if not by_sender:
            return
        now_ns = self._clock.now_ns()
        here, elsewhere = self._cells.split(by_sender)
        at = now_ns // 1_000_000
        for cell, senders in elsewhere.items():  # one call per cell, for all of its senders
            relayed = [
                RelayedReceipt(sender, ReceiptStatus.DELIVERED, by_sender[sender], owner, at)
                for sender in senders
            ]
            self._peers.store_receipts(cell, relayed)
        local = [
            self._receipt(sender, ReceiptStatus.DELIVERED, by_sender[sender], owner, now_ns)
            for sender in here
        ]
        self._store(local)
        self._queue.delete(owner, [item_id for item_id in item_ids if item_id in present])
        self._caps.release(owner, {sender: len(ids) for sender, ids in by_sender.items()})
        # Only now, with the messages gone: a failure telling the senders live leaves
        # their receipts queued for their next sync, and nothing to acknowledge again.
        self._deliver(local)

    # --- markSeen ------------------------------------------------------------------

    def mark_seen(self, reader: str, to: str, message_ids: list[str]) -> str:
        """Tell `to` that the reader has seen these of its messages; the epoch of the cell
        that queued the receipt, `to`'s home (docs/protocol.md §7: `seenStored`)."""
        unique = list(dict.fromkeys(message_ids))
        now_ns = self._clock.now_ns()
        if not self._cells.is_home(to):
            # The reader's bucket is here; the sender's home tells whether it exists.
            self._rate_limiter.take_seen_receipt(reader, to)
            seen = RelayedReceipt(to, ReceiptStatus.SEEN, unique, reader, now_ns // 1_000_000)
            stored_in = self._peers.store_receipts(self._cells.home_of(to), [seen])
            return stored_in or self._epoch.current()
        sender = self._profiles.get_profile(to)
        if sender is None:
            raise UnknownRecipient(f"no user {to!r}")
        self._rate_limiter.take_seen_receipt(reader, to)
        if self._blocks.blocks(sender, reader):
            count(Metric.BLOCKED_DROPPED)
            return self._epoch.current()  # as if stored: a blocked reader learns nothing
        self._queue_receipts(
            [self._receipt(to, ReceiptStatus.SEEN, unique, reader, now_ns)], {to: sender}
        )
        return self._epoch.current()

    # --- receipts relayed by peer cells -------------------------------------------------

    def accept_relayed(self, relayed: Sequence[RelayedReceipt]) -> str:
        """Receipts for users of this cell from an ack or a markSeen in another cell:
        queued and delivered as a local ack or markSeen queues and delivers them.

        A `seen` receipt for an unknown user is UNKNOWN_RECIPIENT (nothing written), as a
        local markSeen is. A `delivered` receipt for one is dropped: it answers messages
        that user sent, so there is nobody to tell, and the reader's ack must go through.
        """
        profiles = self._profiles.get_profiles([receipt.recipient for receipt in relayed])
        for receipt in relayed:
            if receipt.status is ReceiptStatus.SEEN and receipt.recipient not in profiles:
                raise UnknownRecipient(f"no user {receipt.recipient!r}")
        now_ns = self._clock.now_ns()
        kept = [r for r in relayed if r.recipient in profiles and not self._blocked(r, profiles)]
        if len(kept) < len(relayed):
            count(Metric.BLOCKED_DROPPED, len(relayed) - len(kept))
        self._queue_receipts(
            [self._receipt(r.recipient, r.status, r.message_ids, r.by, now_ns, r.at) for r in kept],
            profiles,
        )
        return self._epoch.current()

    def _blocked(self, receipt: RelayedReceipt, profiles: Mapping[str, Profile]) -> bool:
        """Whether a relayed `seen` receipt comes from a reader its recipient blocks."""
        return receipt.status is ReceiptStatus.SEEN and self._blocks.blocks(
            profiles[receipt.recipient], receipt.by
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
        self, receipts: Sequence[QueuedReceipt], profiles: Mapping[str, Profile]
    ) -> None:
        """Store receipts for users of this cell, then hand each over live to its
        recipient's connections (never an alert). Every receipt, local or relayed by a
        peer, is stored by `_store` and told by `_deliver` (an ack calls them apart)."""
        self._store(receipts)
        self._deliver(receipts, profiles)

    def _store(self, receipts: Sequence[QueuedReceipt]) -> None:
        # Nothing for a user whose range is being moved away (RATE_LIMITED, before any
        # delete: an ack refused here deletes nothing, and is sent again).
        for receipt in receipts:
            self._cells.admit_writes_for(receipt.recipient)
        if receipts:
            self._queue.store_receipts(receipts)
            count(Metric.RECEIPTS_QUEUED, len(receipts))

    def _deliver(
        self, receipts: Sequence[QueuedReceipt], profiles: Mapping[str, Profile] | None = None
    ) -> None:
        """Tell each receipt's recipient live; a recipient whose profile is not given is
        read."""
        if not receipts:
            return
        live = 0
        for receipt in receipts:
            profile = (profiles or {}).get(receipt.recipient) or self._profiles.get_profile(
                receipt.recipient
            )
            if profile is not None and self._live.deliver(profile, receipt.frame()) > 0:
                live += 1
        count(Metric.RECEIPTS_DELIVERED_LIVE, live)
