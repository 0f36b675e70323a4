"""Delivered items, stored one at a time in the order they came, then acknowledged.

The server sends us `message` and `receipt` items (live, or on `sync`) and keeps each
one until we ack its `id`. One task takes them in order:

- a message is deduplicated by `(from, messageId)`, opened with the sender's pinned
  keys (which verifies the sender), stored, and only then acked;
- a message that does not open is held: its ciphertext is stored with why
  (`HoldReason`: the sender's keys changed, or it is unreadable, as garbage is), and
  only then acked (the server forgets what we ack, so what we ack must be kept,
  docs/protocol.md §7). Once the user trusts the sender's new keys, `open_held` opens
  what was held and adds it to the history in order (by sentAt); what still does not
  open is unreadable;
- a receipt moves our messages on (delivered, seen), then is acked;
- an item too malformed to read is acked and dropped when it has an id, for the same
  reason;
- `syncDone` ends a page of a sync: the acks go at once, then the next page is asked
  for with the page's cursor while the server says `more`, and the last page ends the
  sync. A page refused for load (`RATE_LIMITED`: the server's storage overloaded, or
  our range being moved; `INTERNAL`) is asked for again on the same connection, no
  sooner than the refusal's `retryAfter` (docs/protocol.md §3) and with the resend
  backoff; left alone, the sync would never end until the next connection. Every sync
  asks for `batch` (items packed into `items` frames of up to 32 KB),
  and one page at a time is in flight on a connection. The cell's `epoch` is
  remembered (in the history), and a new one is announced (EpochChanged): after a
  failover the server may have lost its last writes, so every message of ours without
  a `delivered` receipt goes again, and every `seen` mark we sent (docs/protocol.md §7).

Whatever is not acked (the connection dropped, an unexpected failure) comes again with
the next sync. The `seen` marks of what the user read go out from here too, and each is
kept until its `seenStored`, with where it was stored (§7): a mark not answered when
its connection ends goes again on the next one, and one refused for load (RATE_LIMITED,
INTERNAL: the refusal names the action, not the marks) goes again on the same
connection with every unanswered mark, no sooner than the refusal's `retryAfter`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from messenger_client import crypto
from messenger_client.acks import AckBatcher
from messenger_client.connection import Connection
from messenger_client.errors import KeyChanged, NotConnected, UnknownUser, UnreadableMessage
from messenger_client.events import (
    EpochChanged,
    Event,
    MessageAdded,
    MessageRejected,
    StatusChanged,
    Synced,
)
from messenger_client.keystore import Identity
from messenger_client.outbox import Outbox
from messenger_client.pinning import KeyPinning
from messenger_client.presence import PresenceTracker
from messenger_client.store import (
    HistoryStore,
    HoldReason,
    MessageStatus,
    Rejection,
    StoredAt,
    StoredMessage,
)
from messenger_protocol.client_rules import (
    RESEND_BASE_SECONDS,
    RESEND_CAP_SECONDS,
    RETRYABLE_CODES,
    backoff_delay,
    resend_wait,
)
from messenger_protocol.encoding import is_item_id
from messenger_protocol.frames import MarkSeen, MessageFrame, ReceiptFrame, Sync, SyncDoneFrame
from messenger_protocol.limits import MAX_IDS_PER_FRAME
from messenger_protocol.names import ErrorCode, FrameType, ReceiptStatus

log = logging.getLogger(__name__)

# The history's meta key for the last syncDone `epoch` we saw.
EPOCH_KEY = "epoch"

_RECEIPT_STATUSES = {
    ReceiptStatus.DELIVERED: MessageStatus.DELIVERED,
    ReceiptStatus.SEEN: MessageStatus.SEEN,
}


@dataclass(frozen=True)
class MalformedItem:
    """A `message` or `receipt` frame the protocol's reader refused."""

    kind: FrameType
    item_id: object  # its `id` as it came, if it had one
    problem: str


Item = MessageFrame | ReceiptFrame | SyncDoneFrame | MalformedItem


class Inbox:
    """The receiving side of a client: items in, history and acks out."""

    def __init__(
        self,
        store: HistoryStore,
        identity: Identity,
        keys: KeyPinning,
        connection: Connection,
        outbox: Outbox,
        presence: PresenceTracker,
        *,
        ack_delay: float,
        publish: Callable[[Event], None],
        on_epoch: Callable[[str], None] = lambda epoch: None,
        resend_base: float = RESEND_BASE_SECONDS,
        resend_cap: float = RESEND_CAP_SECONDS,
    ) -> None:
        """`on_epoch(epoch)`: every `syncDone`'s epoch of our home cell, as it comes;
        `resend_base`, `resend_cap`: the backoff of a sync page asked for again."""
        self._store = store
        self._identity = identity
        self._keys = keys
        self._connection = connection
        self._outbox = outbox
        self._presence = presence
        self._publish = publish
        self._on_epoch = on_epoch
        self._acks = AckBatcher(connection, ack_delay, resend_base, resend_cap)
        # Each item with the number of the connection it came on.
        self._items: asyncio.Queue[tuple[int, Item]] = asyncio.Queue()
        self._synced = asyncio.Event()
        self._connection_number = 0
        self._page_in_flight = False  # a sync sent on this connection, its syncDone not in
        self._restart = False  # a new sync was asked for while a page was in flight
        self._round_count = 0  # items of the sync so far, over its pages
        self._page_after: str | None = None  # the cursor of the page in flight
        self._page_refusals = 0  # refusals of the page in flight, for the backoff
        self._page_retry: asyncio.Task[None] | None = None
        self._seen_refusals = 0  # markSeen refused since the last seenStored, for the backoff
        self._seen_retry: asyncio.Task[None] | None = None
        self._resend_base = resend_base
        self._resend_cap = resend_cap
        self.epoch: str | None = store.get_meta(EPOCH_KEY)

    def put(self, item: Item) -> None:
        """Queue an item; the connection's reader never waits for it to be stored."""
        self._items.put_nowait((self._connection_number, item))

    async def request_sync(self) -> None:
        """Ask for everything queued for us, page by page; `wait_synced` returns once it
        is all stored."""
        self._synced.clear()
        if self._page_in_flight:
            # Never two pages at once on a connection (their frames would interleave):
            # the sync starts over from the oldest item when the page in flight ends.
            self._restart = True
            return
        await self._start_sync()

    async def wait_synced(self) -> None:
        await self._synced.wait()

    def connection_lost(self) -> None:
        """A new connection syncs again, from the start, before we say "synced"."""
        self._synced.clear()
        self._store.unanswered_seen_again()
        self._connection_number += 1
        self._page_in_flight = False
        self._restart = False

    async def run(self) -> None:
        """Process the items one at a time, in the order they came."""
        while True:
            number, item = await self._items.get()
            try:
                await self._process(item, number)
            except asyncio.CancelledError:
                raise
            except NotConnected:
                pass  # not acked: the item comes again with the next sync
            except Exception:
                # Never crash on one bad item; unacked, it comes again with the next sync.
                log.exception("could not process a %s frame", type(item).__name__)

    async def report_seen(self) -> None:
        """Send the `seen` marks not sent yet (NotConnected when offline: they wait)."""
        # Acks first: what was seen was delivered, and its receipt should say so first.
        await self._acks.flush()
        for sender, ids in self._store.unreported_seen().items():
            for start in range(0, len(ids), MAX_IDS_PER_FRAME):
                chunk = ids[start : start + MAX_IDS_PER_FRAME]
                await self._connection.send(MarkSeen(to=sender, message_ids=chunk))
                self._store.mark_seen_reported(sender, chunk)

    def seen_stored(self, sender: str, message_ids: list[str], stored: StoredAt) -> None:
        """`seenStored`: the `seen` receipt of these marks is queued for `sender` (§7)."""
        self._seen_refusals = 0
        self._store.mark_seen_stored(sender, message_ids, stored)

    def resend_seen(self, which: Callable[[str, StoredAt], bool] | None = None) -> int:
        """§7: the `seen` marks stored (those `which` accepts, by sender and where they were
        stored) go again, now or on the next connection; how many."""
        marked = self._store.mark_seen_for_resend(which)
        if marked:
            log.info("sending %d seen marks again after a failover", marked)
        return marked

    def sync_refused(self, code: ErrorCode, retry_after: int | None) -> bool:
        """An `error` whose ref is `sync`: the page in flight was refused; True if that
        was it. A refusal for load asks for the same page again later (the module's
        docstring); any other leaves it to the next connection, as before."""
        if not self._page_in_flight:
            return False
        if code in RETRYABLE_CODES:
            self._page_refusals += 1
            backoff = backoff_delay(self._page_refusals - 1, self._resend_base, self._resend_cap)
            wait = resend_wait(backoff, retry_after)
            self._page_retry = asyncio.get_running_loop().create_task(
                self._ask_page_again(self._connection_number, wait)
            )
        return True

    def ack_refused(self, code: ErrorCode, retry_after: int | None) -> bool:
        """An `error` whose ref is `ack`; True if it was for load: the acks sent lately go
        again on this connection once its wait is over (messenger_client.acks)."""
        return self._acks.refused(code, retry_after)

    def seen_refused(self, code: ErrorCode, retry_after: int | None) -> bool:
        """An `error` whose ref is `markSeen`; True if it was for load and the unanswered
        marks go again once its wait is over (one wait at a time, however many marks
        were refused meanwhile: they all go then)."""
        if code not in RETRYABLE_CODES:
            return False
        if self._seen_retry is None or self._seen_retry.done():
            self._seen_refusals += 1
            backoff = backoff_delay(self._seen_refusals - 1, self._resend_base, self._resend_cap)
            self._seen_retry = asyncio.get_running_loop().create_task(
                self._report_seen_again(self._connection_number, resend_wait(backoff, retry_after))
            )
        return True

    async def _report_seen_again(self, connection_number: int, wait: float) -> None:
        await asyncio.sleep(wait)
        if connection_number != self._connection_number:
            return  # the connection is gone: the new one sends the unanswered marks
        self._store.unanswered_seen_again()
        with contextlib.suppress(NotConnected):  # else on the next connection
            await self.report_seen()

    async def _ask_page_again(self, connection_number: int, wait: float) -> None:
        await asyncio.sleep(wait)
        if connection_number != self._connection_number or not self._page_in_flight:
            return  # the connection is gone: the new one syncs anew
        if self._restart:
            self._restart = False
            await self._start_sync()
        else:
            with contextlib.suppress(NotConnected):  # else the next connection syncs
                await self._ask_page(self._page_after)

    async def close(self) -> None:
        """Send the seen marks and acks not sent yet, if still connected."""
        for retry in (self._page_retry, self._seen_retry):
            if retry is not None:
                retry.cancel()
        with contextlib.suppress(NotConnected):
            await self.report_seen()
        await self._acks.close()

    # --- one item ---------------------------------------------------------------------

    async def _process(self, item: Item, connection_number: int) -> None:
        match item:
            case MessageFrame():
                await self._receive_message(item)
            case ReceiptFrame():
                self._receive_receipt(item)
            case SyncDoneFrame():
                await self._end_of_page(item, connection_number)
            case MalformedItem(kind=kind, item_id=item_id, problem=problem):
                if is_item_id(item_id):
                    log.warning("acked and dropped a malformed %s item: %s", kind, problem)
                    self._acks.add(item_id)
                else:
                    log.warning("ignored a %s without an id", kind)

    # --- sync, page by page ---------------------------------------------------------------

    async def _start_sync(self) -> None:
        self._round_count = 0
        await self._ask_page(None)

    async def _ask_page(self, after: str | None) -> None:
        if after != self._page_after or not self._page_in_flight:
            self._page_refusals = 0  # a new page: its own backoff
        self._page_in_flight = True
        self._page_after = after
        try:
            await self._connection.send(Sync(after=after, batch=True))
        except NotConnected:
            self._page_in_flight = False
            raise

    async def _end_of_page(self, done: SyncDoneFrame, connection_number: int) -> None:
        # What the page brought is stored: ack it before asking for more.
        await self._acks.flush()
        if self._remember_epoch(done.epoch):
            with contextlib.suppress(NotConnected):  # else they go on the next connection
                await self.report_seen()
        if connection_number != self._connection_number:
            return  # a page of a connection that is gone: the new one syncs anew
        self._page_in_flight = False
        self._round_count += done.count
        if self._restart:
            self._restart = False
            await self._start_sync()
        elif done.more and done.cursor is not None:
            await self._ask_page(done.cursor)
        else:
            self._synced.set()
            self._publish(Synced(self._round_count))

    def _remember_epoch(self, epoch: str) -> bool:
        """True if the epoch changed from one we saw (§7 rule 1: everything goes again)."""
        self._on_epoch(epoch)
        if epoch == self.epoch:
            return False
        previous, self.epoch = self.epoch, epoch
        self._store.set_meta(EPOCH_KEY, epoch)
        if previous is not None:
            self._outbox.resend_undelivered()
            self.resend_seen()
        self._publish(EpochChanged(epoch, previous))
        return previous is not None

    # --- one message or receipt -------------------------------------------------------------

    async def _receive_message(self, frame: MessageFrame) -> None:
        if self._store.has_message(frame.sender, frame.message_id):
            self._acks.add(frame.id)  # a duplicate: already stored (or rejected) once
            return
        try:
            text = crypto.decode_plaintext(await self._open(frame))
        except (UnreadableMessage, KeyChanged, UnknownUser) as problem:
            await self._reject(frame, problem)
            return
        own_copy = frame.to is not None and frame.sender == self._store.me
        if own_copy:
            # Sent by another of our devices (§8): ours, to `to`, already stored.
            assert frame.to is not None
            stored = self._store.add_own_copy(
                frame.to, frame.message_id, text, frame.sent_at, frame.server_ts
            )
        else:
            stored = self._store.add_incoming(
                frame.sender, frame.message_id, text, frame.sent_at, frame.server_ts
            )
        self._acks.add(frame.id)
        if stored:
            message = self._store.get(frame.sender, frame.message_id)
            if message is not None:
                self._publish(MessageAdded(message))
            if not own_copy:
                with contextlib.suppress(NotConnected):  # the next connection subscribes anew
                    await self._presence.message_from(frame.sender)

    async def _open(self, frame: MessageFrame) -> bytes:
        """The plaintext: a Box from the sender's account key (§5), or sealed for several
        devices with the key boxed by the sending device, from the sender's verified list
        (§8); UnreadableMessage, KeyChanged (a list that does not verify), UnknownUser."""
        copy = crypto.sealed_copy(frame)
        if copy is None:
            keys = await self._keys.for_reading(frame.sender)
            return crypto.open_sealed(self._identity, keys, frame.body, frame.nonce)
        listing = await self._keys.sender_devices(frame.sender, copy.from_device)
        return crypto.open_copy(self._identity, listing, copy, frame.body, frame.nonce)

    async def _reject(self, frame: MessageFrame, problem: Exception) -> None:
        reason = str(problem)
        because = (
            HoldReason.KEY_CHANGED if isinstance(problem, KeyChanged) else HoldReason.UNREADABLE
        )
        if isinstance(problem, UnreadableMessage):
            # Tell a changed key (the user must act) from plain garbage.
            try:
                await self._keys.check(frame.sender)
            except KeyChanged as changed:
                reason, because = str(changed), HoldReason.KEY_CHANGED
            except Exception:  # best effort: the message is held either way (and `trust`
                # tries every held message of the sender, whatever the reason)
                log.debug("could not re-check the keys of %s", frame.sender)
        rejection = Rejection(frame.sender, frame.message_id, frame.sent_at, reason, because)
        # Stored (the ciphertext, to open after `trust`) before the ack: never dropped.
        if self._store.add_rejected(
            frame.sender,
            frame.message_id,
            frame.sent_at,
            reason,
            held=(frame.body, frame.nonce, frame.server_ts),
            held_because=because,
            copy=crypto.sealed_copy(frame),
        ):
            log.warning("held message %s from %s (%s)", frame.message_id, frame.sender, because)
            self._publish(MessageRejected(rejection))
        self._acks.add(frame.id)

    def open_held(self, sender: str) -> list[StoredMessage]:
        """Open what `sender` sent while their keys were not trusted, with the keys pinned
        now; what opens joins the history (in sentAt order) and is announced. What still
        does not open stays held, as unreadable: the keys are trusted, so it is not theirs."""
        keys = self._keys.pinned(sender)
        if keys is None:
            return []
        opened: list[StoredMessage] = []
        listing = self._keys.devices_of(sender)
        for held in self._store.held(sender):
            try:
                if held.copy is None:
                    plaintext = crypto.open_sealed(self._identity, keys, held.body, held.nonce)
                elif listing is None:
                    raise UnreadableMessage(f"no verified device list of {sender}")
                else:
                    plaintext = crypto.open_copy(
                        self._identity, listing, held.copy, held.body, held.nonce
                    )
                text = crypto.decode_plaintext(plaintext)
            except UnreadableMessage as problem:
                if held.held_because is not HoldReason.UNREADABLE:
                    self._store.mark_unreadable(held, str(problem))
                continue
            self._store.release_held(held, text)
            message = self._store.get(held.sender, held.message_id)
            if message is not None:
                opened.append(message)
                self._publish(MessageAdded(message))
        return opened

    def _receive_receipt(self, frame: ReceiptFrame) -> None:
        status = _RECEIPT_STATUSES[frame.status]
        changed = self._store.apply_receipt(frame.by, frame.message_ids, status)
        if changed:
            self._publish(StatusChanged(frame.by, tuple(changed), status))
            self._outbox.moved_on(changed)
        self._acks.add(frame.id)
