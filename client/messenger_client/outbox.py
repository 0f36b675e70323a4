"""Our messages on their way to the server: one at a time, the same frame until acked.

The outbox is the history's `pending` messages, each with the exact frame that carries
it (`store.add_outgoing`). One task sends the oldest, waits for its `ack`, and only
then goes on to the next, so the server queues our messages in the order we wrote
them. Without an answer the same frame goes again, backing off; on a new connection
it goes again at once, once the connection is set up (our presence visibility first:
`Session.ready`). A resend is harmless: the server answers it with the same ack and
never delivers it twice while it holds it.

A message keeps its frame until its `delivered` receipt, and where its last `ack` says
it was stored (`StoredAt`: the ack's epoch, the cell, the directory version): after a
failover (docs/protocol.md §7, the rules in `messenger_client.failover`) the server may
have lost it, so `resend_undelivered` puts the sent-but-undelivered messages the rule
names back in the outbox, and they go again, byte for byte. Their recipient drops the
copy it may hold. A message refused UNKNOWN_RECIPIENT soon after its recipient's cell
changed epoch is kept and tried again later, backing off, for up to a day (§7); the
others go on meanwhile.

Which refusals are worth another try, and the backoff, are the client rules'
(`messenger_protocol.client_rules`), which the JavaScript SDK's outbox shares.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from messenger_client.connection import Connection, first_of
from messenger_client.errors import NotConnected, RequestFailed, SendRefused, UnknownUser
from messenger_client.events import Event, SendFailed, StatusChanged
from messenger_client.store import HistoryStore, MessageStatus, StoredAt, StoredMessage
from messenger_protocol.client_rules import (
    RETRYABLE_CODES,
    UNKNOWN_RECIPIENT_RETRY_CAP_SECONDS,
    UNKNOWN_RECIPIENT_RETRY_FOR_SECONDS,
    backoff_delay,
    resend_wait,
)
from messenger_protocol.names import ErrorCode

log = logging.getLogger(__name__)

# STALE_DEVICES answers in a row before a message fails: the lists change rarely, so more
# means something keeps them from matching.
MAX_RESEALS = 5


@dataclass(frozen=True)
class _Acked:
    server_ts: int | None


@dataclass(frozen=True)
class _Refused:
    code: ErrorCode
    message: str
    retry_after: int | None = None  # ms, with RATE_LIMITED and QUEUE_FULL


# What ended the wait for an answer: an ack, a refusal, or None (a receipt moved the
# message past `sent`: the ack was lost, the message was not).
_Outcome = _Acked | _Refused | None


class Outbox:
    """Sends pending messages in order and tells who waits how each one ended."""

    def __init__(
        self,
        store: HistoryStore,
        connection: Connection,
        *,
        resend_base: float,
        resend_cap: float,
        publish: Callable[[Event], None],
        keep_unknown_recipient: Callable[[str], Awaitable[bool]] | None = None,
        reseal: Callable[[str, str], Awaitable[str | None]] | None = None,
    ) -> None:
        """`keep_unknown_recipient(peer)`: whether a refusal UNKNOWN_RECIPIENT may be a
        registration a failover lost (§7), so that the message is kept and tried again.
        `reseal(message_id, peer)`: after STALE_DEVICES (§8), the message's frame sealed
        again for the device lists fetched anew (None: it cannot be)."""
        self._store = store
        self._reseal = reseal
        self._keep_unknown_recipient = keep_unknown_recipient
        self._connection = connection
        self._resend_base = resend_base
        self._resend_cap = resend_cap
        self._publish = publish
        self._wake = asyncio.Event()
        self._head: tuple[str, asyncio.Future[_Outcome]] | None = None
        self._waiters: dict[str, list[asyncio.Future[StoredMessage]]] = {}
        # Every message this outbox was asked to send again (§7), answered or not.
        self.resent: set[str] = set()

    def wake(self) -> None:
        """Something was added, or a connection opened: look at the outbox again."""
        self._wake.set()

    def resend_undelivered(self, which: Callable[[str, StoredAt], bool] | None = None) -> list[str]:
        """After a failover: every message without a `delivered` receipt goes again (with
        `which`: only those it accepts, by recipient and where they were stored)."""
        marked = self._store.mark_undelivered_for_resend(which)
        self.resent.update(marked)
        if marked:
            log.info("sending %d undelivered messages again after a failover", len(marked))
            self.wake()
        return marked

    async def run(self) -> None:
        """Send pending messages one at a time, oldest first, each until acked or refused."""
        while True:
            entry = self._store.next_pending()
            if entry is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._until_next_retry())
                continue
            try:
                await self._deliver(entry.message_id, entry.peer, entry.frame)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the outbox failed on one message; retrying")
                await asyncio.sleep(self._resend_base)

    def _until_next_retry(self) -> float | None:
        """Seconds until the earliest message kept for a later try is due (None: none)."""
        due = self._store.next_retry_at()
        return None if due is None else max(0.0, due / 1000 - time.time())

    async def wait_sent(self, message_id: str, timeout: float) -> StoredMessage:
        """Until the server stored our message; SendRefused / UnknownUser if refused."""
        future: asyncio.Future[StoredMessage] = asyncio.get_running_loop().create_future()
        waiters = self._waiters.setdefault(message_id, [])
        waiters.append(future)
        try:
            self._settle_waiters(message_id)
            return await asyncio.wait_for(future, timeout)
        finally:
            with contextlib.suppress(ValueError):
                waiters.remove(future)
            if not waiters:
                self._waiters.pop(message_id, None)

    # --- what the server says -----------------------------------------------------------

    def acked(self, message_id: str, server_ts: int | None, stored: StoredAt) -> None:
        """An `ack` frame: the server stored the message (maybe a resend's second ack), at
        `stored` (§7)."""
        if self._store.mark_sent(message_id, server_ts, stored):
            message = self._store.get(self._store.me, message_id)
            if message is not None:
                self._publish(StatusChanged(message.peer, (message_id,), MessageStatus.SENT))
        self._settle_head(message_id, _Acked(server_ts))
        self._settle_waiters(message_id)

    def refused(
        self, ref: str | None, code: ErrorCode, message: str, retry_after: int | None = None
    ) -> bool:
        """An `error` frame; True if it refused the message being sent (its ref)."""
        if self._head is None or ref != self._head[0]:
            return False
        self._settle_head(self._head[0], _Refused(code, message, retry_after))
        return True

    def moved_on(self, message_ids: list[str]) -> None:
        """A receipt moved these messages past `sent`: no need to wait for their ack."""
        for message_id in message_ids:
            self._settle_head(message_id, None)
            self._settle_waiters(message_id)

    # --- sending -------------------------------------------------------------------------

    async def _deliver(self, message_id: str, peer: str, frame: str) -> None:
        loop = asyncio.get_running_loop()
        attempt = 0
        while self._store.needs_sending(message_id):
            session = await self._connection.wait_session()
            await first_of(session.ready, session.ended, timeout=self._resend_cap)
            if session.ended.done():
                continue
            outcome: asyncio.Future[_Outcome] = loop.create_future()
            self._head = (message_id, outcome)
            try:
                await self._connection.send(frame)  # the very same frame, every time
            except NotConnected:
                self._head = None
                await first_of(session.ended, timeout=self._resend_base)
                continue
            delay = backoff_delay(attempt, self._resend_base, self._resend_cap)
            await first_of(outcome, session.ended, timeout=delay)
            self._head = None
            if not outcome.done():
                if not session.ended.done():
                    attempt += 1  # no answer in time: the same frame again
                continue  # a new connection: resend on it at once
            result = outcome.result()
            if isinstance(result, _Refused):
                stale = result.code == ErrorCode.STALE_DEVICES
                if stale and self._reseal is not None and attempt < MAX_RESEALS:
                    resealed = await self._reseal(message_id, peer)
                    if resealed is not None:
                        frame, attempt = resealed, attempt + 1
                        continue  # the same messageId, for the lists the server holds
                if result.code in RETRYABLE_CODES:
                    attempt += 1
                    await asyncio.sleep(resend_wait(delay, result.retry_after))
                    continue
                unknown = result.code == ErrorCode.UNKNOWN_RECIPIENT
                if unknown and await self._kept(message_id, peer):
                    return
                self._fail(message_id, peer, result)
            return

    async def _kept(self, message_id: str, peer: str) -> bool:
        """§7: refused UNKNOWN_RECIPIENT soon after the recipient's cell changed epoch: kept
        for a later try (the others go on meanwhile), for up to a day."""
        if self._keep_unknown_recipient is None or not await self._keep_unknown_recipient(peer):
            return False
        kept = self._store.keep_for_retry(
            message_id,
            base_ms=int(self._resend_base * 1000),
            cap_ms=int(UNKNOWN_RECIPIENT_RETRY_CAP_SECONDS * 1000),
            retry_for_ms=int(UNKNOWN_RECIPIENT_RETRY_FOR_SECONDS * 1000),
        )
        if kept:
            log.info("message %s refused UNKNOWN_RECIPIENT after a failover: kept", message_id)
        return kept

    def _fail(self, message_id: str, peer: str, refusal: _Refused) -> None:
        if self._store.mark_failed(message_id, f"{refusal.code}: {refusal.message}"):
            log.info("message %s refused: %s", message_id, refusal.code)
            self._publish(SendFailed(peer, message_id, refusal.code, refusal.message))
        self._settle_waiters(message_id)

    def _settle_head(self, message_id: str, outcome: _Outcome) -> None:
        if self._head is not None and self._head[0] == message_id:
            future = self._head[1]
            if not future.done():
                future.set_result(outcome)

    def _settle_waiters(self, message_id: str) -> None:
        """Resolve `wait_sent` callers once the message is acked or failed."""
        waiters = self._waiters.get(message_id)
        if not waiters:
            return
        message = self._store.get(self._store.me, message_id)
        if message is None or message.status == MessageStatus.PENDING:
            return
        for future in waiters:
            if future.done():
                continue
            if message.status == MessageStatus.FAILED:
                future.set_exception(_refusal_of(message))
            else:
                future.set_result(message)


def _refusal_of(message: StoredMessage) -> RequestFailed:
    code, _, text = (message.error or "").partition(": ")
    if code == ErrorCode.UNKNOWN_RECIPIENT:
        return UnknownUser(message.peer, code)
    return SendRefused(code, text)
