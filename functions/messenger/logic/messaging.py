"""Messages: store, then deliver (sendMessage, and messages relayed by peer cells).

The rules of docs/protocol.md §2 that matter most start here: store before acknowledging,
and a resend never delivers twice. A message from a user the recipient blocks is answered
with an ordinary ack and goes nowhere (docs/protocol.md §2 setBlocked). What the
recipient's ack and markSeen do (receipts, and deleting only on the recipient's ack) is
logic/receipts.py; catching up (`sync`) is logic/catch_up.py.
"""

from __future__ import annotations

from typing import Protocol

from messenger.contract import Metric
from messenger.dal.blocks import Blocks
from messenger.dal.profiles import Profile, Profiles
from messenger.dal.queue import Queue, QueuedMessage, new_seq
from messenger.errors import QueueFull, UnknownRecipient
from messenger.logic.cells import Cells
from messenger.logic.clock import Clock
from messenger.logic.epoch import CellEpoch
from messenger.logic.live_delivery import LiveDelivery
from messenger.logic.peers import Peers
from messenger.logic.queue_caps import QueueCaps
from messenger.observability import count
from messenger_protocol.frames import AckFrame, SendMessage


class OfflineNotifier(Protocol):
    """Told when something was queued for a user none of whose connections took it."""

    def something_queued(self, profile: Profile, kind: str) -> None: ...


class Messaging:
    """Stores a message for its recipient before acknowledging it, then delivers it live
    or tells the recipient's devices (a push with no content)."""

    def __init__(
        self,
        profiles: Profiles,
        queue: Queue,
        live: LiveDelivery,
        clock: Clock,
        message_ttl_seconds: int,
        offline: OfflineNotifier,
        cells: Cells,
        peers: Peers,
        caps: QueueCaps,
        blocks: Blocks,
        epoch: CellEpoch,
    ) -> None:
        self._epoch = epoch
        self._profiles = profiles
        self._blocks = blocks
        self._queue = queue
        self._live = live
        self._clock = clock
        self._ttl = message_ttl_seconds
        self._offline = offline
        self._cells = cells
        self._peers = peers
        self._caps = caps

    def send(self, sender: str, frame: SendMessage) -> AckFrame:
        """Queue a message for its recipient, then try to hand it over live.

        A recipient at home in another cell gets it through that cell's Relay, which
        stores it before it answers: the ack still means "stored for the recipient".
        """
        if not self._cells.is_home(frame.to):
            # Rate limited here, as every frame is (handlers/_runtime.py).
            return self._peers.store_message(sender, frame)
        return self.accept(sender, frame)

    def accept(self, sender: str, frame: SendMessage) -> AckFrame:
        """Store a message for a user of this cell: sent here, or relayed by a peer cell
        from one of its users (rate limited over there). The recipient's cell decides
        whether the recipient blocks the sender: then nothing is stored, delivered or
        pushed, and the ack looks like any other. Nothing is stored for a user whose range
        is being moved to another cell (RATE_LIMITED: the sender tries again)."""
        self._cells.admit_writes_for(frame.to)
        recipient = self._profiles.get_profile(frame.to)
        if recipient is None:
            raise UnknownRecipient(f"no user {frame.to!r}")
        if self._blocks.blocks(recipient, sender):
            count(Metric.BLOCKED_DROPPED)
            return self._ack(frame.message_id, self._clock.now_ms())
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
        stored, fresh = self._store_within_caps(message, now_ns // 1_000_000_000)
        if not fresh:
            # A resend while the first copy waits: same ack, never a second delivery.
            count(Metric.DUPLICATE_SENDS)
            return self._ack(stored.message_id, stored.server_ts)
        count(Metric.MESSAGES_STORED)
        if self._live.deliver(recipient, stored.frame()):
            count(Metric.MESSAGES_DELIVERED_LIVE)
        else:
            count(Metric.MESSAGES_LEFT_QUEUED)
            self._offline.something_queued(recipient, "message")
        return self._ack(stored.message_id, stored.server_ts)

    def _ack(self, message_id: str, server_ts: int) -> AckFrame:
        """The sender's ack: stored, and under which epoch of this cell, the recipient's home
        (docs/protocol.md §7: the sender keeps it with the message, and sends the message
        again if the cell's epoch moves on). A resend answered after a switch gets the new
        epoch. `dv` is 0 here: the version the caller's cell knows is that cell's to set
        (handlers/send_message.py), which for a relayed message is not this one."""
        epoch = self._epoch.current()
        return AckFrame(message_id=message_id, server_ts=server_ts, epoch=epoch, dv=0)

    def _store_within_caps(self, message: QueuedMessage, now_s: int) -> tuple[QueuedMessage, bool]:
        """Store a message that fits the queue caps (docs/protocol.md §2): (the stored copy,
        True if this call stored it). A resend of a message still stored is answered as
        before even when the queue is full; a new one past a cap is QueueFull, and nothing
        is stored."""
        try:
            admitted = self._caps.admit(
                message.recipient, message.sender, now_s, message.expires_at
            )
        except QueueFull:
            stored = self._queue.get(message.recipient, message.id)
            if isinstance(stored, QueuedMessage) and stored.expires_at >= now_s:
                return stored, False
            raise
        try:
            stored, fresh = self._queue.store_message(message, now_s)
        except Exception:
            self._caps.take_back(admitted)
            raise
        if not fresh:
            self._caps.take_back(admitted)  # counted once already, when it was stored
        return stored, fresh
