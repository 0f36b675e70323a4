"""Receipts: the recipient's ack (delivered) and markSeen (seen), told to the senders.

The rules of docs/protocol.md §2 for them: a message is deleted only on its recipient's
ack and only once its `delivered` receipt is stored; receipts are queue items like
messages, delivered live when their recipient is online and never an alert. A sender at
home in another cell gets its receipts there, through that cell's Relay, which accepts
them here in `accept_relayed`. A `seen` receipt from a reader its recipient blocks is
accepted and dropped, in the recipient's cell (docs/protocol.md §2 setBlocked).
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence

from messenger.contract import Metric
from messenger.dal.blocks import Blocks
from messenger.dal.profiles import Profile, Profiles
from messenger.dal.queue import (
    Queue,
    QueuedReceipt,
    device_of_queue,
    is_receipt_item_id,
    new_seq,
    parse_message_item_id,
    queue_owner,
    user_of_queue,
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
from messenger_protocol.limits import PRIMARY_DEVICE_ID
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

    def acknowledge(
        self, owner: str, item_ids: list[str], device_id: str = PRIMARY_DEVICE_ID
    ) -> None:
        """Delete the acknowledged items of one of the owner's devices' queue; tell each
        sender its messages arrived (docs/protocol.md §8: at the first device's ack)."""
        queue = queue_owner(owner, device_id)
        unique = list(dict.fromkeys(item_ids))
        messages = [item_id for item_id in unique if parse_message_item_id(item_id)]
        receipts = [item_id for item_id in unique if is_receipt_item_id(item_id)]
        # Anything else cannot be in a queue: ignored, like ids of other users' items.
        if receipts:
            self._queue.delete(queue, receipts)
        if messages:
            self._remove_messages(owner, queue, messages)

    def _remove_messages(self, owner: str, queue: str, item_ids: list[str]) -> None:
        """Delete acknowledged messages, each only once its `delivered` receipt is stored.

        Only messages that are in the device's queue now count (a consistent read), so an
        ack cannot make receipts for messages the owner never had. Receipts are written
        first and the messages deleted after: a crash or a throttle in between leaves
        the messages queued, to be delivered and acknowledged again, which costs a
        duplicate `delivered` receipt (clients take it as the same news) and never a
        deleted message without its receipt. A message the owner got on several devices
        makes its receipt at the first device's ack only (`first_to_acknowledge`); two
        devices acknowledging at the same instant may still both cause one, and a copy
        of the owner's own message (sent from another of its devices) makes none. A
        sender at home in another cell gets its receipt there, through that cell's Relay,
        before anything is deleted: a peer that fails fails the ack (INTERNAL) and
        deletes nothing.
        """
        present = self._queue.shared_among(queue, item_ids)
        by_sender: dict[str, list[str]] = defaultdict(list)
        # What leaves this queue's caps: every message of another user in it, whichever
        # device acknowledged its copy first (each queue is counted on its own).
        leaving: Counter[str] = Counter()
        marked: list[tuple[str, str]] = []
        now_ns = self._clock.now_ns()
        for item_id in item_ids:
            parsed = parse_message_item_id(item_id)
            if item_id not in present or parsed is None:
                continue
            sender, message_id = parsed
            if sender == owner:
                continue  # a copy of one's own message: nobody to tell, never counted
            leaving[sender] += 1
            if present[item_id] and not self._queue.first_to_acknowledge(
                owner, sender, message_id, now_ns // 1_000_000_000 + self._ttl
            ):
                continue  # another of the owner's devices acknowledged it first
            if present[item_id]:
                marked.append((sender, message_id))
            by_sender[sender].append(message_id)
        gone = [item_id for item_id in item_ids if item_id in present]
        if not by_sender:
            self._queue.delete(queue, gone)
            self._caps.release(queue, leaving)
            return
        try:
            local, profiles = self._store_delivered(owner, by_sender, now_ns)
        except Exception:
            # No receipt stored for them: the next device's ack must still make one.
            self._queue.forget_first_acks(owner, marked)
            raise
        self._queue.delete(queue, gone)
        self._caps.release(queue, leaving)
        # Only now, with the messages gone: a failure telling the senders live leaves
        # their receipts queued for their next sync, and nothing to acknowledge again.
        self._deliver(local, profiles)

    def _store_delivered(
        self, owner: str, by_sender: Mapping[str, list[str]], now_ns: int
    ) -> tuple[list[QueuedReceipt], dict[str, Profile]]:
        """Queue the `delivered` receipts of an ack for every device of each sender (those
        at home elsewhere through their cell's Relay); the local ones, not told yet, and
        their senders' profiles."""
        here, elsewhere = self._cells.split(by_sender)
        at = now_ns // 1_000_000
        for cell, senders in elsewhere.items():  # one call per cell, for all of its senders
            relayed = [
                RelayedReceipt(sender, ReceiptStatus.DELIVERED, by_sender[sender], owner, at)
                for sender in senders
            ]
            self._peers.store_receipts(cell, relayed)
        profiles = self._profiles.get_profiles(list(here)) if here else {}
        local = [
            receipt
            for sender in here
            if sender in profiles
            for receipt in self._for_every_device(
                self._receipt(sender, ReceiptStatus.DELIVERED, by_sender[sender], owner, now_ns),
                profiles[sender],
            )
        ]
        self._store(local)
        return local, profiles

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
            self._for_every_device(
                self._receipt(to, ReceiptStatus.SEEN, unique, reader, now_ns), sender
            ),
            {to: sender},
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
            [
                receipt
                for r in kept
                for receipt in self._for_every_device(
                    self._receipt(r.recipient, r.status, r.message_ids, r.by, now_ns, r.at),
                    profiles[r.recipient],
                )
            ],
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

    @staticmethod
    def _for_every_device(receipt: QueuedReceipt, profile: Profile) -> list[QueuedReceipt]:
        """One copy of a receipt for each device of its recipient (docs/protocol.md §8),
        in each device's own queue: one item, as before devices, for device 1 alone."""
        return [
            dataclasses.replace(receipt, recipient=queue_owner(profile.user_id, device))
            for device in profile.devices.device_ids
        ]

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
        # delete: an ack refused here deletes nothing, and is sent again). A receipt's
        # recipient is a device's queue: the range is its user's.
        for user_id in dict.fromkeys(user_of_queue(r.recipient) for r in receipts):
            self._cells.admit_writes_for(user_id)
        if receipts:
            self._queue.store_receipts(receipts)
            count(Metric.RECEIPTS_QUEUED, len(receipts))

    def _deliver(
        self, receipts: Sequence[QueuedReceipt], profiles: Mapping[str, Profile] | None = None
    ) -> None:
        """Tell each receipt's recipient device live; a recipient whose profile is not
        given is read."""
        if not receipts:
            return
        live = 0
        for receipt in receipts:
            user_id = user_of_queue(receipt.recipient)
            profile = (profiles or {}).get(user_id) or self._profiles.get_profile(user_id)
            device = device_of_queue(receipt.recipient)
            if profile is not None and self._live.deliver(profile, receipt.frame(), device=device):
                live += 1
        count(Metric.RECEIPTS_DELIVERED_LIVE, live)
