"""Our messages on their way to the server: one at a time, the same frame until acked.

The outbox is the history's `pending` messages, each with the exact frame that carries
it (`store.add_outgoing`). One task sends the oldest, waits for its `ack`, and only
then goes on to the next, so the server queues our messages in the order we wrote
them. Without an answer the same frame goes again, backing off; on a new connection
it goes again at once, once the connection is set up (our presence visibility first:
`Session.ready`). A resend is harmless: the server answers it with the same ack and
never delivers it twice while it holds it.

A message keeps its frame until its `delivered` receipt: after a failover (a new
`epoch`, or the directory moved our home cell: docs/protocol.md §7) the server may have lost
it, so `resend_undelivered` puts every sent-but-undelivered message back in the
outbox, and it goes again, byte for byte. Its recipient drops the copy it may hold.
Beyond §7, a failover of a peer's cell (the directory moved it) puts back the
undelivered messages to the users of that cell only, through the same call.

Which refusals are worth another try, and the backoff, are the client rules'
(`messenger_protocol.client_rules`), which the JavaScript SDK's outbox shares.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from messenger_client.connection import Connection, first_of
from messenger_client.errors import NotConnected, RequestFailed, SendRefused, UnknownUser
from messenger_client.events import Event, SendFailed, StatusChanged
from messenger_client.store import HistoryStore, MessageStatus, StoredMessage
from messenger_protocol.client_rules import RETRYABLE_CODES, backoff_delay, resend_wait
from messenger_protocol.names import ErrorCode

log = logging.getLogger(__name__)


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
    ) -> None:
        self._store = store
        self._connection = connection
        self._resend_base = resend_base
        self._resend_cap = resend_cap
        self._publish = publish
        self._wake = asyncio.Event()
        self._head: tuple[str, asyncio.Future[_Outcome]] | None = None
        self._waiters: dict[str, list[asyncio.Future[StoredMessage]]] = {}

    def wake(self) -> None:
        """Something was added, or a connection opened: look at the outbox again."""
        self._wake.set()

    def resend_undelivered(self, to: Callable[[str], bool] | None = None) -> list[str]:
        """After a failover: every message without a `delivered` receipt goes again (with
        `to`: only those to the peers it accepts, whose cell failed over)."""
        marked = self._store.mark_undelivered_for_resend(to)
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
                await self._wake.wait()
                continue
            try:
                await self._deliver(entry.message_id, entry.peer, entry.frame)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the outbox failed on one message; retrying")
                await asyncio.sleep(self._resend_base)

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

    def acked(self, message_id: str, server_ts: int | None) -> None:
        """An `ack` frame: the server stored the message (maybe a resend's second ack)."""
        if self._store.mark_sent(message_id, server_ts):
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
                if result.code in RETRYABLE_CODES:
                    attempt += 1
                    await asyncio.sleep(resend_wait(delay, result.retry_after))
                    continue
                self._fail(message_id, peer, result)
            return

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
