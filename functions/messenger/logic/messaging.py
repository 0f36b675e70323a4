"""Messages: store, then deliver (sendMessage, and messages relayed by peer cells).

The rules of docs/protocol.md §2 that matter most start here: store before acknowledging,
and a resend never delivers twice. A message from a user the recipient blocks is answered
with an ordinary ack and goes nowhere (docs/protocol.md §2 setBlocked). What the
recipient's ack and markSeen do (receipts, and deleting only on the recipient's ack) is
logic/receipts.py; catching up (`sync`) is logic/catch_up.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from messenger.contract import Metric
from messenger.dal.blocks import Blocks
from messenger.dal.profiles import Profile, Profiles
from messenger.dal.queue import (
    Queue,
    QueuedMessage,
    device_of_queue,
    is_live,
    new_seq,
)
from messenger.dal.queue_counts import Counted
from messenger.errors import QueueFull, StaleDevices, UnknownRecipient, UnknownUser
from messenger.logic.cells import Cells
from messenger.logic.clock import Clock
from messenger.logic.device_copies import (
    DeviceCopy,
    check_recipient_copies,
    check_self_copies,
    recipient_copies,
    self_copies,
)
from messenger.logic.epoch import CellEpoch
from messenger.logic.live_delivery import LiveDelivery
from messenger.logic.peers import Peers
from messenger.logic.queue_caps import QueueCaps
from messenger.observability import count
from messenger_protocol.frames import AckFrame, SendMessage
from messenger_protocol.limits import PRIMARY_DEVICE_ID


class OfflineNotifier(Protocol):
    """Told when something was queued for devices of a user none of whose connections
    took it (device 1 alone when `devices` is not given)."""

    def something_queued(
        self, profile: Profile, kind: str, devices: Sequence[str] | None = None
    ) -> None: ...


@dataclass
class Sent:
    """A message stored for its recipient (its ack) and the copies this send stored fresh,
    still to be handed over live (Messaging.deliver): the handler sends the ack ahead of
    a fan-out (handlers/send_message.py), so that no post holds it."""

    ack: AckFrame
    fresh: list[tuple[Profile, list[QueuedMessage]]] = field(default_factory=list)


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

    def send(self, sender: str, frame: SendMessage, sender_device: str = PRIMARY_DEVICE_ID) -> Sent:
        """Queue a message for each of its recipient's devices and the sender's other
        devices (docs/protocol.md §8); the copies are handed over live by `deliver`, once
        the caller has sent the ack.

        A recipient at home in another cell gets it through that cell's Relay, which
        stores (and delivers) it before it answers: the ack still means "stored for the
        recipient".
        """
        if not self._cells.is_home(frame.to):
            return self._send_elsewhere(sender, sender_device, frame)
        # Nothing is stored for a user whose range is being moved (RATE_LIMITED): the
        # recipient, nor the sender when its own devices get copies.
        self._cells.admit_writes_for(frame.to)
        if frame.self_copies:
            self._cells.admit_writes_for(sender)
        # One BatchGetItem: the recipient (does it exist, its devices, its connections)
        # and the sender (its own devices, for the copies of its message).
        profiles = self._profiles.get_profiles([frame.to, sender])
        recipient = profiles.get(frame.to)
        if recipient is None:
            raise UnknownRecipient(f"no user {frame.to!r}")
        own = profiles.get(sender)
        own_devices = own.devices if own is not None else None
        self_version = own_devices.version if own_devices is not None else 0
        # Every refusal before any write (docs/protocol.md §3).
        check_recipient_copies(frame, recipient.devices, self_version)
        if own_devices is not None:
            check_self_copies(frame, own_devices, sender_device, recipient.devices.version)
        if self._blocks.blocks(recipient, sender):
            count(Metric.BLOCKED_DROPPED)
            sent = Sent(self._ack(frame.message_id, self._clock.now_ms()))
        else:
            sent = self._store(sender, sender_device, frame, recipient)
        if own is not None:
            # Whether or not the recipient blocks the sender, as across cells: the
            # sender's other devices show what it sent, and learn nothing of a block.
            sent.fresh.append((own, self._store_self_copies(sender, sender_device, frame, own)))
        return sent

    def deliver(self, sent: Sent) -> None:
        """Hand each copy a send stored to its device's live connections, all together;
        a device that took none gets a push (content-free) for its own queue. Never
        raises for a post (the message is stored and acknowledged by now)."""
        for profile, copies in sent.fresh:
            if copies:
                self._deliver_fresh(profile, copies)

    def posts_to_make(self, sent: Sent) -> int:
        """How many posts handing over a send's copies takes (the live connections of
        every device a copy is for)."""
        now = self._clock.now_ms()
        return sum(
            len(profile.live_connections_of(device_of_queue(message.recipient), now))
            for profile, copies in sent.fresh
            for message in copies
        )

    def _send_elsewhere(self, sender: str, sender_device: str, frame: SendMessage) -> Sent:
        """A recipient at home in another cell: the sender's own side is checked here
        (that cell does not know the sender's devices), the recipient's there; the
        sender's other devices get their copies here once the recipient's are stored.
        Rate limited here, as every frame is (handlers/_runtime.py)."""
        if frame.self_copies:
            self._cells.admit_writes_for(sender)
        own = self._profiles.get_profile(sender)
        if own is not None:
            try:
                check_self_copies(frame, own.devices, sender_device, frame.devices or 0)
            except StaleDevices as stale:
                # The refusal names the versions the server holds (docs/protocol.md §8):
                # the recipient's is its home cell's to tell, not the frame's.
                held = self._recipient_version_elsewhere(frame.to)
                raise StaleDevices(stale.message, held, own.devices.version) from None
        try:
            ack = self._peers.store_message(sender, frame, sender_device)
        except StaleDevices as stale:
            # The recipient's version is that cell's; the sender's own is this one's.
            own_version = own.devices.version if own is not None else 0
            raise StaleDevices(stale.message, stale.devices, own_version) from None
        sent = Sent(ack)
        if own is not None:
            sent.fresh.append((own, self._store_self_copies(sender, sender_device, frame, own)))
        return sent

    def _recipient_version_elsewhere(self, user_id: str) -> int:
        """The version of the device list that the home cell of `user_id` (another cell)
        holds; UnknownRecipient when it has no such user. Asked only to refuse a frame."""
        try:
            keys = self._peers.keys_of(user_id)
        except UnknownUser:
            raise UnknownRecipient(f"no user {user_id!r}") from None
        return keys.devices.version if keys.devices is not None else 0

    def accept(
        self, sender: str, frame: SendMessage, sender_device: str = PRIMARY_DEVICE_ID
    ) -> AckFrame:
        """Store a message for a user of this cell, relayed by a peer cell from one of its
        users (rate limited, and the sender's own copies kept, over there). The
        recipient's cell decides whether the recipient blocks the sender: then nothing is
        stored, delivered or pushed, and the ack looks like any other. Nothing is stored
        for a user whose range is being moved to another cell (RATE_LIMITED: the sender
        tries again)."""
        self._cells.admit_writes_for(frame.to)
        recipient = self._profiles.get_profile(frame.to)
        if recipient is None:
            raise UnknownRecipient(f"no user {frame.to!r}")
        check_recipient_copies(frame, recipient.devices, frame.self_devices or 0)
        if self._blocks.blocks(recipient, sender):
            count(Metric.BLOCKED_DROPPED)
            return self._ack(frame.message_id, self._clock.now_ms())
        # The peer cell waits for this answer; the posts go first here (the Relay's
        # answer cannot be sent ahead of its own invocation's end).
        sent = self._store(sender, sender_device, frame, recipient)
        self.deliver(sent)
        return sent.ack

    def _store(
        self, sender: str, sender_device: str, frame: SendMessage, recipient: Profile
    ) -> Sent:
        """Store the recipient's copies (each counted against its queue's caps): the ack,
        and the copies stored fresh, to be delivered live to their devices."""
        copies = recipient_copies(frame, recipient.devices)
        messages = [
            self._message(copy, sender, sender_device, frame, copies=len(copies)) for copy in copies
        ]
        stored = self._store_within_caps(messages)
        first, _ = stored[0]
        ack = self._ack(first.message_id, first.server_ts)
        fresh = [message for message, is_fresh in stored if is_fresh]
        if not fresh:
            # A resend while the copies wait: same ack, never a second delivery.
            count(Metric.DUPLICATE_SENDS)
            return Sent(ack)
        count(Metric.MESSAGES_STORED)
        return Sent(ack, [(recipient, fresh)])

    def _store_self_copies(
        self, sender: str, sender_device: str, frame: SendMessage, own: Profile
    ) -> list[QueuedMessage]:
        """The copies of the sender's message for its other devices (docs/protocol.md §8),
        those stored fresh: not counted against any cap (the sender fills only its own
        queues, at the pace its rate limit allows), delivered live or pushed like any
        message."""
        copies = self_copies(sender, frame)
        if not copies:
            return []
        now_s = self._clock.now_s()
        stored = [
            self._queue.store_message(
                self._message(copy, sender, sender_device, frame, copies=1), now_s
            )
            for copy in copies
        ]
        return [message for message, fresh in stored if fresh]

    def _message(
        self,
        copy: DeviceCopy,
        sender: str,
        sender_device: str,
        frame: SendMessage,
        *,
        copies: int,
    ) -> QueuedMessage:
        now_ns = self._clock.now_ns()
        key = copy.key
        return QueuedMessage(
            recipient=copy.owner,
            sender=sender,
            message_id=frame.message_id,
            body=frame.body,
            nonce=frame.nonce,
            sent_at=frame.sent_at,
            server_ts=now_ns // 1_000_000,
            seq=new_seq(now_ns // 1_000),
            expires_at=now_ns // 1_000_000_000 + self._ttl,
            from_device=sender_device if key is not None else None,
            key=key.key if key is not None else None,
            key_nonce=key.key_nonce if key is not None else None,
            to=copy.to,
            copies=copies,
        )

    def _deliver_fresh(self, profile: Profile, fresh: Sequence[QueuedMessage]) -> None:
        """Hand each copy to its device's live connections (every post together); a
        device that took none gets a push (content-free) for its own queue."""
        devices = [device_of_queue(message.recipient) for message in fresh]
        frames = [message.frame() for message in fresh]
        taken = self._live.deliver_copies(profile, list(zip(devices, frames, strict=True)))
        offline: list[str] = []
        for device, took in zip(devices, taken, strict=True):
            if took:
                count(Metric.MESSAGES_DELIVERED_LIVE)
            else:
                count(Metric.MESSAGES_LEFT_QUEUED)
                offline.append(device)
        if offline:
            self._offline.something_queued(profile, "message", offline)

    def _ack(self, message_id: str, server_ts: int) -> AckFrame:
        """The sender's ack: stored, and under which epoch of this cell, the recipient's home
        (docs/protocol.md §7: the sender keeps it with the message, and sends the message
        again if the cell's epoch moves on). A resend answered after a switch gets the new
        epoch. `dv` is 0 here: the version the caller's cell knows is that cell's to set
        (handlers/send_message.py), which for a relayed message is not this one."""
        epoch = self._epoch.current()
        return AckFrame(message_id=message_id, server_ts=server_ts, epoch=epoch, dv=0)

    def _store_within_caps(
        self, messages: Sequence[QueuedMessage]
    ) -> list[tuple[QueuedMessage, bool]]:
        """Store the recipient's copies of a message that fits the queue caps of every
        one of its devices' queues (docs/protocol.md §2: each queue holds at most so
        many, in all and from one sender): (each stored copy, True if this call stored
        it). A resend of a message still stored is answered as before even when a queue
        is full; a new one past a cap in any queue is QueueFull, and nothing is stored."""
        first = messages[0]
        now_s = self._clock.now_s()
        admitted: list[Counted] = []
        try:
            for message in messages:
                admitted.append(
                    self._caps.admit(message.recipient, first.sender, now_s, message.expires_at)
                )
        except QueueFull:
            for counted in admitted:
                self._caps.take_back(counted)
            stored = self._queue.get(first.recipient, first.id)
            if isinstance(stored, QueuedMessage) and is_live(stored.expires_at, now_s):
                return [(stored, False)]
            raise
        try:
            results = [self._queue.store_message(message, now_s) for message in messages]
        except Exception:
            for counted in admitted:
                self._caps.take_back(counted)
            raise
        for counted, (_, fresh) in zip(admitted, results, strict=True):
            if not fresh:
                self._caps.take_back(counted)  # counted once already, when it was stored
        return results
