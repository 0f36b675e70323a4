"""Hot recipients: what a user with many connections costs its senders' `ack`.

`python -m bench hot` (`./dev bench hot`): alice sends bob MESSAGES short messages, each
after the previous `ack`, through the real handlers on moto; every @connections post is
made to take POST_MS (what a PostToConnection takes on AWS, as bench catchup assumes).
Four runs in the same process, so the figures compare on the same machine and load:
1. the baseline: bob holds one connection (the ack is the route's answer, after the post);
2. bob holds four (the most one device may, docs/protocol.md §1), posted to one after
   another, the ack after them (a pool of one: how the functions posted at first);
3. bob holds four, posted to together, the ack after them (the last stop);
4. bob holds four, the ack posted to alice ahead of bob's posts (handlers/send_message.py:
   now). send→ack is until the ack was posted, or the route answered.
It prints send→ack percentiles of each and their ratio to the baseline, how many of 20
connections bob opened the cell kept, and the machine's load average beside them.

Then the hot spot (issue 24), in one harness whose clock runs in real time:
- SENDERS users send to one recipient, carol, paced together at RATE sends a second and
  each honouring the `retryAfter` it is answered; carol's queue partition takes an
  OVERLOAD-th of the writes they made in the spread run, and writes past that fail
  with ProvisionedThroughputExceededException (injected through a botocore hook on the
  functions' DynamoDB client: moto never throttles);
- WATCHERS connections (4 per user, the most a device may hold) subscribe to dave's
  presence (those past the cell's watcher cap are refused BAD_REQUEST up front), and
  dave comes online and goes offline every FLAP_EVERY seconds;
- meanwhile OTHERS pairs of other users send each other short messages one after another,
  and their send→ack is measured.
Three runs of SECONDS each: `quiet` (only the other users), `spread` (the same senders
at the same pace, each to a recipient of its own, and a user nobody watches flapping:
the same work without a hot spot) and `hot`. It prints the other users' percentiles in
each, the ratio hot / spread (the target: at most 1.5x) and hot / quiet (which also
counts the CPU the load takes from this one process, where on AWS it would run in
other execution environments), what the hot senders were answered, and the load average.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from bench.figures import percentile
from bench.protocol_client import BenchUser
from messenger.dal.batch import write_all
from messenger.dal.profiles import user_key
from messenger.dal.subscriptions import SUB_PREFIX, WATCHER_COUNT, WATCHER_COUNT_PERIOD_SECONDS
from messenger.logic import live_delivery
from messenger.logic.clock import FixedClock
from messenger.logic.messaging import Messaging
from messenger.transport.connections import Connections
from messenger_local.harness import Caller, Connection, Harness, harness, throttled_answer
from messenger_protocol.frames import Ack, GetPresence
from messenger_protocol.limits import (
    MAX_CONNECTIONS_PER_DEVICE,
    MAX_IDS_PER_FRAME,
    MAX_WATCHERS_PER_USER,
)

MESSAGES = 100
WARMUP = 5
POST_MS = 20  # a PostToConnection on AWS (bench/catchup.py assumes the same)
CONNECTIONS_OPENED = 20

# The hot spot (issue 24's full size; every one a parameter).
SENDERS = 1_000
WATCHERS = 10_000
OTHERS = 4  # pairs of other users whose send→ack is measured
RATE = 40.0  # the hot senders' sends a second, all together (what this one process serves)
# How many times over its partition's capacity the hot senders write: on AWS a queue
# partition takes 1,000 WCU a second (~250 short messages, each writing its queue item
# and its counter), and 1,000 senders at ~2 messages a second each are 8x over. Here the
# partition is given an eighth of the writes a second the senders made in the spread run
# (what this process served them), so they are 8x over it as well.
OVERLOAD = 8.0
FLAP_EVERY = 2.0  # seconds between the watched user's presence changes
SECONDS = 30.0  # each run
# Of the watching connections, these subscribe through the real handlers (connect, then
# getPresence); the others are recorded as the subscriptions the cell would hold (at
# most its cap), written straight into the table: on this shared 2-core machine the
# handlers take ~0.3 s a call, so 10,000 sockets through them would take hours.
SUBSCRIBING = 100
SENDING_THREADS = 4
QUEUE_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}


@contextmanager
def slow_posts(delay_ms: int) -> Iterator[None]:
    """Every post to @connections takes `delay_ms` more, as on AWS."""
    real = Connections.post

    def post(self: Connections, connection_id: str, frame: Any) -> None:
        time.sleep(delay_ms / 1000)
        real(self, connection_id, frame)

    Connections.post = post  # type: ignore[method-assign]
    try:
        yield
    finally:
        Connections.post = real  # type: ignore[method-assign]


@contextmanager
def posting_pool(workers: int) -> Iterator[None]:
    """The functions' posting pool, replaced by one of `workers` threads for a run."""
    kept = live_delivery._POSTING
    live_delivery._POSTING = ThreadPoolExecutor(max_workers=workers)
    try:
        yield
    finally:
        live_delivery._POSTING.shutdown()
        live_delivery._POSTING = kept


def timed_send(h: Harness, sender: Connection, frame: dict[str, Any]) -> tuple[Any, float]:
    """Send a frame; (its reply, ms until the sender had it): until the ack was posted
    when it went out ahead of the route's end (handlers/send_message.py), else until the
    route answered."""
    started = time.perf_counter()
    reply = h.send(sender, frame)
    answered = time.perf_counter()
    acked = h.posts.ack_posted_at.pop(frame["messageId"], answered)
    return reply, (min(acked, answered) - started) * 1000


def send_to_ack_ms(h: Harness, sender: Any, recipient: BenchUser, tag: str) -> list[float]:
    """send→ack of MESSAGES messages, each sent after the previous ack (warm-up left out)."""
    times = []
    for n in range(WARMUP + MESSAGES):
        frame = h.message(sender, recipient, "a short line", f"msg-{tag}{n:05d}")
        reply, took = timed_send(h, sender, frame)
        if reply is None or reply.get("type") != "ack":
            raise RuntimeError(f"not acked: {reply}")
        if n >= WARMUP:
            times.append(took)
    return times


@contextmanager
def ack_after_posts() -> Iterator[None]:
    """The ack as the route's answer, after every post (as before it was posted ahead)."""
    real = Messaging.posts_to_make
    Messaging.posts_to_make = lambda self, sent: 1  # type: ignore[method-assign]
    try:
        yield
    finally:
        Messaging.posts_to_make = real  # type: ignore[method-assign]


def run(connections: int, workers: int | None, tag: str, ack_ahead: bool = True) -> list[float]:
    # The sender's own rate limit is not what is measured here.
    with (
        harness(rate_limit_burst=10 * MESSAGES, rate_limit_per_minute=100 * MESSAGES) as h,
        nullcontext() if ack_ahead else ack_after_posts(),
    ):
        alice, bob = BenchUser.generate("alice"), BenchUser.generate("bob")
        sender = h.connect(alice)
        for _ in range(connections):
            h.connect(bob)
        with slow_posts(POST_MS):
            if workers is None:
                return send_to_ack_ms(h, sender, bob, tag)
            with posting_pool(workers):
                return send_to_ack_ms(h, sender, bob, tag)


def connections_kept(opened: int) -> int:
    with harness() as h:
        bob = BenchUser.generate("bob")
        for _ in range(opened):
            h.connect(bob)
            h.clock.advance(0.01)
        profile = h.services.profiles.get_profile("bob")
        return len(profile.connections) if profile else 0


# --- the hot spot ---------------------------------------------------------------------


@dataclass(frozen=True)
class HotSpot:
    senders: int = SENDERS
    watchers: int = WATCHERS
    subscribing: int = SUBSCRIBING
    others: int = OTHERS
    rate: float = RATE
    overload: float = OVERLOAD
    flap_every: float = FLAP_EVERY
    seconds: float = SECONDS


@contextmanager
def real_time(clock: FixedClock) -> Iterator[None]:
    """The harness's clock moves with the wall clock (rate limits, caps and presence
    read it), for as long as the block runs."""
    stop = threading.Event()

    def tick() -> None:
        last = time.monotonic()
        while not stop.wait(0.01):
            now = time.monotonic()
            clock.advance(now - last)
            last = now

    ticker = threading.Thread(target=tick, name="clock", daemon=True)
    ticker.start()
    try:
        yield
    finally:
        stop.set()
        ticker.join()


def keys_written(operation: str, body: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(table, partition key) of every item a DynamoDB write request writes."""
    if operation in ("PutItem", "UpdateItem", "DeleteItem"):
        item = body.get("Item") or body.get("Key") or {}
        yield body["TableName"], item.get("pk", {}).get("S", "")
    elif operation == "TransactWriteItems":
        for entry in body["TransactItems"]:
            for write in entry.values():
                item = write.get("Item") or write.get("Key") or {}
                yield write["TableName"], item.get("pk", {}).get("S", "")
    elif operation == "BatchWriteItem":
        for table, requests in body["RequestItems"].items():
            for request in requests:
                for write in request.values():
                    item = write.get("Item") or write.get("Key") or {}
                    yield table, item.get("pk", {}).get("S", "")


class HotPartition:
    """One user's queue partition as DynamoDB would hold it: writes to it past
    `writes_per_second` (a token bucket, on the wall clock) are answered
    ProvisionedThroughputExceededException. The functions' client retries them with
    its own backoff; what still fails is theirs to answer."""

    def __init__(self, table: str, user_id: str) -> None:
        self._table = table
        self._keys = {user_id, user_key(user_id)}
        self.writes_per_second = 1.0  # set before the hot run
        self._tokens = 0.0
        self._last = time.monotonic()
        self._lock = threading.Lock()
        self.enabled = False
        self.written = 0
        self.throttled = 0

    def install(self, client: Any) -> None:
        client.meta.events.register_first("before-send.dynamodb", self._before_send)

    def _before_send(self, request: Any, **kwargs: Any) -> Any:
        if not self.enabled:
            return None
        operation = request.headers.get("X-Amz-Target", b"").decode().rsplit(".", 1)[-1]
        if operation not in QUEUE_WRITES:
            return None
        body = json.loads(request.body)
        hits = sum(
            1 for table, pk in keys_written(operation, body) if (table, pk) in self._hot_keys()
        )
        if not hits:
            return None
        with self._lock:
            now = time.monotonic()
            rate = self.writes_per_second
            self._tokens = min(rate, self._tokens + (now - self._last) * rate)
            self._last = now
            if self._tokens >= hits:
                self._tokens -= hits
                self.written += hits
                return None
            self.throttled += 1
        return throttled_answer(request, "ProvisionedThroughputExceededException")

    def _hot_keys(self) -> set[tuple[str, str]]:
        return {(self._table, key) for key in self._keys}


@dataclass
class Outcomes:
    """What the hot senders were answered, and what their `retryAfter` held back."""

    answers: Counter[str] = field(default_factory=Counter)
    held_back: int = 0

    def summary(self) -> str:
        parts = [f"{name} {n}" for name, n in sorted(self.answers.items())]
        return ", ".join(parts) + f"; {self.held_back} sends held back by retryAfter"


@dataclass
class Population:
    """Everyone the hot spot runs need, connected once."""

    senders: list[Connection]
    hot_recipient: BenchUser
    watched: BenchUser
    unwatched: BenchUser
    watcher_ids: list[str]  # the connections subscribed to the watched user
    recorded: int  # of them, recorded straight into the table
    answers: Counter[str]  # what the connections that subscribed through getPresence got
    pairs: list[tuple[Connection, BenchUser]]
    recipients: list[Connection]  # the pairs' recipients, one connection each


def record_watchers(h: Harness, watched: str, count: int) -> list[str]:
    """`count` connections subscribed to `watched`, written as getPresence would write
    them (the SUB items and the WATCHERS count, docs/protocol.md §2), by batch."""
    expires_at = h.clock.now_s() + 3 * 3600
    connection_ids = [f"seeded{n:06d}" for n in range(count)]
    items = [
        {
            "pk": {"S": user_key(watched)},
            "sk": {"S": SUB_PREFIX + connection_id},
            "watcher": {"S": f"watcher{n // MAX_CONNECTIONS_PER_DEVICE:05d}"},
            "expiresAt": {"N": str(expires_at)},
        }
        for n, connection_id in enumerate(connection_ids)
    ]
    items.append(
        {
            "pk": {"S": user_key(watched)},
            "sk": {"S": WATCHER_COUNT},
            f"b{expires_at // WATCHER_COUNT_PERIOD_SECONDS}": {"N": str(count)},
            "expiresAt": {"N": str(expires_at + WATCHER_COUNT_PERIOD_SECONDS)},
        }
    )
    write_all(h.dynamodb, h.table_names["Users"], [{"PutRequest": {"Item": i}} for i in items])
    return connection_ids


def populate(h: Harness, spot: HotSpot) -> Population:
    senders = [h.connect(BenchUser.generate(f"sender{n:05d}")) for n in range(spot.senders)]
    hot_recipient, watched, unwatched = (BenchUser.generate(n) for n in ("carol", "dave", "erin"))
    h.connect(hot_recipient)
    for user in (watched, unwatched):  # known, and offline until their runs flap them
        h.disconnect(h.connect(user))
    h.settle_flaps()  # those closes, a moment after the connects, told before anyone watches
    subscribing = min(spot.subscribing, spot.watchers)
    recorded = min(spot.watchers - subscribing, MAX_WATCHERS_PER_USER)
    watcher_ids = record_watchers(h, "dave", recorded)
    answers: Counter[str] = Counter()
    for n in range(subscribing):
        if n % MAX_CONNECTIONS_PER_DEVICE == 0:
            user = BenchUser.generate(f"subscriber{n // MAX_CONNECTIONS_PER_DEVICE:05d}")
        connection = h.connect(user)
        reply = h.send(connection, GetPresence(user_ids=["dave"], subscribe=True).to_wire())
        answers[reply["type"] if reply["type"] != "error" else reply["code"]] += 1
        if reply["type"] == "presence":
            watcher_ids.append(connection.connection_id)
    pairs = []
    recipients = []
    for n in range(spot.others):
        a, b = BenchUser.generate(f"other{n:03d}a"), BenchUser.generate(f"other{n:03d}b")
        pairs.append((h.connect(a), b))
        recipients.append(h.connect(b))
    for connection_id in watcher_ids:
        h.posts.take(connection_id)
    return Population(
        senders,
        hot_recipient,
        watched,
        unwatched,
        watcher_ids,
        recorded,
        answers,
        pairs,
        recipients,
    )


def ack_what_arrived(h: Harness, population: Population) -> int:
    """The measured pairs' recipients ack every message that reached them, as a chat
    partner's app does: no run starts against queues an earlier run filled (the queue
    caps would refuse its sends). The messages acked."""
    acked = 0
    for connection in population.recipients:
        ids = [
            frame["id"]
            for frame in h.posts.take(connection.connection_id)
            if frame.get("type") == "message"
        ]
        for first in range(0, len(ids), MAX_IDS_PER_FRAME):
            reply = h.send(connection, Ack(ids=ids[first : first + MAX_IDS_PER_FRAME]).to_wire())
            if reply is not None and reply.get("type") == "error":
                raise RuntimeError(f"an ack of the pairs' messages was refused: {reply}")
        acked += len(ids)
    return acked


def paced_sends(
    h: Harness,
    population: Population,
    spot: HotSpot,
    recipient_of: Callable[[int], Caller],
    stop: threading.Event,
    outcomes: Outcomes,
) -> None:
    """The senders, taking turns at `spot.rate` sends a second from SENDING_THREADS
    threads; a sender answered `retryAfter` sits out its turns until then."""
    lock = threading.Lock()
    slots = itertools.count()
    started = time.monotonic()
    not_before = [0.0] * len(population.senders)
    serial = itertools.count()

    def sending() -> None:
        while not stop.is_set():
            with lock:
                slot = next(slots)
            due = started + slot / spot.rate
            if stop.wait(max(0.0, due - time.monotonic())):
                return
            n = slot % len(population.senders)
            if not_before[n] > time.monotonic():
                with lock:
                    outcomes.held_back += 1
                continue
            sender = population.senders[n]
            frame = h.message(sender, recipient_of(n), "a short line", f"hot-{next(serial):07d}")
            reply = h.send(sender, frame)
            with lock:
                outcomes.answers[reply["type"] if reply["type"] != "error" else reply["code"]] += 1
            if reply.get("retryAfter"):
                not_before[n] = time.monotonic() + reply["retryAfter"] / 1000

    threads = [threading.Thread(target=sending) for _ in range(SENDING_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def flapping(h: Harness, user: BenchUser, every: float, stop: threading.Event) -> int:
    """The user comes online and goes offline every `every` seconds; the changes made."""
    changes = 0
    online: Connection | None = None
    while not stop.wait(every):
        if online is None:
            online = h.connect(user)
        else:
            h.disconnect(online)
            online = None
        # The presence function runs here, as its own invocation would: never inside
        # another thread's send (the harness runs what is pending after each call).
        h.run_invocations()
        changes += 1
    if online is not None:  # offline again, as it began
        h.disconnect(online)
        h.run_invocations()
        changes += 1
    return changes


def others_send(h: Harness, population: Population, stop: threading.Event, tag: str) -> list[float]:
    """Each pair sends one message after another until stopped; every send→ack."""
    times: list[float] = []

    def pair(n: int, sender: Connection, to: BenchUser) -> None:
        for m in itertools.count():
            if stop.is_set():
                return
            frame = h.message(sender, to, "a short line", f"{tag}-{n:03d}-{m:06d}")
            reply, took = timed_send(h, sender, frame)
            if reply is None or reply.get("type") != "ack":
                raise RuntimeError(f"another user's message was not acked: {reply}")
            times.append(took)

    threads = [
        threading.Thread(target=pair, args=(n, sender, to))
        for n, (sender, to) in enumerate(population.pairs)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return times


@dataclass
class SpotRun:
    name: str
    times: list[float]
    load: tuple[float, float, float]
    outcomes: Outcomes = field(default_factory=Outcomes)
    changes: int = 0
    presence_frames: int = 0


def spot_run(
    h: Harness, population: Population, spot: HotSpot, name: str, partition: HotPartition
) -> SpotRun:
    """One run of `spot.seconds`: the other users, and in `spread` or `hot` the load."""
    stop = threading.Event()
    outcomes = Outcomes()
    load: list[threading.Thread] = []
    changes: list[int] = []
    if name != "quiet":
        hot = name == "hot"
        senders = population.senders

        def recipient_of(n: int) -> Caller:
            """Spread: each sender writes to the next one (one connection each, as carol)."""
            return population.hot_recipient if hot else senders[(n + 1) % len(senders)].user

        flapper = population.watched if hot else population.unwatched
        load = [
            threading.Thread(
                target=paced_sends, args=(h, population, spot, recipient_of, stop, outcomes)
            ),
            threading.Thread(
                target=lambda: changes.append(flapping(h, flapper, spot.flap_every, stop))
            ),
        ]
    partition.enabled = True
    for thread in load:
        thread.start()
    timer = threading.Timer(spot.seconds, stop.set)
    timer.start()
    times = others_send(h, population, stop, name)
    for thread in load:
        thread.join()
    partition.enabled = False
    ack_what_arrived(h, population)
    frames = sum(len(h.posts.take(connection_id)) for connection_id in population.watcher_ids)
    return SpotRun(name, times, os.getloadavg(), outcomes, sum(changes), frames)


@dataclass
class Measured:
    population: Population
    partition: HotPartition
    set_up_s: float
    quiet: SpotRun
    spread: SpotRun
    hot: SpotRun

    def ratio(self, share: float) -> float:
        """The other users' send→ack percentile, hot / spread."""
        return percentile(self.hot.times, share) / percentile(self.spread.times, share)

    @property
    def internal(self) -> int:
        """INTERNAL answers the hot senders had (a throttle must never become one)."""
        return sum(run.outcomes.answers["INTERNAL"] for run in (self.spread, self.hot))


def hot_spot(spot: HotSpot) -> Measured:
    """The three runs, in one harness."""
    # Rate limits and the registration budget are not what is measured here.
    big = 10**9
    # The harness serves moto as the local stack does (messenger_local.moto_speed): a Query
    # reads its partition and a transaction backs up what it touches, not the whole table,
    # so that setting up ten thousand connections does not slow down with each one.
    with harness(
        rate_limit_burst=big, rate_limit_per_minute=big, registrations_per_ip_per_hour=big
    ) as h:
        partition = HotPartition(h.table_names["Queue"], "carol")
        partition.install(h.services.dynamodb)
        with real_time(h.clock):
            started = time.monotonic()
            population = populate(h, spot)
            set_up = time.monotonic() - started
            # Only the flapping user's changes invoke the presence function from here on.
            h.run_invocations_at_once = False
            with slow_posts(POST_MS):
                quiet = spot_run(h, population, spot, "quiet", partition)
                spread = spot_run(h, population, spot, "spread", partition)
                writes = 2 * spread.outcomes.answers["ack"] / spot.seconds
                partition.writes_per_second = max(1.0, writes / spot.overload)
                hot = spot_run(h, population, spot, "hot", partition)
    return Measured(population, partition, set_up, quiet, spread, hot)


def report(spot: HotSpot, measured: Measured) -> bool:
    """Print the hot spot's figures; True if the other users stayed within 1.5x of the
    spread run and no hot sender was answered INTERNAL."""
    population, partition, set_up = measured.population, measured.partition, measured.set_up_s
    runs = [measured.quiet, measured.spread, measured.hot]
    print(
        f"\nhot spot: {spot.senders} senders at one recipient ({spot.rate:g} sends/s together, "
        f"its queue partition throttled past {partition.writes_per_second:.1f} writes/s: "
        f"{spot.overload:g}x below the spread run's), "
        f"{spot.watchers} connections watching one user who changes presence every "
        f"{spot.flap_every:g} s; {len(population.pairs)} pairs of other users measured, "
        f"{spot.seconds:g} s a run (set up in {set_up:.0f} s)"
    )
    answers = ", ".join(f"{code} {n}" for code, n in population.answers.items()) or "none"
    tried = population.recorded + sum(population.answers.values())
    print(
        f"watching connections: {population.recorded} recorded in the table (the cell's cap "
        f"is {MAX_WATCHERS_PER_USER}), then {sum(population.answers.values())} subscribed "
        f"through connect + getPresence, answered: {answers}; {spot.watchers - tried} not "
        f"tried; {len(population.watcher_ids)} watch in all"
    )
    print(
        f"{'run':<8} {'sends':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
        f"{'changes':>8} {'frames':>8}  load average (1, 5, 15 min)"
    )
    for run in runs:
        print(
            f"{run.name:<8} {len(run.times):>6} {percentile(run.times, 0.5):>8.1f} "
            f"{percentile(run.times, 0.95):>8.1f} {percentile(run.times, 0.99):>8.1f} "
            f"{run.changes:>8} {run.presence_frames:>8}  " + ", ".join(f"{x:.2f}" for x in run.load)
        )
    quiet, spread, hot = runs
    for run in (spread, hot):
        print(f"hot senders, {run.name} run: {run.outcomes.summary()}")
    print(
        f"carol's partition: {partition.written} writes taken, {partition.throttled} "
        "requests throttled (ProvisionedThroughputExceededException, injected)"
    )
    print(
        f"other users' send→ack, hot / spread: p50 {measured.ratio(0.5):.2f}x, "
        f"p95 {measured.ratio(0.95):.2f}x (target ≤ 1.5x); hot / quiet: p50 "
        f"{percentile(hot.times, 0.5) / percentile(quiet.times, 0.5):.2f}x "
        f"(includes the CPU the load takes from this process); {os.cpu_count()} cores"
    )
    return measured.ratio(0.5) <= 1.5 and measured.internal == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench hot", description=__doc__)
    parser.add_argument("--senders", type=int, default=SENDERS)
    parser.add_argument("--watchers", type=int, default=WATCHERS)
    parser.add_argument("--subscribing", type=int, default=SUBSCRIBING)
    parser.add_argument("--others", type=int, default=OTHERS)
    parser.add_argument("--rate", type=float, default=RATE)
    parser.add_argument("--overload", type=float, default=OVERLOAD)
    parser.add_argument("--flap-every", type=float, default=FLAP_EVERY)
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument("--only-hot-spot", action="store_true", help="skip the 4-connection runs")
    args = parser.parse_args(argv)
    spot = HotSpot(
        args.senders,
        args.watchers,
        args.subscribing,
        args.others,
        args.rate,
        args.overload,
        args.flap_every,
        args.seconds,
    )
    kept_ok = True if args.only_hot_spot else connection_runs()
    return 0 if kept_ok and report(spot, hot_spot(spot)) else 1


def connection_runs() -> bool:
    """The recipient with 4 connections; True if the cell kept 4 of 20."""
    load_before = os.getloadavg()
    runs = {
        "baseline: 1 connection": run(1, None, "b"),
        f"{MAX_CONNECTIONS_PER_DEVICE} posted one by one, then the ack": run(
            MAX_CONNECTIONS_PER_DEVICE, 1, "s", ack_ahead=False
        ),
        f"{MAX_CONNECTIONS_PER_DEVICE} posted together, then the ack": run(
            MAX_CONNECTIONS_PER_DEVICE, None, "c", ack_ahead=False
        ),
        f"{MAX_CONNECTIONS_PER_DEVICE} posted together, the ack ahead": run(
            MAX_CONNECTIONS_PER_DEVICE, None, "a"
        ),
    }
    load_after = os.getloadavg()
    print(
        f"send→ack of {MESSAGES} short messages, each after the previous ack (moto harness, "
        f"every post {POST_MS} ms as on AWS)"
    )
    print(f"{'run':<44} {'p50 ms':>8} {'p95 ms':>8} {'p50 / baseline':>15}")
    baseline = percentile(runs["baseline: 1 connection"], 0.5)
    for name, times in runs.items():
        p50, p95 = percentile(times, 0.5), percentile(times, 0.95)
        print(f"{name:<44} {p50:>8.1f} {p95:>8.1f} {p50 / baseline:>14.2f}x")
    kept = connections_kept(CONNECTIONS_OPENED)
    print(
        f"one user opening {CONNECTIONS_OPENED} connections keeps {kept} "
        f"(at most {MAX_CONNECTIONS_PER_DEVICE} per device; the oldest are closed)"
    )
    print(
        "load average (1, 5, 15 min) before: "
        + ", ".join(f"{x:.2f}" for x in load_before)
        + "; after: "
        + ", ".join(f"{x:.2f}" for x in load_after)
        + f"; {os.cpu_count()} cores"
    )
    return kept == MAX_CONNECTIONS_PER_DEVICE
