"""One load run: the users and their clients, the pace, the churn, progress and timeout,
and the stack it drives (started here, or a `messenger local` started elsewhere)."""

from __future__ import annotations

import asyncio
import heapq
import os
import random
import resource
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import boto3

from bench.load.checks import Check, check_run, queue_partitions
from bench.load.client import LoadClient, LoadFailure
from bench.load.ledger import Sent, Tally, plan_messages
from bench.load.report import LoadResult, report
from bench.local_stack import RATE_BURST, RATE_PER_MINUTE, loopback_stack
from bench.protocol_client import BenchUser
from messenger.contract import Env
from messenger_client.directory import fetch_directory, fetch_directory_key, moved_cells
from messenger_local import EmbeddedAws, LocalStack
from messenger_local.aws import FAKE_CREDENTIALS, REGION
from messenger_local.cells_harness import id_homed_in
from messenger_local.lambdas import DEFAULT_WORKERS
from messenger_protocol.cells import Directory

FULL_USERS = 1_000
FULL_MESSAGES = 20_000
DEFAULT_CHURN = 0.2
DEFAULT_SEED = 7
# The full size takes about 8 minutes on a 2-core machine (docs/performance.md).
DEFAULT_TIMEOUT_SECONDS = 3600.0
DEFAULT_IN_FLIGHT = 32
# Handshakes in flight at once while the clients connect (each is two invocations).
CONNECT_CONCURRENCY = 16
MAX_DRAIN_ROUNDS = 20
PROGRESS_SECONDS = 30.0
# Well inside API Gateway's 10-minute idle timeout, even with a loaded event loop.
KEEPALIVE_SECONDS = 240.0
# Where in the run (as a share of all messages acked) churning users drop, and how long
# they stay away.
CHURN_WINDOW = (0.1, 0.8)
OFFLINE_SECONDS = (0.05, 1.0)
# With cells: how often the clients look at the directory, and how soon after one fetch
# another may go (however many clients ask at once, e.g. after a failover).
DIRECTORY_WATCH_SECONDS = 1.0
DIRECTORY_REFETCH_SECONDS = 0.2
# Longer than the SDK's: the directory is served by the loaded stack itself.
DIRECTORY_FETCH_TIMEOUT_SECONDS = 30.0


@dataclass
class FailoverTimes:
    """perf_counter() times around a failover in the run (None: it did not happen)."""

    at: float | None = None  # the failover was asked for
    url: str | None = None  # where the failed cell's users connect now
    first_delivery: float | None = None  # first message received through it
    last_resend: float | None = None  # the last §7 resend went out


@dataclass(frozen=True)
class LoadConfig:
    """The size and shape of one run."""

    users: int = FULL_USERS
    messages: int = FULL_MESSAGES
    churn: float = DEFAULT_CHURN
    seed: int = DEFAULT_SEED
    # The per-sender rate limit given to a stack started here: by default high enough
    # that no sender meets it, so the run measures the stack.
    rate_per_minute: int = RATE_PER_MINUTE
    rate_burst: int = RATE_BURST
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    workers: int = DEFAULT_WORKERS  # the local stack's worker pool (concurrent invocations)
    # Sends outstanding at once across all clients: the offered load. Every connection
    # stays open (and receives) throughout; this only paces how many wait for an ack.
    in_flight: int = DEFAULT_IN_FLIGHT
    # None: a stack without cells. N: N cells (docs/protocol.md §6), the users spread evenly
    # over them, so that about (N-1)/N of the random pairs cross cells (half with 2).
    cells: int | None = None
    # Every recipient marks what it reads `seen` (markSeen, kept until its seenStored), and
    # the checks ask a `seen` receipt for every message.
    seen: bool = False


class LoadRun:
    """All clients of one run, the plan, and what came of it."""

    def __init__(
        self,
        config: LoadConfig,
        ws_url: str,
        settle: Callable[[], Awaitable[None]],
        progress: Callable[[str], None] | None = None,
        directory_url: str | None = None,
    ) -> None:
        self.config = config
        self.ws_url = ws_url
        # With cells: each client connects home, as the directory says (docs/protocol.md §6).
        self.directory_url = directory_url
        self.directory: Directory | None = None
        # Its public key (the stack serves it at /directory.key): read with the first
        # directory, then every document must verify against it (docs/protocol.md §6).
        self.directory_key: str | None = None
        self._directory_lock = asyncio.Lock()
        self._directory_fetched_at = 0.0
        self.failover = FailoverTimes()
        self.settle = settle
        self.progress = progress or (lambda line: None)
        self.rng = random.Random(config.seed)
        # Fresh user ids each run: a `messenger local` that ran before still knows the
        # old ones (with other keys).
        run_id = os.urandom(3).hex()
        users = [BenchUser.generate(user_id) for user_id in user_ids(run_id, config)]
        self.clients = {user.user_id: LoadClient(self, user) for user in users}
        self.plan = plan_messages(users, config.messages, self.rng)
        self.ledger = {sent.key: sent for sent in self.plan}
        self.tally = Tally()
        self.acked = 0
        # Churning users waiting for their moment: (acked count, tie-breaker, wake-up).
        self._churn_due: list[tuple[float, int, asyncio.Future[None]]] = []
        self.timings: dict[str, float] = {}
        self.peak_connections = 0

    # --- cells and failover ---

    def home_of(self, user_id: str) -> str | None:
        """The user's home cell (None without cells)."""
        return None if self.directory is None else self.directory.home_of(user_id)

    def cross_cell(self) -> list[Sent]:
        """The planned messages whose recipient lives in another cell than their sender."""
        return [
            sent for sent in self.plan if self.home_of(sent.sender) != self.home_of(sent.recipient)
        ]

    def url_for(self, user_id: str) -> str:
        """Where a user connects: its home cell's URL with cells, else the one stage's."""
        if self.directory is None:
            return self.ws_url
        return self.directory.home_url(user_id)

    async def refresh_directory(self) -> None:
        """Fetch the directory again (at most every DIRECTORY_REFETCH_SECONDS, however many
        clients ask at once), as the SDK fetches it. A cell that moved makes every client
        resend what it sent to the users of that cell and has no `delivered` receipt for,
        as the SDKs do (docs/protocol.md, beyond §7): §7 asks it only of the users whose own
        home moved, but a sender in another cell gets no new epoch, and what the lost
        region stored for it is gone too."""
        if self.directory_url is None:
            return
        async with self._directory_lock:
            if time.monotonic() - self._directory_fetched_at < DIRECTORY_REFETCH_SECONDS:
                return
            if self.directory_key is None:
                self.directory_key = await fetch_directory_key(self.directory_url)
            fetched = await fetch_directory(self.directory_url, DIRECTORY_FETCH_TIMEOUT_SECONDS)
            self._directory_fetched_at = time.monotonic()
            # As the SDKs: a document the key did not sign, or older than ours, is refused.
            if not fetched.verifies(self.directory_key) or (
                self.directory is not None and fetched.version < self.directory.version
            ):
                self.tally.counts["directory refused"] += 1
                return
            old, self.directory = self.directory, fetched
        moved = frozenset() if old is None else moved_cells(old, fetched)
        if not moved:
            return
        self.tally.counts["directory changes seen"] += 1
        for client in self.clients.values():
            client.note_cells_moved(lambda user_id: fetched.home_of(user_id) in moved)

    async def watch_directory(self) -> None:
        """Look at the directory now and then, as an app does (a sender whose own cell
        is fine learns this way that a recipient's cell failed over)."""
        while True:
            await asyncio.sleep(DIRECTORY_WATCH_SECONDS)
            await self.refresh_directory()

    def note_resent(self, sent: Sent) -> None:
        self.tally.counts["messages resent (§7)"] += 1
        self.failover.last_resend = time.perf_counter()

    def note_received(self, client: LoadClient, sent: Sent) -> None:
        """A first copy reached its recipient: the first one after the failover, through
        the cell that took over, is the recovery."""
        failover = self.failover
        if (
            failover.at is not None
            and failover.first_delivery is None
            and client.home_url == failover.url
        ):
            failover.first_delivery = time.perf_counter()

    async def connect_all(self) -> None:
        if self.directory_url is not None:
            await self.refresh_directory()
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
        # As many syncs at once as sends in flight: the same offered load as the run.
        gate = asyncio.Semaphore(self.config.in_flight)
        started = time.perf_counter()
        for round_number in range(1, MAX_DRAIN_ROUNDS + 1):
            # A resend owed after a failover (§7) goes out before the queue can be empty,
            # and so does a seen mark not stored yet.
            await asyncio.gather(*(client.finish_resends() for client in self.clients.values()))
            await asyncio.gather(
                *(c.resend_marks() for c in self.clients.values() if c.marks_pending)
            )
            await asyncio.gather(*(client.flush_acks() for client in self.clients.values()))
            await self.settle()
            counts = await asyncio.gather(
                *(self._sync(client, gate) for client in self.clients.values())
            )
            await self.settle()
            pending = sum(client.acks_pending for client in self.clients.values())
            owed = any(c.owes_resend or c.marks_pending for c in self.clients.values())
            if sum(counts) == 0 and pending == 0 and not owed:
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


# --- driving it -----------------------------------------------------------------------------


def raise_open_files_limit(needed: int) -> tuple[int, int]:
    """Raise this process's RLIMIT_NOFILE towards `needed` (at most the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


async def drive(run: LoadRun, during: Callable[[], Coroutine[Any, Any, None]] | None = None) -> int:
    """Connect, exchange, drain: the whole run on `run`'s clients. Returns drain rounds.
    `during`: an event in the run (e.g. a shard move), started once every client is
    connected and awaited before the drain."""
    loop = asyncio.get_running_loop()
    background = [loop.create_task(run.keep_alive())]
    if run.directory_url is not None:
        background.append(loop.create_task(run.watch_directory()))
    try:
        await run.connect_all()
        if during is not None:
            background.append(loop.create_task(during()))
        await run.exchange()
        if during is not None:
            await background.pop()
        return await run.drain()
    finally:
        for task in background:
            task.cancel()
        await run.close_all()


def load_stack(config: LoadConfig, aws: EmbeddedAws | None, **options: Any) -> LocalStack:
    """A LocalStack on loopback ports with the run's rate limit and workers; `options`
    go to LocalStack (cells, standby...)."""
    return loopback_stack(
        rate_per_minute=config.rate_per_minute,
        rate_burst=config.rate_burst,
        aws=aws,
        workers=config.workers,
        **options,
    )


# An event mid-run on the stack started here (bench move's shard move): its own checks.
During = Callable[[LocalStack, "LoadRun"], Awaitable[list[Check]]]


async def run_local(
    config: LoadConfig,
    aws: EmbeddedAws | None = None,
    progress: Callable[[str], None] | None = None,
    during: During | None = None,
) -> LoadResult:
    """One run against a LocalStack started here, on loopback ports; `during` runs once
    the clients are connected, alongside the exchange, and adds its checks."""
    # Each connection costs a descriptor on both sides, and these are in one process.
    raise_open_files_limit(4 * config.users + 1024)
    started = time.perf_counter()
    stack = load_stack(config, aws, cells=config.cells)
    async with asyncio.timeout(config.timeout), stack:

        async def settle() -> None:
            await stack.settled(timeout=120.0)

        if config.cells is None:
            run = LoadRun(config, stack.ws_url, settle, progress)
        else:
            first = stack.cell_url(stack.cell_ids[0])
            run = LoadRun(config, first, settle, progress, directory_url=stack.directory_url)
        event_checks: list[Check] = []

        async def event() -> None:
            assert during is not None
            event_checks.extend(await during(stack, run))

        rounds = await drive(run, event if during is not None else None)
        await stack.settled(timeout=60.0)
        left = await asyncio.to_thread(queued_left, stack, sorted(run.clients))
        wall = time.perf_counter() - started
        checks = check_run(run.plan, run.tally, left, seen=config.seen) + event_checks
        return report(run, checks, stack, rounds, wall)


def user_ids(run_id: str, config: LoadConfig) -> list[str]:
    """The run's user ids; with cells, user i at home in cell i mod N."""
    names = [f"load-{run_id}-{i:05d}" for i in range(config.users)]
    if config.cells is None:
        return names
    cells = tuple(f"c{number}" for number in range(config.cells))
    return [id_homed_in(cells[i % len(cells)], name, cells) for i, name in enumerate(names)]


def queued_left(stack: LocalStack, user_ids: list[str]) -> dict[str, int]:
    """What each user still has queued: with cells, in the tables of the side serving
    their home cell now (its standby after a failover)."""
    dynamodb = stack.aws.client("dynamodb")
    if not stack.cell_ids:
        return queue_partitions(dynamodb, stack.table_names[Env.QUEUE_TABLE.value], user_ids)
    left: dict[str, int] = {}
    for cell in stack.cell_ids:
        table = stack.active(cell).table_names[Env.QUEUE_TABLE.value]
        homed = [user_id for user_id in user_ids if stack.home_of(user_id) == cell]
        left |= queue_partitions(dynamodb, table, homed)
    return left


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
            left = await asyncio.to_thread(
                queue_partitions, client, queue_table, sorted(run.clients)
            )
    wall = time.perf_counter() - started
    return report(run, check_run(run.plan, run.tally, left), None, rounds, wall)
