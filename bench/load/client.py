"""One user's device in a load run: a careful client as docs/protocol.md describes it.

It sends one message at a time (the next after the previous `ack`), sends the same
frame again after `RATE_LIMITED`, an `INTERNAL` error, API Gateway's own error frames or
an ack that never came, acknowledges every delivered item (a few milliseconds' worth
batched into one `ack` frame), drops duplicates by `(from, messageId)`, and sends `sync`
after every reconnect. Along the way it notes in the run's ledger what became of each
message, for the checks.

It is the source of truth docs/protocol.md §7 asks for: it keeps every frame it sent until
that message's `delivered` receipt, and sends them all again (the same frames, in the
order first sent, before anything new) when a `syncDone` names an epoch other than the
last one it saw, or when the directory moves its home cell; and, beyond §7 as the SDKs
do, those to the users of a cell the directory moved (`note_cells_moved`). With cells it
connects to its home (the run's directory) and, when a handshake fails, asks the run to
fetch the directory again, as the SDK does. A `MOVED` answer (its home's shards moved to
another cell, docs/protocol.md §6 "Shard moves") closes the connection and sends the same
frame again from the new home. With the run's `seen` option it marks every message it
reads `seen` and keeps each mark until its `seenStored`.

What it retries and how it backs off are the SDKs' rules (messenger_protocol.client_rules:
the retryable codes, API Gateway's error frames, `backoff_delay`); its timings are its
own, shorter than the SDKs', because a run measures the stack, not a phone's patience.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bench.load.ledger import Sent
from bench.protocol_client import (
    BenchUser,
    GatewayError,
    Received,
    open_socket,
    read_frame,
)
from messenger_client.errors import UnreadableMessage
from messenger_protocol.client_rules import (
    GATEWAY_ERROR_MESSAGES,
    RETRYABLE_CODES,
    backoff_delay,
    resend_wait,
)
from messenger_protocol.frames import (
    Ack,
    AckFrame,
    ErrorFrame,
    MarkSeen,
    MessageFrame,
    Ping,
    PongFrame,
    ReceiptFrame,
    SeenStoredFrame,
    Sync,
    SyncDoneFrame,
)
from messenger_protocol.limits import MAX_IDS_PER_FRAME
from messenger_protocol.names import ErrorCode, ReceiptStatus

if TYPE_CHECKING:
    from bench.load.run import LoadRun

# How long a client waits for an ack before sending the same frame again.
ACK_TIMEOUT_SECONDS = 60.0
GOING_AWAY = 1001
SYNC_TIMEOUT_SECONDS = 60.0
OPEN_TIMEOUT_SECONDS = 60.0
# A client gathers acks for this long before it sends one ack frame for all of them.
ACK_BATCH_SECONDS = 0.01
BACKOFF_FIRST_SECONDS = 0.05
BACKOFF_MAX_SECONDS = 2.0
HANDSHAKE_ATTEMPTS = 4
# Answers after which the same frame goes again: the refusals the SDKs retry, and API
# Gateway's own error frames. RATE_LIMITED stored nothing; after the others the message
# may or may not be stored: either way the same frame is the answer.
RESEND_AFTER = RETRYABLE_CODES | frozenset(GATEWAY_ERROR_MESSAGES)

Answer = AckFrame | ErrorFrame | GatewayError


class ConnectionLost(Exception):
    """The connection a send waits on closed before its answer came."""


class SyncRefused(Exception):
    """The cell refused a sync (its user's range is being moved: RATE_LIMITED with a
    retryAfter; MOVED; a gateway error): the same sync goes again after the wait."""

    def __init__(self, retry_after_ms: int | None) -> None:
        super().__init__(retry_after_ms)
        self.retry_after_ms = retry_after_ms


class LoadFailure(Exception):
    """The run could not go on (a refused frame, a handshake refused...)."""


@dataclass
class Delivered:
    server_ts: int
    item_id: str


class LoadClient:
    """One user's device: a careful client as docs/protocol.md describes it."""

    def __init__(self, run: LoadRun, user: BenchUser) -> None:
        self.run = run
        self.user = user
        self.socket: ClientConnection | None = None
        self.epoch = 0  # which of this user's connections is the current one
        # The home cell's epoch in the last syncDone (docs/protocol.md §7), and its URL.
        self.cell_epoch: str | None = None
        self.home_url: str | None = None
        # Every frame sent and not yet receipted `delivered`, by messageId, in send order.
        self._undelivered: dict[str, tuple[Sent, str]] = {}
        # Those of them a failover put back to go again (the SDKs' `resend` mark).
        self._marked: set[str] = set()
        self._resending = False
        self.online = False
        self.in_sync = False  # between sending `sync` and reading its `syncDone`
        self._sync_done: asyncio.Future[int] | None = None
        self._waiting: dict[str, asyncio.Future[Answer]] = {}
        self._ack_ids: list[str] = []
        # The planned message behind each message item not acknowledged yet.
        self._acking: dict[str, Sent] = {}
        self._ack_timer: asyncio.TimerHandle | None = None
        self._stored: dict[tuple[str, str], Delivered] = {}
        self._receipts_seen: set[str] = set()
        # With `seen`: the messages marked, and each markSeen frame until its seenStored.
        self._marked_seen: set[tuple[str, str]] = set()
        self._marks_pending: dict[tuple[str, tuple[str, ...]], str] = {}
        # Per sender, the last message that arrived on this connection outside a sync.
        self._last_live: dict[str, int] = {}
        # A send (frame out, ack back) and a reconnect never overlap.
        self.lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def user_id(self) -> str:
        return self.user.user_id

    # --- connection ---

    async def connect(self, *, first: bool) -> None:
        """Open a connection (keys on the first one only, as docs/protocol.md §1 says).

        A refused handshake is tried again with a fresh nonce, as an app would, a few
        times: under load the server refuses some that it should have accepted, and the
        run counts them (docs/performance.md says why).
        """
        for attempt in range(1, HANDSHAKE_ATTEMPTS + 1):
            url = self.run.url_for(self.user_id)
            if self.home_url is not None and url != self.home_url:
                self.note_home_moved()
            self.home_url = url
            # Signed anew each time: a nonce is good once, even for a refused handshake.
            # After a refusal, in the first-connect form: a standby that took over may
            # not know the user yet (docs/protocol.md §7); the keys are the same ones.
            signed = self.user.signed_url(url, with_keys=first or attempt > 1)
            try:
                socket = await open_socket(signed, open_timeout=OPEN_TIMEOUT_SECONDS)
                break
            except (InvalidStatus, OSError) as refused:
                status = (
                    refused.response.status_code
                    if isinstance(refused, InvalidStatus)
                    else type(refused).__name__
                )
                if attempt == HANDSHAKE_ATTEMPTS:
                    raise LoadFailure(
                        f"{self.user_id}: handshake refused {status}, {attempt} times"
                    ) from refused
                self.run.tally.counts[f"handshakes refused ({status}), then retried"] += 1
                # The cell may have moved (a failover): the next attempt asks the directory.
                await self.run.refresh_directory()
                # Jittered by the process's random, not the run's: the churn the run
                # draws next must not depend on how many handshakes were refused.
                await asyncio.sleep(
                    backoff_delay(attempt, BACKOFF_FIRST_SECONDS, BACKOFF_MAX_SECONDS)
                )
        self.socket = socket
        self.epoch += 1
        self._last_live = {}
        self.online = True
        self._spawn(self._read(socket, self.epoch))

    async def close(self) -> None:
        socket, self.socket = self.socket, None
        self.online = False
        if socket is not None:
            await socket.close()

    def drop_connection(self) -> None:
        """Leave the connection at once (its close goes on in the background): the server
        closes it anyway, and the next frame goes through a new one."""
        socket, self.socket = self.socket, None
        self.online = False
        if socket is not None:
            self._spawn(socket.close())

    async def reconnect(self, offline_seconds: float) -> None:
        """Drop the connection, stay away a while, come back and catch up with `sync`."""
        async with self.lock:
            await self.flush_acks()
            await self.close()
            self.run.tally.counts["disconnects"] += 1
            await asyncio.sleep(offline_seconds)
            await self.connect(first=False)
            self.run.tally.counts["reconnects"] += 1
            await self.sync()

    async def _reopen_if_closed(self) -> bool:
        """Open a new connection if the server closed ours; True if it did."""
        if self.socket is not None and self.socket.close_code is None:
            return False
        self.run.tally.counts["connections the server closed, reopened"] += 1
        await self.connect(first=False)
        return True

    async def _ensure_connected(self) -> ClientConnection:
        """The open connection; reopens (and syncs) one the server closed."""
        if await self._reopen_if_closed():
            await self.sync()
        assert self.socket is not None
        return self.socket

    async def ping(self) -> None:
        """The protocol's keep-alive: a data frame, so API Gateway's idle timer restarts."""
        if self.socket is not None:
            with contextlib.suppress(ConnectionClosed):
                await self.socket.send(Ping().to_json())

    # --- sending ---

    async def send(self, sent: Sent, in_flight: asyncio.Semaphore) -> None:
        """Send one message until it is acked: again after RATE_LIMITED or a lost ack.

        Each attempt holds a slot of `in_flight` until its answer; backing off does not.
        The frame is kept until the message's `delivered` receipt (docs/protocol.md §7).
        """
        recipient = self.run.clients[sent.recipient]
        sent_at = int(time.time() * 1000)
        frame = self.user.message_frame(recipient.user, sent.message_id, sent.text, sent_at)
        self._undelivered[sent.message_id] = (sent, frame)
        await self._send_until_acked(sent, frame, in_flight)

    async def _send_until_acked(
        self, sent: Sent, frame: str, in_flight: asyncio.Semaphore | None
    ) -> None:
        recipient = self.run.clients[sent.recipient]
        resend = sent.acked_at is not None
        loop = asyncio.get_running_loop()
        refusals = 0
        while True:
            answer: asyncio.Future[Answer] = loop.create_future()
            try:
                async with in_flight or contextlib.nullcontext():
                    socket = await self._ensure_connected()
                    if self._resend_due and not self._resending:
                        # What the server may have lost goes first: each sender's order.
                        await self.resend_undelivered()
                        socket = await self._ensure_connected()
                    self._waiting[sent.message_id] = answer
                    if not resend:
                        sent.attempt_at = time.perf_counter()
                        if sent.first_attempt_at is None:
                            sent.first_attempt_at = sent.attempt_at
                        sent.recipient_epoch = recipient.epoch if recipient.online else None
                    await socket.send(frame)
                    reply = await asyncio.wait_for(answer, ACK_TIMEOUT_SECONDS)
            except TimeoutError:
                self.run.tally.counts["resent after no ack"] += 1
                sent.lost_acks += 1
                continue
            except (ConnectionClosed, ConnectionLost):
                sent.lost_acks += 1
                continue  # reconnect, then the same frame again
            finally:
                self._waiting.pop(sent.message_id, None)
            if isinstance(reply, AckFrame):
                if resend:
                    sent.resend_acks.append(reply.server_ts)
                    return
                sent.acked_at = time.perf_counter()
                sent.ack_server_ts = reply.server_ts
                self.run.note_acked()
                return
            code = reply.code if isinstance(reply, ErrorFrame) else reply.message
            if code == ErrorCode.MOVED:
                # Its home moved (§6): the server closes this connection; the next attempt
                # connects to the new home (a refused handshake asks the directory). MOVED
                # stored nothing: not a lost ack.
                self.run.tally.counts["resent after MOVED (reconnected home)"] += 1
                self.drop_connection()
                continue
            if code not in RESEND_AFTER:
                raise LoadFailure(f"{self.user_id} -> {sent.recipient}: {reply}")
            sent.lost_acks += code != ErrorCode.RATE_LIMITED
            self.run.tally.counts[f"resent after {code}"] += 1
            delay = backoff_delay(
                refusals, BACKOFF_FIRST_SECONDS, BACKOFF_MAX_SECONDS, self.run.rng
            )
            refusals += 1
            retry_after = reply.retry_after if isinstance(reply, ErrorFrame) else None
            await asyncio.sleep(resend_wait(delay, retry_after))

    # --- docs/protocol.md §7: the client is the source of truth ---

    def note_new_epoch(self, reason: str) -> None:
        """The server may have lost what it stored: resend what has no `delivered` yet."""
        self._mark_for_resend(reason)

    def note_home_moved(self) -> None:
        self.note_new_epoch("their home cell moved")

    def note_cells_moved(self, moved: Callable[[str], bool]) -> None:
        """Beyond §7, as the SDKs do: the directory moved the home cells of the recipients
        `moved` accepts; what was acked to them there and not delivered may be lost."""
        self._mark_for_resend("a recipient's home cell moved (beyond §7)", moved)

    def _mark_for_resend(self, reason: str, to: Callable[[str], bool] | None = None) -> None:
        """Put back every acked message without a `delivered` receipt (to the recipients
        `to` accepts), as the SDKs' outbox does; it goes again when this client is idle."""
        marked = [
            message_id
            for message_id, (sent, _) in self._undelivered.items()
            if sent.acked_at is not None and (to is None or to(sent.recipient))
        ]
        if marked:
            self.run.tally.counts[f"clients that resent after {reason}"] += 1
            self._marked.update(marked)
            self._spawn(self._resend_when_idle())

    @property
    def _resend_due(self) -> bool:
        return not self._marked.isdisjoint(self._undelivered)

    async def _resend_when_idle(self) -> None:
        """A client with nothing left to send resends on its own."""
        async with self.lock:
            if self._resend_due and not self._resending:
                await self.resend_undelivered()

    async def resend_undelivered(self) -> None:
        """Send again, in the order first sent, every marked message with no `delivered`
        receipt yet (the caller holds the lock, as for any send)."""
        self._resending = True
        try:
            while self._resend_due:
                due = [entry for key, entry in self._undelivered.items() if key in self._marked]
                self._marked.clear()  # a failover meanwhile marks them again
                for sent, frame in due:
                    if sent.message_id not in self._undelivered:
                        continue  # receipted meanwhile
                    sent.resends += 1
                    self.run.note_resent(sent)
                    await self._send_until_acked(sent, frame, None)
        finally:
            self._resending = False

    # --- receiving ---

    async def _read(self, socket: ClientConnection, epoch: int) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in socket:
                self._on_frame(read_frame(json.loads(raw)), epoch)
        if self.socket is socket:
            self.online = False  # the server closed it
            # No answer comes on it any more: a send waiting for one goes again now, and
            # so does a sync.
            for waiting in self._waiting.values():
                if not waiting.done():
                    waiting.set_exception(ConnectionLost())
            if self._sync_done is not None and not self._sync_done.done():
                self._sync_done.set_exception(ConnectionLost())
            if socket.close_code == GOING_AWAY:
                # The server went away (a failover, a restart): come back at once, as
                # an app does, rather than at the next send.
                self._spawn(self._come_back())

    async def _come_back(self) -> None:
        async with self.lock:
            if self.socket is not None and self.socket.close_code is not None:
                await self._ensure_connected()

    def _on_frame(self, frame: Received, epoch: int) -> None:
        if isinstance(frame, MessageFrame):
            self._on_message(frame, epoch)
        elif isinstance(frame, ReceiptFrame):
            self._on_receipt(frame)
        elif isinstance(frame, AckFrame):
            self._answer(frame.message_id, frame)
        elif isinstance(frame, ErrorFrame) and frame.ref in self._waiting:
            self._answer(frame.ref, frame)
        elif isinstance(frame, ErrorFrame) and frame.code in RESEND_AFTER | {ErrorCode.MOVED}:
            # Refused a frame no send waits on (an ack, a markSeen): an ack is made good
            # by the next sync's redelivery, a mark goes again until its seenStored.
            self.run.tally.counts[f"{frame.code} answers to acks and marks"] += 1
            self._refuse_sync(frame.retry_after)
        elif isinstance(frame, SeenStoredFrame):
            self._marks_pending.pop((frame.to, tuple(frame.message_ids)), None)
        elif isinstance(frame, PongFrame):
            pass
        elif isinstance(frame, SyncDoneFrame):
            self.in_sync = False
            if self.cell_epoch is not None and frame.epoch != self.cell_epoch:
                self.note_new_epoch("a new epoch")
            self.cell_epoch = frame.epoch
            if self._sync_done is not None and not self._sync_done.done():
                self._sync_done.set_result(frame.count)
        elif isinstance(frame, GatewayError):
            # API Gateway's answer when a function failed: it names no frame, but this
            # client has at most one send waiting, and sending it again is harmless.
            self.run.tally.counts[f"gateway '{frame.message}' frames"] += 1
            for message_id in list(self._waiting):
                self._answer(message_id, frame)
            self._refuse_sync(None)
        else:
            self.run.tally.counts["unexpected frames"] += 1
            self.run.tally.problem(f"{self.user_id} got {frame}")

    def _refuse_sync(self, retry_after_ms: int | None) -> None:
        """A refusal that names no frame, while a sync waits: it may be the sync's (a sync
        has no id), so the sync goes again rather than wait for a syncDone that will not
        come. (If it was an ack's, the sync asked twice costs redeliveries, dropped.)"""
        if self.in_sync and self._sync_done is not None and not self._sync_done.done():
            self._sync_done.set_exception(SyncRefused(retry_after_ms))

    def _answer(self, message_id: str | None, answer: Answer) -> None:
        """Hand the answer to the send waiting for it, if one is."""
        waiting = self._waiting.get(str(message_id))
        if waiting is not None and not waiting.done():
            waiting.set_result(answer)

    def _on_message(self, frame: MessageFrame, epoch: int) -> None:
        now = time.perf_counter()
        sent = self.run.ledger.get((frame.sender, frame.message_id))
        if sent is None or sent.recipient != self.user_id:
            self._queue_ack(frame.id)
            self.run.tally.problem(f"{self.user_id} got a message not meant for it: {frame}")
            return
        self._queue_ack(frame.id, sent)
        sent.copies_acked += 1
        first = self._stored.get(sent.key)
        if not self.in_sync and (first is None or first.server_ts == frame.server_ts):
            # Pushed live: a sender's messages reach one connection in the order sent.
            last = self._last_live.get(frame.sender, -1)
            if sent.pair_index < last or (sent.pair_index == last and first is None):
                self.run.tally.problem(
                    f"{frame.sender}->{self.user_id} #{sent.pair_index} arrived after #{last}"
                )
            self._last_live[frame.sender] = max(last, sent.pair_index)
        if first is not None:
            # Dropped by (from, messageId), as docs/protocol.md §2 asks: a sync hands over what
            # is still queued, and a resend after a lost ack may be stored again.
            self.run.tally.counts["redeliveries (dropped)"] += 1
            self.run.tally.counts["duplicate messages dropped"] += 1
            if frame.server_ts not in sent.copies:
                sent.copies.append(frame.server_ts)
            return
        sender = self.run.clients[frame.sender].user
        try:
            text = self.user.decrypt_from(sender, frame.body, frame.nonce)
        except UnreadableMessage as unreadable:
            text = None
            self.run.tally.problem(f"{frame.message_id}: {unreadable}")
        if text is not None and text != sent.text:
            self.run.tally.problem(f"{frame.message_id}: decrypted text differs")
        self._stored[sent.key] = Delivered(frame.server_ts, frame.id)
        self.run.note_received(self, sent)
        sent.received_at = now
        sent.received_live = not self.in_sync and sent.recipient_epoch == epoch
        sent.server_ts = frame.server_ts
        sent.copies.append(frame.server_ts)

    def _on_receipt(self, frame: ReceiptFrame) -> None:
        self._queue_ack(frame.id)
        if frame.id in self._receipts_seen:
            self.run.tally.counts["redeliveries (dropped)"] += 1
            return
        self._receipts_seen.add(frame.id)
        if frame.status not in (ReceiptStatus.DELIVERED, ReceiptStatus.SEEN) or (
            frame.status == ReceiptStatus.SEEN and not self.run.config.seen
        ):
            self.run.tally.problem(f"{self.user_id} got {frame}")
            return
        for message_id in frame.message_ids:
            sent = self.run.ledger.get((self.user_id, message_id))
            if sent is None or sent.recipient != frame.by:
                self.run.tally.problem(f"{self.user_id}: receipt for a message of no one: {frame}")
                continue
            if frame.status == ReceiptStatus.SEEN:
                sent.seen_receipts += 1
                continue
            sent.delivered_receipts += 1
            sent.receipted_at = time.perf_counter()
            self._undelivered.pop(message_id, None)

    # --- acknowledging ---

    def _queue_ack(self, item_id: str, sent: Sent | None = None) -> None:
        """Ack an item soon; `sent` is the planned message a message item carries."""
        self._ack_ids.append(item_id)
        if sent is not None:
            self._acking[item_id] = sent
        if len(self._ack_ids) >= MAX_IDS_PER_FRAME:
            self._spawn(self.flush_acks())
        elif self._ack_timer is None:
            loop = asyncio.get_running_loop()
            self._ack_timer = loop.call_later(
                ACK_BATCH_SECONDS, lambda: self._spawn(self.flush_acks())
            )

    async def flush_acks(self) -> None:
        """Send everything received so far in `ack` frames of at most 100 ids."""
        if self._ack_timer is not None:
            self._ack_timer.cancel()
            self._ack_timer = None
        while self._ack_ids and self.socket is not None:
            ids = list(dict.fromkeys(self._ack_ids[:MAX_IDS_PER_FRAME]))
            del self._ack_ids[:MAX_IDS_PER_FRAME]
            try:
                await self.socket.send(Ack(ids=ids).to_json())
            except ConnectionClosed:
                # Still queued on the server: they come again with the next sync.
                self._ack_ids[:0] = ids
                return
            read = []
            for item_id in ids:
                sent = self._acking.pop(item_id, None)
                if sent is not None:
                    sent.recipient_acked = True
                    read.append(sent)
            if self.run.config.seen:
                await self.mark_seen(read)

    async def mark_seen(self, read: list[Sent]) -> None:
        """Mark what was read `seen`, one markSeen per sender (kept until seenStored)."""
        by_sender: dict[str, list[str]] = {}
        for sent in read:
            if sent.key not in self._marked_seen:
                self._marked_seen.add(sent.key)
                by_sender.setdefault(sent.sender, []).append(sent.message_id)
        for sender, message_ids in by_sender.items():
            frame = MarkSeen(to=sender, message_ids=message_ids).to_json()
            self._marks_pending[(sender, tuple(message_ids))] = frame
            with contextlib.suppress(ConnectionClosed):
                if self.socket is not None:
                    await self.socket.send(frame)

    async def resend_marks(self) -> None:
        """Send again every markSeen without its seenStored yet (§7's rule for marks)."""
        async with self.lock:
            for frame in list(self._marks_pending.values()):
                socket = await self._ensure_connected()
                with contextlib.suppress(ConnectionClosed):
                    await socket.send(frame)

    @property
    def marks_pending(self) -> int:
        return len(self._marks_pending)

    async def finish_resends(self) -> None:
        """Wait until a resend this client owes (§7) has gone out and been acked."""
        async with self.lock:
            if self._resend_due and not self._resending:
                await self.resend_undelivered()

    @property
    def owes_resend(self) -> bool:
        return self._resend_due or self._resending

    @property
    def acks_pending(self) -> int:
        return len(self._ack_ids)

    # --- catching up ---

    async def sync(self) -> int:
        """Ask for everything queued; how many items the server said it sent."""
        refusals = 0
        while True:
            await self._reopen_if_closed()
            assert self.socket is not None
            self._sync_done = asyncio.get_running_loop().create_future()
            self.in_sync = True
            try:
                await self.socket.send(Sync().to_json())
                count = await asyncio.wait_for(self._sync_done, SYNC_TIMEOUT_SECONDS)
            except (ConnectionClosed, ConnectionLost):
                # Closed before its syncDone (MOVED, §6): the same sync at the new home.
                self.run.tally.counts["syncs sent again after the connection closed"] += 1
                continue
            except SyncRefused as refused:
                # Asking again is harmless: what comes twice is dropped by (from, messageId).
                self.run.tally.counts["syncs sent again after a refusal"] += 1
                delay = backoff_delay(
                    refusals, BACKOFF_FIRST_SECONDS, BACKOFF_MAX_SECONDS, self.run.rng
                )
                refusals += 1
                await asyncio.sleep(resend_wait(delay, refused.retry_after_ms))
                continue
            await self.flush_acks()
            return count

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
