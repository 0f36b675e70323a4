"""Load: many concurrent WebSocket clients exchange messages through the local stack.

`python -m bench load [--users N] [--messages M] [--churn FRACTION] [--seed S]` opens one
connection per user (all of them open at once), then sends M messages between random
pairs of users while a share of them disconnect and reconnect, and finally checks:

- zero lost: every message acknowledged to its sender was stored by its recipient;
- zero duplicated: no recipient keeps a message twice, and every redelivered copy is
  the very item first delivered (same queue id and serverTs), so the server never
  stored a message twice;
- order: each sender's messages to one recipient carry increasing serverTs, and arrive
  in that order on a connection outside a sync's catch-up;
- every message acknowledged by its recipient and answered by exactly one `delivered`
  receipt to its sender;
- the queue empty at the end (one Query per user's partition, no Scan).

It prints messages per second and the send→receive latency (p50/p95/p99), and exits
non-zero when a check fails. The clients behave as PROTOCOL.md asks of a careful client:
one message at a time per sender (the next after the previous `ack`, so the order of a
sender's messages is defined), the same frame sent again after `RATE_LIMITED` or a lost
ack, every delivered item acknowledged (a few milliseconds' worth batched into one `ack`
frame), duplicates dropped by `(from, messageId)`, and `sync` after every reconnect.

By default it runs the stack in this process, on loopback ports, with the per-sender rate
limit raised so that the test measures the stack rather than the limiter (the output says
which limit was in force). `--url` drives a `messenger local` started elsewhere instead
(start it with RATE_LIMIT_PER_MINUTE, RATE_LIMIT_BURST and, since every user registers
from one address, REGISTRATIONS_PER_IP_PER_HOUR in its environment; give
`--aws-endpoint` and `--queue-table` from its banner to check the queue table too).
Everything is bounded: `--timeout` seconds for the whole run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import itertools
import json
import os
import random
import resource
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, TextIO

import boto3
from nacl.public import Box, PrivateKey, PublicKey
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from messenger.contract import Env
from messenger_local import EmbeddedAws, LocalStack
from messenger_local.aws import FAKE_CREDENTIALS, REGION
from messenger_protocol.encoding import b64url_decode, b64url_encode
from messenger_protocol.limits import MAX_IDS_PER_FRAME
from tests.support.identities import TestUser
from tests.support.ws_client import open_socket, signed_url

FULL_USERS = 1_000
FULL_MESSAGES = 20_000
DEFAULT_CHURN = 0.2
DEFAULT_SEED = 7
# The full size takes about 45 minutes on a 2-core machine (docs/performance.md).
DEFAULT_TIMEOUT_SECONDS = 3600.0
DEFAULT_IN_FLIGHT = 32
# High enough that no sender of the full run meets the limiter: the run measures the
# stack. A test may set a low one to see the RATE_LIMITED path taken under load.
DEFAULT_RATE_PER_MINUTE = 600_000
DEFAULT_RATE_BURST = 10_000
# How long a client waits for an ack before sending the same frame again.
ACK_TIMEOUT_SECONDS = 60.0
SYNC_TIMEOUT_SECONDS = 60.0
OPEN_TIMEOUT_SECONDS = 60.0
# A client gathers acks for this long before it sends one ack frame for all of them.
ACK_BATCH_SECONDS = 0.01
BACKOFF_FIRST_SECONDS = 0.05
BACKOFF_MAX_SECONDS = 2.0
# Handshakes in flight at once while the clients connect (each is two invocations).
CONNECT_CONCURRENCY = 16
HANDSHAKE_ATTEMPTS = 4
MAX_DRAIN_ROUNDS = 20
PROGRESS_SECONDS = 30.0
# Well inside API Gateway's 10-minute idle timeout, even with a loaded event loop.
KEEPALIVE_SECONDS = 240.0
# Where in the run (as a share of all messages acked) churning users drop, and how long
# they stay away.
CHURN_WINDOW = (0.1, 0.8)
OFFLINE_SECONDS = (0.05, 1.0)
# What API Gateway sends (a frame with no type) when a function raised or took too long.
GATEWAY_ERRORS = ("Internal server error", "Endpoint request timed out")
# Plaintext length range: short chat messages.
TEXT_CHARS = (16, 200)


class LoadFailure(Exception):
    """The run could not go on (a refused frame, a handshake refused...)."""


@dataclass(frozen=True)
class LoadConfig:
    """The size and shape of one run."""

    users: int = FULL_USERS
    messages: int = FULL_MESSAGES
    churn: float = DEFAULT_CHURN
    seed: int = DEFAULT_SEED
    rate_per_minute: int = DEFAULT_RATE_PER_MINUTE
    rate_burst: int = DEFAULT_RATE_BURST
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    workers: int = 32  # the local stack's worker pool (its concurrent invocations)
    # Sends outstanding at once across all clients: the offered load. Every connection
    # stays open (and receives) throughout; this only paces how many wait for an ack.
    in_flight: int = DEFAULT_IN_FLIGHT


# --- what was sent, and what became of it ---------------------------------------------------


@dataclass
class Sent:
    """One planned message and everything the run learns about it."""

    sender: str
    recipient: str
    message_id: str
    pair_index: int  # this is the sender's pair_index-th message to this recipient
    text: str
    attempt_at: float = 0.0  # perf_counter() when the attempt that got acked went out
    recipient_epoch: int | None = None  # the recipient's connection then (None: offline)
    acked_at: float | None = None
    ack_server_ts: int | None = None
    received_at: float | None = None  # the first copy, at the recipient
    received_live: bool = False  # pushed to the connection that was open when it was sent
    server_ts: int | None = None  # of the first copy the recipient got
    # serverTs of every distinct stored copy the recipient got. More than one only when
    # the sender had to send the frame again after losing an ack, and the recipient had
    # acknowledged the first copy meanwhile (PROTOCOL.md §2 allows that redelivery).
    copies: list[int] = field(default_factory=list)
    lost_acks: int = 0  # attempts whose answer never came, or said INTERNAL
    recipient_acked: bool = False
    delivered_receipts: int = 0

    @property
    def key(self) -> tuple[str, str]:
        return (self.sender, self.message_id)


@dataclass
class Tally:
    """What happened during the run: counters, problems, timings."""

    counts: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        # A few examples are enough to debug from; the count says how many there were.
        self.counts["problems"] += 1
        if len(self.problems) < 20:
            self.problems.append(text)


def plan_messages(users: list[TestUser], count: int, rng: random.Random) -> list[Sent]:
    """`count` messages between random pairs of distinct users."""
    pair_counts: Counter[tuple[int, int]] = Counter()
    plan = []
    for number in range(count):
        sender = rng.randrange(len(users))
        recipient = rng.randrange(len(users) - 1)
        recipient += recipient >= sender
        pair_index = pair_counts[(sender, recipient)]
        pair_counts[(sender, recipient)] += 1
        length = rng.randint(*TEXT_CHARS)
        text = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(length))
        plan.append(
            Sent(
                sender=users[sender].user_id,
                recipient=users[recipient].user_id,
                message_id=f"load{number:08d}",
                pair_index=pair_index,
                text=text,
            )
        )
    return plan


@lru_cache(maxsize=4096)
def _box(private: bytes, public: bytes) -> Box:
    # Box() precomputes the shared key (a Curve25519 multiplication): done once per pair.
    return Box(PrivateKey(private), PublicKey(public))


def seal(sender: TestUser, recipient: TestUser, text: str) -> tuple[str, str]:
    """(body, nonce) as PROTOCOL.md §5 has it: a NaCl Box of {"text": ...}."""
    nonce = os.urandom(24)
    box = _box(bytes(sender.box_key), bytes(recipient.box_key.public_key))
    ciphertext = box.encrypt(json.dumps({"text": text}).encode(), nonce).ciphertext
    return b64url_encode(ciphertext), b64url_encode(nonce)


def unseal(recipient: TestUser, sender: TestUser, body: str, nonce: str) -> str:
    box = _box(bytes(recipient.box_key), bytes(sender.box_key.public_key))
    plaintext = json.loads(box.decrypt(b64url_decode(body), b64url_decode(nonce)))
    return str(plaintext["text"])


# --- one user's client ----------------------------------------------------------------------


@dataclass
class Delivered:
    server_ts: int
    item_id: str


class LoadClient:
    """One user's device: a careful client as PROTOCOL.md describes it."""

    def __init__(self, run: LoadRun, user: TestUser) -> None:
        self.run = run
        self.user = user
        self.socket: ClientConnection | None = None
        self.epoch = 0  # which of this user's connections is the current one
        self.online = False
        self.in_sync = False  # between sending `sync` and reading its `syncDone`
        self._sync_done: asyncio.Future[int] | None = None
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._ack_ids: list[str] = []
        self._ack_timer: asyncio.TimerHandle | None = None
        self._stored: dict[tuple[str, str], Delivered] = {}
        self._receipts_seen: set[str] = set()
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
        """Open a connection (keys on the first one only, as PROTOCOL.md §1 says).

        A refused handshake is tried again with a fresh nonce, as an app would, a few
        times: under load the server refuses some that it should have accepted, and the
        run counts them (docs/performance.md says why).
        """
        for attempt in range(1, HANDSHAKE_ATTEMPTS + 1):
            # Signed anew each time: a nonce is good once, even for a refused handshake.
            url = signed_url(self.run.ws_url, self.user, with_keys=first)
            try:
                # No websockets-level pings: API Gateway's idle timer ignores them; the
                # run sends the protocol's `ping` instead (LoadRun._keep_alive).
                socket = await open_socket(
                    url, open_timeout=OPEN_TIMEOUT_SECONDS, ping_interval=None
                )
                break
            except InvalidStatus as refused:
                status = refused.response.status_code
                if attempt == HANDSHAKE_ATTEMPTS:
                    raise LoadFailure(
                        f"{self.user_id}: handshake refused {status}, {attempt} times"
                    ) from refused
                self.run.tally.counts[f"handshakes refused ({status}), then retried"] += 1
                await asyncio.sleep(BACKOFF_FIRST_SECONDS * 2**attempt)
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
                await self.socket.send(json.dumps({"action": "ping"}))

    # --- sending ---

    async def send(self, sent: Sent, in_flight: asyncio.Semaphore) -> None:
        """Send one message until it is acked: again after RATE_LIMITED or a lost ack.

        Each attempt holds a slot of `in_flight` until its answer; backing off does not.
        """
        recipient = self.run.clients[sent.recipient]
        body, nonce = seal(self.user, recipient.user, sent.text)
        frame = json.dumps(
            {
                "action": "sendMessage",
                "messageId": sent.message_id,
                "to": sent.recipient,
                "body": body,
                "nonce": nonce,
                "sentAt": int(time.time() * 1000),
            }
        )
        backoff = BACKOFF_FIRST_SECONDS
        loop = asyncio.get_running_loop()
        while True:
            answer: asyncio.Future[dict[str, Any]] = loop.create_future()
            self._waiting[sent.message_id] = answer
            try:
                async with in_flight:
                    socket = await self._ensure_connected()
                    sent.attempt_at = time.perf_counter()
                    sent.recipient_epoch = recipient.epoch if recipient.online else None
                    await socket.send(frame)
                    reply = await asyncio.wait_for(answer, ACK_TIMEOUT_SECONDS)
            except TimeoutError:
                self.run.tally.counts["resent after no ack"] += 1
                sent.lost_acks += 1
                continue
            except ConnectionClosed:
                sent.lost_acks += 1
                continue  # reconnect, then the same frame again
            finally:
                self._waiting.pop(sent.message_id, None)
            if reply.get("type") == "ack":
                sent.acked_at = time.perf_counter()
                sent.ack_server_ts = int(reply["serverTs"])
                self.run.note_acked()
                return
            code = reply.get("code") or reply.get("message")
            if code not in ("RATE_LIMITED", "INTERNAL", *GATEWAY_ERRORS):
                raise LoadFailure(f"{self.user_id} -> {sent.recipient}: {reply}")
            # RATE_LIMITED stored nothing; after the other two the message may or may
            # not be stored: either way the same frame again is the answer.
            sent.lost_acks += code != "RATE_LIMITED"
            self.run.tally.counts[f"resent after {code}"] += 1
            await asyncio.sleep(backoff * self.run.rng.uniform(0.5, 1.5))
            backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)

    # --- receiving ---

    async def _read(self, socket: ClientConnection, epoch: int) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in socket:
                self._on_frame(json.loads(raw), epoch)
        if self.socket is socket:
            self.online = False  # the server closed it

    def _on_frame(self, frame: dict[str, Any], epoch: int) -> None:
        kind = frame.get("type")
        if kind == "message":
            self._on_message(frame, epoch)
        elif kind == "receipt":
            self._on_receipt(frame)
        elif kind == "ack" or (kind == "error" and frame.get("ref") in self._waiting):
            waiting = self._waiting.get(str(frame.get("messageId") or frame.get("ref")))
            if waiting is not None and not waiting.done():
                waiting.set_result(frame)
        elif kind == "pong":
            pass
        elif kind == "syncDone":
            self.in_sync = False
            if self._sync_done is not None and not self._sync_done.done():
                self._sync_done.set_result(int(frame["count"]))
        elif kind is None and frame.get("message") in GATEWAY_ERRORS:
            # API Gateway's answer when a function failed: it names no frame, but this
            # client has at most one send waiting, and sending it again is harmless.
            self.run.tally.counts[f"gateway '{frame['message']}' frames"] += 1
            for waiting in self._waiting.values():
                if not waiting.done():
                    waiting.set_result(frame)
        else:
            self.run.tally.counts["unexpected frames"] += 1
            self.run.tally.problem(f"{self.user_id} got {frame}")

    def _on_message(self, frame: dict[str, Any], epoch: int) -> None:
        now = time.perf_counter()
        sender_id, message_id = str(frame["from"]), str(frame["messageId"])
        sent = self.run.ledger.get((sender_id, message_id))
        self._queue_ack(str(frame["id"]))
        if sent is None or sent.recipient != self.user_id:
            self.run.tally.problem(f"{self.user_id} got a message not meant for it: {frame}")
            return
        server_ts = int(frame["serverTs"])
        first = self._stored.get(sent.key)
        if not self.in_sync and (first is None or first.server_ts == server_ts):
            # Pushed live: a sender's messages reach one connection in the order sent.
            last = self._last_live.get(sender_id, -1)
            if sent.pair_index < last or (sent.pair_index == last and first is None):
                self.run.tally.problem(
                    f"{sender_id}->{self.user_id} #{sent.pair_index} arrived after #{last}"
                )
            self._last_live[sender_id] = max(last, sent.pair_index)
        if first is not None:
            # Dropped by (from, messageId), as PROTOCOL.md §2 asks: a sync hands over what
            # is still queued, and a resend after a lost ack may be stored again.
            self.run.tally.counts["redeliveries (dropped)"] += 1
            if server_ts not in sent.copies:
                sent.copies.append(server_ts)
            return
        text = unseal(self.user, self.run.clients[sender_id].user, frame["body"], frame["nonce"])
        if text != sent.text:
            self.run.tally.problem(f"{message_id}: decrypted text differs")
        self._stored[sent.key] = Delivered(server_ts, str(frame["id"]))
        sent.received_at = now
        sent.received_live = not self.in_sync and sent.recipient_epoch == epoch
        sent.server_ts = server_ts
        sent.copies.append(server_ts)

    def _on_receipt(self, frame: dict[str, Any]) -> None:
        item_id = str(frame["id"])
        self._queue_ack(item_id)
        if item_id in self._receipts_seen:
            self.run.tally.counts["redeliveries (dropped)"] += 1
            return
        self._receipts_seen.add(item_id)
        if frame.get("status") != "delivered":
            self.run.tally.problem(f"{self.user_id} got {frame}")
            return
        for message_id in frame["messageIds"]:
            sent = self.run.ledger.get((self.user_id, str(message_id)))
            if sent is None or sent.recipient != frame.get("by"):
                self.run.tally.problem(f"{self.user_id}: receipt for a message of no one: {frame}")
                continue
            sent.delivered_receipts += 1

    # --- acknowledging ---

    def _queue_ack(self, item_id: str) -> None:
        self._ack_ids.append(item_id)
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
                await self.socket.send(json.dumps({"action": "ack", "ids": ids}))
            except ConnectionClosed:
                # Still queued on the server: they come again with the next sync.
                self._ack_ids[:0] = ids
                return
            for item_id in ids:
                sender_id, _, message_id = item_id.removeprefix("m#").partition("#")
                sent = self.run.ledger.get((sender_id, message_id))
                if sent is not None and item_id.startswith("m#"):
                    sent.recipient_acked = True

    @property
    def acks_pending(self) -> int:
        return len(self._ack_ids)

    # --- catching up ---

    async def sync(self) -> int:
        """Ask for everything queued; how many items the server said it sent."""
        await self._reopen_if_closed()
        assert self.socket is not None
        self._sync_done = asyncio.get_running_loop().create_future()
        self.in_sync = True
        await self.socket.send(json.dumps({"action": "sync"}))
        count = await asyncio.wait_for(self._sync_done, SYNC_TIMEOUT_SECONDS)
        await self.flush_acks()
        return count

    def _spawn(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            await work

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


# --- the run --------------------------------------------------------------------------------


class LoadRun:
    """All clients of one run, the plan, and what came of it."""

    def __init__(
        self,
        config: LoadConfig,
        ws_url: str,
        settle: Callable[[], Awaitable[None]],
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.ws_url = ws_url
        self.settle = settle
        self.progress = progress or (lambda line: None)
        self.rng = random.Random(config.seed)
        # Fresh user ids each run: a `messenger local` that ran before still knows the
        # old ones (with other keys).
        run_id = os.urandom(3).hex()
        users = [TestUser(f"load-{run_id}-{i:05d}") for i in range(config.users)]
        self.clients = {user.user_id: LoadClient(self, user) for user in users}
        self.plan = plan_messages(users, config.messages, self.rng)
        self.ledger = {sent.key: sent for sent in self.plan}
        self.tally = Tally()
        self.acked = 0
        # Churning users waiting for their moment: (acked count, tie-breaker, wake-up).
        self._churn_due: list[tuple[float, int, asyncio.Future[None]]] = []
        self.timings: dict[str, float] = {}
        self.peak_connections = 0

    async def connect_all(self) -> None:
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def connect(client: LoadClient) -> None:
            async with gate:
                await client.connect(first=True)

        started = time.perf_counter()
        await asyncio.gather(*(connect(client) for client in self.clients.values()))
        self.timings["connect"] = time.perf_counter() - started
        self.peak_connections = sum(client.online for client in self.clients.values())

    async def exchange(self) -> None:
        """Every sender sends its messages one after the other; some users churn."""
        by_sender: dict[str, list[Sent]] = {user_id: [] for user_id in self.clients}
        for sent in self.plan:
            by_sender[sent.sender].append(sent)

        in_flight = asyncio.Semaphore(self.config.in_flight)

        async def send_all(client: LoadClient, messages: list[Sent]) -> None:
            for sent in messages:
                async with client.lock:
                    await client.send(sent, in_flight)

        churners = self.rng.sample(
            sorted(self.clients), round(self.config.churn * len(self.clients))
        )
        started = time.perf_counter()
        senders = [
            send_all(self.clients[user_id], messages) for user_id, messages in by_sender.items()
        ]
        churn = [
            self._churn(
                self.clients[user_id],
                self.rng.uniform(*CHURN_WINDOW) * len(self.plan),
                self.rng.uniform(*OFFLINE_SECONDS),
            )
            for user_id in churners
        ]
        reporter = asyncio.get_running_loop().create_task(self._report_progress(started))
        try:
            await asyncio.gather(*senders, *churn)
        finally:
            reporter.cancel()
        self.timings["exchange"] = time.perf_counter() - started

    async def _report_progress(self, started: float) -> None:
        while True:
            await asyncio.sleep(PROGRESS_SECONDS)
            elapsed = time.perf_counter() - started
            self.progress(
                f"  ... {self.acked:,}/{len(self.plan):,} acked after {elapsed:.0f} s "
                f"({self.acked / elapsed:.1f}/s)"
            )

    def note_acked(self) -> None:
        """One more message acked: wake the churning users whose moment has come."""
        self.acked += 1
        while self._churn_due and self._churn_due[0][0] <= self.acked:
            _, _, due = heapq.heappop(self._churn_due)
            if not due.done():
                due.set_result(None)

    async def _churn(self, client: LoadClient, trigger: float, offline: float) -> None:
        """Once `trigger` messages are acked, drop the connection for `offline` seconds."""
        due: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._churn_due, (trigger, id(due), due))
        await due
        await client.reconnect(offline)

    async def drain(self) -> int:
        """Sync and ack until no one has anything queued; how many rounds it took."""
        # As many syncs at once as sends in flight: a thousand at once would wait for
        # the stack's workers past API Gateway's 29 s integration timeout.
        gate = asyncio.Semaphore(self.config.in_flight)
        started = time.perf_counter()
        for round_number in range(1, MAX_DRAIN_ROUNDS + 1):
            await asyncio.gather(*(client.flush_acks() for client in self.clients.values()))
            await self.settle()
            counts = await asyncio.gather(
                *(self._sync(client, gate) for client in self.clients.values())
            )
            await self.settle()
            pending = sum(client.acks_pending for client in self.clients.values())
            if sum(counts) == 0 and pending == 0:
                self.timings["drain"] = time.perf_counter() - started
                return round_number
        raise LoadFailure(f"the queue still held items after {MAX_DRAIN_ROUNDS} sync rounds")

    async def keep_alive(self) -> None:
        """Ping every client now and then: a user who neither sends nor acks for 10
        minutes would otherwise be closed by the gateway (1001), as API Gateway does."""
        while True:
            await asyncio.sleep(KEEPALIVE_SECONDS)
            for client in list(self.clients.values()):
                await client.ping()

    @staticmethod
    async def _sync(client: LoadClient, gate: asyncio.Semaphore) -> int:
        async with gate:
            return await client.sync()

    async def close_all(self) -> None:
        await asyncio.gather(
            *(client.close() for client in self.clients.values()), return_exceptions=True
        )


# --- checks and figures ---------------------------------------------------------------------


@dataclass
class Check:
    name: str
    failures: int
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.failures == 0


def check_run(run: LoadRun, queued_left: dict[str, int] | None) -> list[Check]:
    plan = run.plan
    lost = [s for s in plan if s.acked_at is not None and s.received_at is None]
    order_broken = 0
    by_pair: dict[tuple[str, str], list[Sent]] = {}
    for sent in plan:
        by_pair.setdefault((sent.sender, sent.recipient), []).append(sent)
    for messages in by_pair.values():
        stamps = [s.server_ts for s in sorted(messages, key=lambda s: s.pair_index)]
        order_broken += sum(
            1 for a, b in itertools.pairwise(stamps) if a is None or b is None or b < a
        )
    # A second stored copy is allowed only after the sender lost an ack and sent the
    # frame again (PROTOCOL.md §2); the recipient still keeps one.
    stored_twice = [s for s in plan if len(s.copies) > 1 and not s.lost_acks]
    wrong_receipts = [
        s
        for s in plan
        if not (
            s.delivered_receipts == 1
            if not s.lost_acks
            else 1 <= s.delivered_receipts <= len(s.copies)
        )
    ]
    checks = [
        Check("every message acked to its sender", sum(s.acked_at is None for s in plan)),
        Check(
            "zero lost (acked but never received)",
            len(lost),
            ", ".join(s.message_id for s in lost[:5]),
        ),
        Check(
            "zero duplicated (each kept once; stored once unless its ack was lost)",
            len(stored_twice),
            ", ".join(s.message_id for s in stored_twice[:5]),
        ),
        Check("each sender's order kept per recipient (serverTs)", order_broken),
        Check(
            "the ack names a copy the recipient got (serverTs)",
            sum(s.ack_server_ts not in s.copies for s in plan if s.received_at is not None),
        ),
        Check("every message acked by its recipient", sum(not s.recipient_acked for s in plan)),
        Check(
            "one delivered receipt per message (per stored copy)",
            len(wrong_receipts),
            ", ".join(f"{s.message_id}: {s.delivered_receipts}" for s in wrong_receipts[:5]),
        ),
        Check(
            "no other problem (order on a connection, decryption, stray frames)",
            run.tally.counts["problems"],
            "; ".join(run.tally.problems[:3])[:1000],
        ),
    ]
    if queued_left is None:
        checks.append(Check("queue empty (sync answered 0 for every user)", 0))
    else:
        left = {user: n for user, n in queued_left.items() if n}
        checks.append(
            Check(
                "queue table empty (one Query per user partition)",
                sum(left.values()),
                str(dict(list(left.items())[:5])) if left else "",
            )
        )
    return checks


def percentile(samples: list[float], share: float) -> float:
    """The nearest-rank percentile (share in 0..1) of a non-empty list."""
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), round(share * len(ordered) + 0.5)))
    return ordered[rank - 1]


def latency_line(label: str, samples: list[float]) -> str:
    if not samples:
        return f"  {label:<46} (no samples)"
    ms = [s * 1000 for s in samples]
    return (
        f"  {label:<46} p50 {percentile(ms, 0.50):7.1f}  p95 {percentile(ms, 0.95):7.1f}  "
        f"p99 {percentile(ms, 0.99):7.1f}  max {max(ms):7.1f} ms  (n={len(ms)})"
    )


@dataclass
class LoadResult:
    """What one run measured, and whether every check passed."""

    config: LoadConfig
    checks: list[Check]
    lines: list[str]
    messages_per_second: float
    wall_seconds: float
    peak_connections: int
    counts: Counter[str]

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)


def report(
    run: LoadRun, checks: list[Check], stack: LocalStack | None, rounds: int, wall: float
) -> LoadResult:
    plan = run.plan
    exchange = run.timings["exchange"]
    rate = len(plan) / exchange
    received = [s for s in plan if s.received_at is not None and s.acked_at is not None]
    live = [s for s in received if s.received_live]
    lines = [
        f"{run.config.users:,} users, one connection each, {run.peak_connections:,} open at once "
        f"(connected in {run.timings['connect']:.1f} s)",
        f"{len(plan):,} messages between random pairs, seed {run.config.seed}; "
        f"churn {run.config.churn:.0%}: {run.tally.counts['disconnects']} users dropped and "
        f"came back mid-run",
        (
            f"rate limit in force: {run.config.rate_per_minute:,}/min per sender, burst "
            f"{run.config.rate_burst:,}"
            if stack is not None
            else "rate limit: whatever the server was started with"
        )
        + f"; at most {run.config.in_flight} sends awaiting their ack",
        "",
        f"  messages/s (all sent and acked)              {rate:8.1f}   "
        f"({len(plan):,} in {exchange:.1f} s)",
        latency_line(
            "send -> receive, recipient online throughout",
            [s.received_at - s.attempt_at for s in live if s.received_at is not None],
        ),
        latency_line(
            "send -> receive, all (incl. after reconnect)",
            [s.received_at - s.attempt_at for s in received if s.received_at is not None],
        ),
        latency_line(
            "send -> ack", [s.acked_at - s.attempt_at for s in plan if s.acked_at is not None]
        ),
        "",
        "  counts: "
        + ", ".join(
            f"{name} {n}" for name, n in sorted(run.tally.counts.items()) if name != "problems"
        )
        or "none",
        f"  drain: {rounds} sync round(s), {run.timings.get('drain', 0):.1f} s; "
        f"wall time {wall:.1f} s; peak memory of this process "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024:,} MB",
    ]
    if stack is not None:
        lines += ["", "  invocations (route: count, p50 / p99 ms in the function, not ok):"]
        by_route: dict[str, list[float]] = {}
        not_ok: Counter[str] = Counter()
        for invocation in stack.invocations:
            by_route.setdefault(invocation.route, []).append(invocation.duration_ms)
            if invocation.status >= 300 or not invocation.outcome.startswith(("ok", "allow")):
                not_ok[f"{invocation.route} {invocation.outcome}"] += 1
        for route, durations in sorted(by_route.items()):
            lines.append(
                f"    {route:<12} {len(durations):7,}   {percentile(durations, 0.5):7.1f} "
                f"/ {percentile(durations, 0.99):7.1f}"
            )
        lines.append("    not ok: " + (", ".join(f"{k} x{n}" for k, n in not_ok.items()) or "none"))
    lines += ["", "checks:"]
    lines += [
        f"  [{'pass' if c.passed else 'FAIL'}] {c.name}"
        + ("" if c.passed else f": {c.failures} {c.detail}")
        for c in checks
    ]
    return LoadResult(run.config, checks, lines, rate, wall, run.peak_connections, run.tally.counts)


# --- driving it -----------------------------------------------------------------------------


def raise_open_files_limit(needed: int) -> tuple[int, int]:
    """Raise this process's RLIMIT_NOFILE towards `needed` (at most the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def queue_partitions(dynamodb: Any, table: str, user_ids: list[str]) -> dict[str, int]:
    """How many items each user's queue partition still holds (one Query each, no Scan)."""
    left = {}
    for user_id in user_ids:
        response = dynamodb.query(
            TableName=table,
            Select="COUNT",
            ConsistentRead=True,
            KeyConditionExpression="pk = :user",
            ExpressionAttributeValues={":user": {"S": user_id}},
        )
        left[user_id] = int(response["Count"])
    return left


async def drive(run: LoadRun) -> int:
    """Connect, exchange, drain: the whole run on `run`'s clients. Returns drain rounds."""
    keep_alive = asyncio.get_running_loop().create_task(run.keep_alive())
    try:
        await run.connect_all()
        await run.exchange()
        return await run.drain()
    finally:
        keep_alive.cancel()
        await run.close_all()


async def run_local(
    config: LoadConfig,
    aws: EmbeddedAws | None = None,
    progress: Callable[[str], None] | None = None,
) -> LoadResult:
    """One run against a LocalStack started here, on loopback ports."""
    # Each connection costs a descriptor on both sides, and these are in one process.
    raise_open_files_limit(4 * config.users + 1024)
    started = time.perf_counter()
    environment = {
        Env.RATE_LIMIT_PER_MINUTE.value: str(config.rate_per_minute),
        Env.RATE_LIMIT_BURST.value: str(config.rate_burst),
        # Every simulated user registers from this one address.
        Env.REGISTRATIONS_PER_IP_PER_HOUR.value: str(max(config.users, 1)),
    }
    async with (
        asyncio.timeout(config.timeout),
        LocalStack(
            host="127.0.0.1",
            port=0,
            aws_port=0,
            aws=aws,
            environment=environment,
            workers=config.workers,
        ) as stack,
    ):

        async def settle() -> None:
            await stack.settled(timeout=120.0)

        run = LoadRun(config, stack.ws_url, settle, progress)
        rounds = await drive(run)
        await stack.settled(timeout=60.0)
        loop = asyncio.get_running_loop()
        left = await loop.run_in_executor(
            None,
            queue_partitions,
            stack.aws.client("dynamodb"),
            stack.table_names[Env.QUEUE_TABLE.value],
            sorted(run.clients),
        )
        wall = time.perf_counter() - started
        return report(run, check_run(run, left), stack, rounds, wall)


async def run_remote(
    config: LoadConfig,
    url: str,
    aws_endpoint: str | None,
    queue_table: str | None,
    progress: Callable[[str], None] | None = None,
) -> LoadResult:
    """One run against a `messenger local` started elsewhere."""
    raise_open_files_limit(2 * config.users + 1024)
    started = time.perf_counter()

    async def settle() -> None:
        # Acks have no answer: give the server a moment to process them.
        await asyncio.sleep(0.5)

    async with asyncio.timeout(config.timeout):
        run = LoadRun(config, url, settle, progress)
        rounds = await drive(run)
        left = None
        if aws_endpoint and queue_table:
            client = boto3.client(
                "dynamodb",
                endpoint_url=aws_endpoint,
                region_name=REGION,
                aws_access_key_id=FAKE_CREDENTIALS["aws_access_key_id"],
                aws_secret_access_key=FAKE_CREDENTIALS["aws_secret_access_key"],
            )
            left = await asyncio.get_running_loop().run_in_executor(
                None, queue_partitions, client, queue_table, sorted(run.clients)
            )
    wall = time.perf_counter() - started
    return report(run, check_run(run, left), None, rounds, wall)


@contextlib.contextmanager
def functions_output_to_file(bench_name: str = "load") -> Iterator[tuple[TextIO, str]]:
    """Send what the functions print (EMF metrics, logs) to a file, as `messenger local`
    does; yields the console to print the report on, and the file's path."""
    path = os.path.join(tempfile.gettempdir(), f"messenger-bench-{bench_name}-functions.log")
    console = sys.stdout
    with open(path, "w", buffering=1, encoding="utf-8") as log_file:
        sys.stdout = log_file
        try:
            yield console, path
        finally:
            sys.stdout = console


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench load",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--users", type=int, default=FULL_USERS, help=f"users, one connection each ({FULL_USERS})"
    )
    parser.add_argument(
        "--messages",
        type=int,
        default=FULL_MESSAGES,
        help=f"messages between random pairs ({FULL_MESSAGES})",
    )
    parser.add_argument(
        "--churn",
        type=float,
        default=DEFAULT_CHURN,
        help=f"share of users who drop and reconnect mid-run ({DEFAULT_CHURN})",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="plan seed")
    parser.add_argument(
        "--rate-per-minute",
        type=int,
        default=DEFAULT_RATE_PER_MINUTE,
        help="RATE_LIMIT_PER_MINUTE given to the local stack's functions",
    )
    parser.add_argument(
        "--rate-burst",
        type=int,
        default=DEFAULT_RATE_BURST,
        help="RATE_LIMIT_BURST given to the local stack's functions",
    )
    parser.add_argument(
        "--in-flight",
        type=int,
        default=DEFAULT_IN_FLIGHT,
        help=f"sends waiting for their ack at once, all clients together ({DEFAULT_IN_FLIGHT})",
    )
    parser.add_argument(
        "--workers", type=int, default=32, help="the local stack's concurrent invocations (32)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        help="give up after this many seconds",
    )
    parser.add_argument("--url", help="drive a running `messenger local` at this ws:// URL")
    parser.add_argument("--aws-endpoint", help="with --url: its moto endpoint")
    parser.add_argument("--queue-table", help="with --url: its queue table")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv or [])
    if args.users < 2 or args.messages < 1 or not 0 <= args.churn <= 1:
        print("need at least 2 users, 1 message, and a churn between 0 and 1")
        return 2
    config = LoadConfig(
        users=args.users,
        messages=args.messages,
        churn=args.churn,
        seed=args.seed,
        rate_per_minute=args.rate_per_minute,
        rate_burst=args.rate_burst,
        timeout=args.timeout,
        workers=args.workers,
        in_flight=args.in_flight,
    )
    soft, _ = raise_open_files_limit(4 * config.users + 1024)
    with functions_output_to_file() as (console, log_path):

        def say(line: str) -> None:
            print(line, file=console, flush=True)

        say(
            f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start; "
            f"open files limit (RLIMIT_NOFILE) raised to {soft} for the sockets of both sides"
        )
        if args.url:
            say(f"driving {args.url}")
            result = asyncio.run(
                run_remote(config, args.url, args.aws_endpoint, args.queue_table, say)
            )
        else:
            say(f"local stack in this process, loopback ports; function output: {log_path}")
            result = asyncio.run(run_local(config, progress=say))
        say("\n".join(result.lines))
        say(f"load average {os.getloadavg()[0]:.1f} at the end")
    print("all checks passed" if result.passed else "SOME CHECKS FAILED")
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
