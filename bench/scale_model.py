"""The capacity and cost model behind `./dev bench scale`: arithmetic only, no AWS calls.

From what each operation costs (`Measured`: counted and metered on the real handlers by
bench/scale.py) and a workload (`Workload`: the parameters an operator sets, each
default argued in docs/scale.md), it says:
- the load at the busiest hour (`peak_rates`), the whole deployment's and one cell's, the
  heaviest cell's after shard rounding (`heaviest_share`);
- how many cells each quota of bench/quotas.py needs, which binds, and how much of each
  other it uses (`plan`);
- the month's bill, line by line (`monthly_bill`), and what moving each assumption does to
  both (`sensitivity`).

A message is modelled with the linked devices of docs/protocol.md §8 (one copy per
device, acked by each; a receipt to every device of the sender), every copy delivered
as a live one is (posted, acked on its own): an upper bound for copies that wait in a
queue and are synced in batches.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from bench import cost
from bench.quotas import CELL_QUOTAS, DEPLOYMENT_QUOTAS, Quota
from messenger.contract import ROUTES, WORKERS
from messenger_client.connection import ConnectionPolicy
from messenger_protocol.cells import ShardMap
from messenger_protocol.limits import DIRECTORY_FETCH_JITTER_SECONDS

DAY = 86_400
MONTH = 30 * DAY
# Sized so that no cell uses more than this share of any quota: the rest absorbs what the
# peak hour's average hides (minutes busier than the hour, a neighbour cell's failover).
TARGET_UTILIZATION = 0.8
# The SDK renews a connection before API Gateway's 2 hours, and pings after this long
# without sending (both SDKs).
RENEWAL_SECONDS = ConnectionPolicy().max_age
# v1.1's SDKs pinged after 240 s without sending, and a route function answered.
SDK_PING_SECONDS = 240.0
# v1.2: a ping answered by API Gateway itself (messenger.contract.GATEWAY_ROUTES), after
# the SDKs' interval (540 s, jittered by ±30 s: the mean is the interval).
GATEWAY_PING_SECONDS = ConnectionPolicy().ping_interval
# v1.1's SDKs read the directory on every connection and every 60 s while connected; v1.2's
# (ours now) never poll, and spread a `dv` bump's fetches over a random delay of up to 60 s
# (docs/protocol.md §6).
DIRECTORY_POLL_SECONDS = 60
DIRECTORY_JITTER_SECONDS = DIRECTORY_FETCH_JITTER_SECONDS
# The route functions, the presence function, the authorizer and the Relay.
FUNCTIONS_PER_CELL = len(ROUTES) + len(WORKERS) + 2
# A Lambda execution environment serves at most this many requests a second.
REQUESTS_PER_ENVIRONMENT = 10
LAMBDA_SCALING_PER_10S = 1_000  # new environments per function every 10 s
PARTITION_WCU = 1_000
# An ASSUMPTION: CloudWatch stores logs compressed; stored bytes as a share of ingested.
LOGS_STORED_SHARE = 0.15
LOG_RETENTION_MONTHS = 1  # prod keeps a month (infra/config.py)
# An ASSUMPTION: HTTP response headers of a directory fetch.
DIRECTORY_HEADER_BYTES = 400
# The standby's automated path (docs/availability.md): a 128 MB probe once a minute,
# ~100 ms billed, one GetItem each.
PROBES_PER_MONTH = MONTH / 60
PROBE_GB_SECONDS = 0.125 * 0.1
WRITE_UNIT_BYTES = 1024  # what a replicated write unit moves across regions, at most


# --- what one occurrence costs ---------------------------------------------------------


def _add_units(a: Mapping[str, float], b: Mapping[str, float], k: float = 1) -> dict[str, float]:
    return {name: a.get(name, 0) + k * b.get(name, 0) for name in {*a, *b}}


@dataclass(frozen=True)
class Cost:
    """What one occurrence of something costs the platform; averages may be fractions."""

    frames: float = 0  # requests into API Gateway: frames and handshakes
    posts: float = 0  # @connections posts: API Gateway requests out
    api_messages: float = 0  # billed messages (per 32 KB): frames in, replies, posts
    invocations: float = 0  # Lambda: route functions, authorizer, presence function
    relays: float = 0  # Relay invocations in a peer cell (one per cross-cell call)
    wru: Mapping[str, float] = field(default_factory=dict)  # by table
    rru: Mapping[str, float] = field(default_factory=dict)
    bytes_out: float = 0  # bytes of frames to clients: replies and posts

    def __add__(self, other: Cost) -> Cost:
        return Cost(
            self.frames + other.frames,
            self.posts + other.posts,
            self.api_messages + other.api_messages,
            self.invocations + other.invocations,
            self.relays + other.relays,
            _add_units(self.wru, other.wru),
            _add_units(self.rru, other.rru),
            self.bytes_out + other.bytes_out,
        )

    def __sub__(self, other: Cost) -> Cost:
        return self + other * -1

    def __mul__(self, k: float) -> Cost:
        return Cost(
            self.frames * k,
            self.posts * k,
            self.api_messages * k,
            self.invocations * k,
            self.relays * k,
            {name: units * k for name, units in self.wru.items()},
            {name: units * k for name, units in self.rru.items()},
            self.bytes_out * k,
        )

    __rmul__ = __mul__

    @property
    def requests(self) -> float:
        """Against API Gateway's account throttle: frames in and posts out alike."""
        return self.frames + self.posts

    @property
    def total_wru(self) -> float:
        return sum(self.wru.values())

    @property
    def total_rru(self) -> float:
        return sum(self.rru.values())


NOTHING = Cost()


@dataclass(frozen=True)
class MessageCosts:
    """A message's life in pieces, so that devices and `seen` receipts can be counted.

    With one device each and no `seen`, send + copy_ack + receipts + receipt +
    receipt_ack is exactly the measured life (bench/scale.py asserts it)."""

    send: Cost  # the frame: rate limit, the recipient's profile, one stored copy, its post, ack
    copy: Cost  # each further copy (another device, §8): stored and posted
    copy_ack: Cost  # a device's ack of its copy: the frame, the read of the ids, the delete
    receipts: Cost  # the first ack finds the sender: its profile
    receipt: Cost  # one receipt for one device of the sender: stored and posted
    receipt_ack: Cost  # that device's ack of it
    mark_seen: Cost  # the markSeen frame, without the receipt it makes
    item_bytes: int  # a stored copy


@dataclass(frozen=True)
class Relays:
    """Relay calls of a cross-cell operation (bench calls, "Across cells")."""

    send: float
    ack: float
    mark_seen: float
    subscribe: float
    presence_change: float  # per watcher cell told of a change (asynchronous)


@dataclass(frozen=True)
class Measured:
    """Every operation the model needs, as measured on the real handlers."""

    short: MessageCosts
    large: MessageCosts
    handshake: Cost  # authorizer + $connect of a known user
    visibility: Cost  # setPresenceVisibility unchanged: every new connection sends it
    sync: Cost  # sync of an empty queue (syncDone)
    subscribe: Cost  # getPresence of one user, subscribing
    disconnect: Cost
    presence_change: Cost  # the presence function, no watcher told
    watcher_post: Cost  # each watcher told
    ping: Cost  # v1.1's: a route function and its rate-limit write (LAMBDA_PING)
    relays: Relays
    # The old model's reconnect (connect, empty sync, disconnect): `--as-before` only.
    legacy_reconnect: Cost
    profile_bytes: int


# v1.1's ping as measured on its route function before API Gateway answered it (issue 24;
# docs/scale.md's table): the frame and its pong, one invocation, one rate-limit write.
LAMBDA_PING = Cost(frames=1, api_messages=2, invocations=1, wru={"Limits": 1}, bytes_out=15)


def gateway_ping(pong_bytes: int = 24) -> Cost:
    """v1.2's ping, answered by API Gateway: the frame and the pong are billed, nothing
    runs and nothing is written."""
    return Cost(frames=1, api_messages=2, bytes_out=pong_bytes)


# --- the workload ----------------------------------------------------------------------


def _param(default: Any, flag: str, help: str, **extra: Any) -> Any:
    return field(default=default, metadata={"flag": flag, "help": help, **extra})


@dataclass(frozen=True)
class Workload:
    """What the operator assumes; each default is argued in docs/scale.md."""

    users: float = _param(1e9, "--users", "daily users")
    connected: float = _param(
        0.5, "--connected", "share of devices with an open socket at the peak hour", share=True
    )
    idle: float = _param(
        0.8,
        "--idle",
        "share of open sockets whose user is in no conversation: they send nothing but pings",
        share=True,
    )
    messages: float = _param(100.0, "--messages", "messages a user sends a day")
    peak: float = _param(2.0, "--peak", "busiest hour over the day's mean (messages, connects)")
    connects: float = _param(
        30.0,
        "--connects",
        "new sessions a user opens a day, all devices (app foregrounds, push wakes)",
    )
    seen: float = _param(1 / 3, "--seen", "`seen` receipts per message", share=True)
    devices: float = _param(1.5, "--devices", "devices per user (docs/protocol.md §8)", least=1)
    keepalive: str = _param(
        "gateway",
        "--keepalive",
        "gateway: the ping our SDKs send now, answered by API Gateway (a MOCK route); "
        "lambda: v1.1's (a function, a write); none: no pings (to price the keepalive)",
        choices=("lambda", "gateway", "none"),
    )
    ping_every: float = _param(
        0.0,
        "--ping-every",
        f"seconds without sending before a ping (0: {SDK_PING_SECONDS:g} for lambda, "
        f"{GATEWAY_PING_SECONDS} for gateway)",
    )
    large: float = _param(
        0.05, "--large", "share of messages with a maximum-size body (24,000 B)", share=True
    )
    watchers: float = _param(
        1.0, "--watchers", "connections told of each online/offline change of a user"
    )
    shards: int = _param(
        65_536, "--shards", "shards of the map (0: users split evenly, no rounding)"
    )
    standby: bool = _param(True, "--standby", "every cell has a standby (global tables)")
    directory: str = _param(
        "v12",
        "--directory",
        "v12: our SDKs and web app now (no polling, docs/protocol.md §6); poll: v1.1's SDKs "
        "(every connection and every 60 s); none: not priced",
        choices=("poll", "v12", "none"),
    )
    bills: str = _param(
        "org",
        "--bills",
        "org: volume tiers over the whole organization (consolidated billing); account: "
        "each cell's account on its own",
        choices=("org", "account"),
    )
    lambda_ms: float = _param(
        float(cost.LAMBDA_BILLED_MS_PER_INVOCATION), "--lambda-ms", "billed ms per invocation"
    )
    relay_wait_ms: float = _param(
        10.0, "--relay-wait-ms", "a synchronous Relay's network and Invoke time, on top of its run"
    )
    trace_sample: float = _param(
        0.05, "--trace-sample", "share of requests X-Ray records (default rule)", share=True
    )
    lambda_log_bytes: float = _param(
        400.0, "--lambda-log-bytes", "log bytes per invocation (START, END, REPORT lines)"
    )
    access_log_bytes: float = _param(
        320.0, "--access-log-bytes", "API Gateway access log bytes per request in"
    )
    android: float = _param(0.7, "--android", "share of pushes that go through FCM", share=True)
    directory_bumps: float = _param(
        1.0, "--directory-bumps", "directory versions a day (deploys, failovers, moves)"
    )
    installs: float = _param(
        0.002, "--installs", "share of devices that start without a directory each day", share=True
    )
    legacy: bool = _param(
        False,
        "--legacy",
        "the old model's own reckoning (with --as-before): its reconnect, duration-only "
        "Lambda concurrency, all tables against one table's quota, only its cost lines",
    )

    @property
    def ping_seconds(self) -> float:
        if self.ping_every:
            return self.ping_every
        return GATEWAY_PING_SECONDS if self.keepalive == "gateway" else SDK_PING_SECONDS

    @property
    def copies(self) -> float:
        """Copies of a message: one per device of the recipient, one per other device of
        the sender (§8)."""
        return 2 * self.devices - 1

    @property
    def connected_sockets(self) -> float:
        """Open sockets at the peak hour."""
        return self.users * self.devices * self.connected


# The old model: the seed's day on one device, its reckoning (bench scale before issue 24).
AS_BEFORE = {
    "idle": 0.0,
    "peak": 1.0,
    "connects": 0.0,
    "seen": 0.0,
    "devices": 1.0,
    "keepalive": "lambda",
    "ping_every": 0.0,
    "large": 0.0,
    "watchers": 0.0,
    "shards": 0,
    "standby": False,
    "directory": "none",
    "bills": "account",
    "trace_sample": 0.0,
    "lambda_log_bytes": 0.0,
    "access_log_bytes": 0.0,
    "legacy": True,
}


def with_value(w: Workload, name: str, value: Any) -> Workload:
    """The workload with one assumption changed."""
    changes: dict[str, Any] = {name: value}
    return replace(w, **changes)


def parameters() -> Iterator[Any]:
    """The workload's fields, with their flags and help (the CLI and docs are made from them)."""
    yield from fields(Workload)


# --- the load at the peak --------------------------------------------------------------


def cross_share(cells: int) -> float:
    """With users hashed over the cells, the share of pairs whose homes differ."""
    return (cells - 1) / cells


def heaviest_share(cells: int, shards: int) -> float:
    """The heaviest cell's share of the users: with S shards split over N cells as evenly
    as whole shards allow, some cells own ⌈S/N⌉ of them. `shards` 0: no rounding."""
    if shards == 0:
        return 1 / cells
    if cells > shards:
        raise ValueError(f"{cells} cells cannot split {shards} shards")
    return math.ceil(shards / cells) / shards


def message_cost(m: MessageCosts, w: Workload, cross: float, relays: Relays) -> Cost:
    """One message, its copies to every device, its receipts, its `seen` receipts."""
    devices = w.devices
    delivered = (
        m.send
        + m.copy * (w.copies - 1)
        + m.copy_ack * w.copies
        + m.receipts
        + (m.receipt + m.receipt_ack) * devices
    )
    seen = m.mark_seen + (m.receipt + m.receipt_ack) * devices
    relay_calls = relays.send if w.legacy else relays.send + relays.ack + w.seen * relays.mark_seen
    return delivered + seen * w.seen + Cost(relays=cross * relay_calls)


def mixed_message_cost(measured: Measured, w: Workload, cross: float) -> Cost:
    return message_cost(measured.short, w, cross, measured.relays) * (1 - w.large) + (
        message_cost(measured.large, w, cross, measured.relays) * w.large
    )


def session_cost(measured: Measured, w: Workload, cross: float) -> Cost:
    """A connection the user opens and closes: it goes online, and offline again. A
    session may be a fresh start of the app, which sends its visibility again: counted
    (a renewal, in the same process, does not)."""
    change = measured.presence_change + measured.watcher_post * w.watchers
    told_elsewhere = w.watchers * cross * measured.relays.presence_change
    fresh = Cost() if w.legacy else measured.visibility
    return renewal_cost(measured, w, cross) + fresh + change * 2 + Cost(relays=2 * told_elsewhere)


def renewal_cost(measured: Measured, w: Workload, cross: float) -> Cost:
    """A connection replaced before API Gateway's 2 hours (make-before-break: the user
    stays online). It syncs and subscribes; its visibility is not sent again (the SDKs
    keep what the server took, which the profile holds across connections)."""
    if w.legacy:
        return measured.legacy_reconnect
    return (
        measured.handshake
        + measured.sync
        + measured.subscribe
        + measured.disconnect
        + Cost(relays=cross * measured.relays.subscribe)
    )


def renewals_per_session(w: Workload, sessions: float) -> float:
    """Renewals a socket makes before it closes: with socket lifetimes exponential around
    their mean (Little's law: open sockets / sessions a second), the expected number of
    whole renewal periods in one."""
    if sessions == 0:
        return math.inf
    lifetime = w.connected_sockets / sessions
    stays = math.exp(-RENEWAL_SECONDS / lifetime)
    return stays / (1 - stays)


@dataclass(frozen=True)
class PeakRates:
    """The whole deployment's load in the busiest hour, per second."""

    messages: float
    sessions: float
    renewals: float
    pings: float
    pushes: float
    sockets: float
    load: Cost  # everything together

    @property
    def new_connections(self) -> float:
        return self.sessions + self.renewals


def pings_per_second(w: Workload, sockets: float, client_frames: float) -> float:
    """A socket pings when it sent nothing for the ping interval. Idle sockets (no
    conversation) always do; the others carry every frame, arriving at random, so the
    share of their intervals without one is exp(-frames per interval)."""
    interval = w.ping_seconds
    busy = 1 - w.idle
    quiet = math.exp(-client_frames * interval / (sockets * busy)) if busy else 0.0
    return sockets / interval * (w.idle + busy * quiet)


def ping_cost(measured: Measured, w: Workload) -> Cost:
    return {"lambda": measured.ping, "gateway": gateway_ping(), "none": NOTHING}[w.keepalive]


def peak_rates(w: Workload, measured: Measured, cross: float) -> PeakRates:
    """The deployment's load at the peak, with this share of pairs across cells."""
    messages = w.users * w.messages / DAY * w.peak
    sessions = w.users * w.connects / DAY * w.peak
    sockets = w.connected_sockets
    if sessions:
        renewals = sessions * renewals_per_session(w, sessions)
    else:
        renewals = sockets / RENEWAL_SECONDS
    per_message = mixed_message_cost(measured, w, cross)
    session = session_cost(measured, w, cross)
    renewal = renewal_cost(measured, w, cross)
    busy = per_message * messages + session * sessions + renewal * renewals
    client_frames = (per_message * messages).frames
    if not w.legacy:  # the old model counted a message's frames only
        client_frames = busy.frames - (sessions + renewals) * measured.handshake.frames
    ping = ping_cost(measured, w)
    pings = pings_per_second(w, sockets, client_frames) if ping.frames else 0
    pushes = messages * w.copies * (1 - w.connected)
    return PeakRates(messages, sessions, renewals, pings, pushes, sockets, busy + ping * pings)


# --- one cell against its quotas ----------------------------------------------------------


@dataclass(frozen=True)
class Demand:
    """The heaviest cell's load at the peak, one field per quota key (bench/quotas.py)."""

    api_requests: float
    new_connections: float
    lambda_concurrency: float
    dynamodb_wru: float
    dynamodb_rru: float
    sns_publish: float
    busiest_write_table: str
    busiest_read_table: str
    invocations: float  # Lambda invocations a second, Relays included
    pings: float

    def of(self, quota: Quota) -> float:
        value: float = getattr(self, quota.key)
        return value


def lambda_environments(w: Workload, load: Cost) -> float:
    """Concurrent execution environments: each serves at most 10 requests a second, and
    is busy for the whole billed duration of each; a function calling a peer's Relay
    synchronously waits for it. The old model counted the duration only."""
    relay_seconds = load.relays * w.lambda_ms / 1000
    waiting = 0 if w.legacy else load.relays * (w.lambda_ms + w.relay_wait_ms) / 1000
    busy = load.invocations * w.lambda_ms / 1000 + relay_seconds + waiting
    if w.legacy:
        return busy
    return max((load.invocations + load.relays) / REQUESTS_PER_ENVIRONMENT, busy)


@dataclass(frozen=True)
class Sizing:
    """The deployment's peak load with no pair across cells and with every pair across:
    the load at any cell count lies between (the Relays are linear in the share)."""

    alone: PeakRates
    across: PeakRates

    @classmethod
    def of(cls, w: Workload, measured: Measured) -> Sizing:
        return cls(peak_rates(w, measured, 0.0), peak_rates(w, measured, 1.0))

    def rates(self, cross: float) -> PeakRates:
        load = self.alone.load + (self.across.load - self.alone.load) * cross
        return replace(self.alone, load=load)

    def demand(self, w: Workload, cells: int, cross: float | None = None) -> Demand:
        """The heaviest cell's demand among `cells` (cross: the cross-cell share, by
        default the one of that many cells)."""
        rates = self.rates(cross_share(cells) if cross is None else cross)
        share = heaviest_share(cells, w.shards)
        load = rates.load * share
        if w.legacy:
            # Every table's units against one table's quota, as the old model did.
            wru_table, rru_table = "all tables", "all tables"
            wru, rru = load.total_wru, load.total_rru
        else:
            wru_table = max(load.wru, key=lambda name: load.wru[name], default="-")
            rru_table = max(load.rru, key=lambda name: load.rru[name], default="-")
            wru, rru = load.wru.get(wru_table, 0), load.rru.get(rru_table, 0)
        return Demand(
            api_requests=load.requests,
            new_connections=rates.new_connections * share,
            lambda_concurrency=lambda_environments(w, load),
            dynamodb_wru=wru,
            dynamodb_rru=rru,
            sns_publish=0 if w.legacy else rates.pushes * share,
            busiest_write_table=wru_table,
            busiest_read_table=rru_table,
            invocations=load.invocations + load.relays,
            pings=rates.pings * share,
        )


def demand(w: Workload, measured: Measured, cells: int) -> Demand:
    return Sizing.of(w, measured).demand(w, cells)


def _holds(quota: Quota, value: Demand, raised: bool) -> bool:
    return value.of(quota) <= quota.limit(raised) * TARGET_UTILIZATION


def _first(test: Callable[[int], bool], low: int, high: int) -> int | None:
    """The smallest n in [low, high] for which test(n) holds, test being monotone."""
    if not test(high):
        return None
    while low < high:
        middle = (low + high) // 2
        if test(middle):
            high = middle
        else:
            low = middle + 1
    return high


MAX_CELLS_WITHOUT_SHARDS = 1_000_000


def cells_for(quota: Quota, w: Workload, sizing: Sizing, raised: bool) -> int | None:
    """The fewest cells whose heaviest cell keeps this quota under the target; None if no
    split of the shards is fine enough. More cells mean more pairs across cells (more
    Relays), so the count is bounded with no pair across and with every pair across,
    then found between."""
    top = w.shards or MAX_CELLS_WITHOUT_SHARDS

    def bound(cross: float) -> Callable[[int], bool]:
        return lambda cells: _holds(quota, sizing.demand(w, cells, cross), raised)

    low = _first(bound(0.0), 1, top)
    if low is None:
        return None
    high = _first(bound(1.0), low, top) or top
    for cells in range(low, high + 1):
        if _holds(quota, sizing.demand(w, cells), raised):
            return cells
    return None


@dataclass(frozen=True)
class Plan:
    """The deployment for a workload: its cells, and which quota made it that many."""

    cells: int | None  # None: no split of the shards is fine enough
    needs: dict[str, int | None]  # cells each cell quota needs, by key
    binding: Quota
    demand: Demand | None  # the heaviest cell's, at `cells`
    raised: bool


def plan(w: Workload, measured: Measured, raised: bool = False) -> Plan:
    sizing = Sizing.of(w, measured)
    needs = {q.key: cells_for(q, w, sizing, raised) for q in CELL_QUOTAS}
    unreachable = [q for q in CELL_QUOTAS if needs[q.key] is None]
    if unreachable:
        return Plan(None, needs, unreachable[0], None, raised)
    binding = max(CELL_QUOTAS, key=lambda q: needs[q.key] or 0)
    cells = needs[binding.key]
    assert cells is not None
    # The count one quota needs can leave another over its target (the Relay share grows
    # with the cells): go on until every quota holds at once.
    top = w.shards or MAX_CELLS_WITHOUT_SHARDS
    while not all(_holds(q, sizing.demand(w, cells), raised) for q in CELL_QUOTAS):
        cells += 1
        if cells > top:
            return Plan(None, needs, binding, None, raised)
    return Plan(cells, needs, binding, sizing.demand(w, cells), raised)


# --- deployment-wide limits ---------------------------------------------------------------


def directory_bytes(cells: int, shards: int) -> tuple[int, int]:
    """A §6 directory of this many cells: its JSON bytes, and gzipped (CloudFront
    compresses for clients that accept it). URLs and epochs as AWS would make them."""
    ids = [f"c{n}" for n in range(cells)]
    document = {
        "version": 123_456,
        "shards": shards or 65_536,
        "cells": {
            cell: {
                "url": f"wss://{n:010x}.execute-api.ap-southeast-1.amazonaws.com/prod",
                "epoch": f"{cell}-2026-12-05T00:00:00Z",
            }
            for n, cell in enumerate(ids)
        },
        "shardMap": ShardMap.even(ids, shards or 65_536).to_wire(),
        "sig": "x" * 86,
    }
    text = json.dumps(document, separators=(",", ":")).encode()
    return len(text), len(zlib.compress(text, 6)) + 18


@dataclass(frozen=True)
class DirectoryLoad:
    mode: str
    steady: float  # requests a second at the peak hour, between publishes
    burst: float  # requests a second at the peak right after a publish (v12), or steady (poll)
    monthly_requests: float
    bytes_per_fetch: int
    # v12: the bound if every open socket learned of a new version at once (each fetching
    # within the jitter): what the spread of `dv` over the pings saves.
    all_at_once: float = 0.0

    def gbps(self, rate: float) -> float:
        return rate * self.bytes_per_fetch * 8 / 1e9


def directory_load(w: Workload, measured: Measured, cells: int, mode: str) -> DirectoryLoad:
    rates = peak_rates(w, measured, cross_share(cells))
    _, gzipped = directory_bytes(cells, w.shards)
    size = gzipped + DIRECTORY_HEADER_BYTES
    devices = w.users * w.devices
    if mode == "poll":
        steady = rates.sockets / DIRECTORY_POLL_SECONDS + rates.new_connections
        return DirectoryLoad(mode, steady, steady, steady / w.peak * MONTH, size)
    # v1.2 (docs/protocol.md §6), never on a timer. Between publishes a device fetches
    # only when it starts without a directory (a connect refused 403, or a cell it cannot
    # reach, comes of a publish: a move, a failover). Each device fetches once per new
    # version, the numbered copy.
    monthly = devices * 30 * (w.directory_bumps + w.installs)
    steady = devices * w.installs / DAY * w.peak
    # At a publish an open socket learns `dv` at its next ack, syncDone or pong, then
    # waits a random 0-60 s: a quiet socket at its next pong, uniformly within the ping
    # interval (`rates.pings` a second learn); a busy one within the jitter at most; a
    # device that connects fetches after its syncDone (the new connections).
    quiet = rates.pings * w.ping_seconds
    busy = max(rates.sockets - quiet, 0.0)
    burst = rates.pings + busy / DIRECTORY_JITTER_SECONDS + rates.new_connections
    all_at_once = rates.sockets / DIRECTORY_JITTER_SECONDS + rates.new_connections
    return DirectoryLoad(mode, steady, burst, monthly, size, all_at_once)


@dataclass(frozen=True)
class DeploymentUse:
    """What the whole deployment asks of quotas it has one of."""

    fcm_messages: float
    directory_requests: float
    directory_gbps: float
    directory: DirectoryLoad

    def of(self, quota: Quota) -> float:
        value: float = getattr(self, quota.key)
        return value


def deployment_use(w: Workload, measured: Measured, cells: int) -> DeploymentUse:
    rates = peak_rates(w, measured, cross_share(cells))
    mode = "poll" if w.directory == "none" else w.directory
    directory = directory_load(w, measured, cells, mode)
    return DeploymentUse(
        fcm_messages=rates.pushes * w.android,
        directory_requests=directory.burst,
        directory_gbps=directory.gbps(directory.burst),
        directory=directory,
    )


DEPLOYMENT_KEYS = tuple(q.key for q in DEPLOYMENT_QUOTAS)


# --- the month ----------------------------------------------------------------------------


def _tiered(total: float, cells: int, tiers: cost.Tiers, per_account: bool) -> float:
    if per_account:
        return cells * cost.tiered(total / cells, tiers)
    return cost.tiered(total, tiers)


def monthly_volumes(w: Workload, measured: Measured, cells: int) -> tuple[Cost, PeakRates]:
    """The month's activity: the peak's rates over the peak factor (the day's mean),
    times a month."""
    rates = peak_rates(w, measured, cross_share(cells))
    return rates.load * (MONTH / w.peak), rates


def monthly_bill(w: Workload, measured: Measured, cells: int) -> dict[str, float]:
    """$ a month for the whole deployment at list prices, line by line."""
    month, rates = monthly_volumes(w, measured, cells)
    per_account = w.bills == "account"
    mean_sockets = rates.sockets / w.peak
    ms = w.lambda_ms / 1000 * cost.LAMBDA_MEMORY_GB  # GB-s per invocation
    wait = 0 if w.legacy else (w.lambda_ms + w.relay_wait_ms) / 1000 * cost.LAMBDA_MEMORY_GB
    relay_dollars = month.relays * (
        cost.LAMBDA_PER_MILLION_REQUESTS / 1e6 + (ms + wait) * cost.LAMBDA_PER_GB_SECOND_ARM64
    )
    bill = {
        "API Gateway messages": _tiered(
            month.api_messages, cells, cost.API_GATEWAY_MESSAGE_TIERS, per_account
        ),
        "API Gateway connection minutes": mean_sockets
        * MONTH
        / 60
        * cost.API_GATEWAY_PER_MILLION_CONNECTION_MINUTES
        / 1e6,
        "Lambda requests": month.invocations * cost.LAMBDA_PER_MILLION_REQUESTS / 1e6,
        "Lambda GB-s (arm64)": month.invocations * ms * cost.LAMBDA_PER_GB_SECOND_ARM64,
        "Relay invocations across cells (with the callers' wait)": relay_dollars,
        "DynamoDB writes (on-demand WRU)": month.total_wru * cost.DYNAMODB_PER_MILLION_WRU / 1e6,
        "DynamoDB reads (on-demand RRU)": month.total_rru * cost.DYNAMODB_PER_MILLION_RRU / 1e6,
        "SNS mobile pushes": rates.pushes / w.peak * MONTH * cost.SNS_PER_MILLION_MOBILE_PUSH / 1e6,
    }
    if w.legacy:
        # The old model priced the Relay's invocations as Lambda's and nothing beyond.
        bill["Lambda requests"] += month.relays * cost.LAMBDA_PER_MILLION_REQUESTS / 1e6
        bill["Lambda GB-s (arm64)"] += month.relays * ms * cost.LAMBDA_PER_GB_SECOND_ARM64
        del bill["Relay invocations across cells (with the callers' wait)"]
        return bill
    bill["DynamoDB storage"] = stored_gb(w, measured, rates) * cost.DYNAMODB_PER_GB_MONTH
    if w.standby:
        bill["Standbys (replicated writes, transfer, replicas, probes)"] = standby_bill(
            month.total_wru, stored_gb(w, measured, rates), cells
        ).total
    if w.directory != "none":
        bill[f"Directory ({w.directory}: CloudFront requests and bytes)"] = directory_dollars(
            directory_load(w, measured, cells, w.directory)
        )
    invocations = month.invocations + month.relays
    lambda_logs_gb = invocations * w.lambda_log_bytes / 1e9
    access_logs_gb = month.frames * w.access_log_bytes / 1e9
    bill["CloudWatch Logs (Lambda, API access logs; 30-day storage)"] = (
        _tiered(lambda_logs_gb, cells, cost.LAMBDA_LOG_TIERS, per_account=True)
        + access_logs_gb * cost.CLOUDWATCH_LOGS_PER_GB
        + (lambda_logs_gb + access_logs_gb)
        * LOGS_STORED_SHARE
        * LOG_RETENTION_MONTHS
        * cost.CLOUDWATCH_LOGS_STORED_PER_GB_MONTH
    )
    # A trace per sampled request (a Relay joins its caller's trace), and the default
    # rule's first request each second of every function.
    traces = month.invocations * w.trace_sample + (
        FUNCTIONS_PER_CELL * cells * MONTH if w.trace_sample else 0
    )
    bill["X-Ray traces (active tracing)"] = traces * cost.XRAY_PER_MILLION_TRACES / 1e6
    bill["Data transfer out to clients"] = _tiered(
        month.bytes_out / 2**30, cells, cost.INTERNET_OUT_TIERS, per_account
    )
    return bill


def waiting_copies(w: Workload, rates: PeakRates) -> float:
    """The copies waiting for offline devices in the whole deployment (Little's law: the
    copies a second that wait, times how long a device stays away, its sessions a day
    apart)."""
    waiting_per_second = rates.messages / w.peak * w.copies * (1 - w.connected)
    away = DAY * w.devices / w.connects if w.connects else DAY
    return waiting_per_second * away


def mean_item_bytes(w: Workload, measured: Measured) -> float:
    """A stored copy's size, short and maximum-size bodies mixed as the workload says."""
    return (1 - w.large) * measured.short.item_bytes + w.large * measured.large.item_bytes


def stored_gb(w: Workload, measured: Measured, rates: PeakRates) -> float:
    """Profiles, and the copies waiting for offline devices."""
    profiles = w.users * measured.profile_bytes
    return (profiles + waiting_copies(w, rates) * mean_item_bytes(w, measured)) / 1e9


@dataclass(frozen=True)
class StandbyBill:
    """$ a month of the standbys: what global tables bill for keeping the replicas."""

    replicated_writes: float
    storage: float
    transfer: float
    automation: float

    @property
    def total(self) -> float:
        return self.replicated_writes + self.storage + self.transfer + self.automation


def standby_bill(replicated_wru: float, stored: float, cells: int) -> StandbyBill:
    """Every write of the primaries' tables once more (rWRU), the replicas' storage, the
    bytes across regions (a unit moves at most 1 KB), each cell's probe once a minute."""
    probe = (
        PROBES_PER_MONTH / 1e6 * cost.LAMBDA_PER_MILLION_REQUESTS
        + PROBES_PER_MONTH * PROBE_GB_SECONDS * cost.LAMBDA_PER_GB_SECOND_ARM64
        + PROBES_PER_MONTH * 0.5 / 1e6 * cost.DYNAMODB_PER_MILLION_RRU
    )
    return StandbyBill(
        replicated_writes=replicated_wru / 1e6 * cost.DYNAMODB_PER_MILLION_REPLICATED_WRU,
        storage=stored * cost.DYNAMODB_PER_GB_MONTH,
        transfer=replicated_wru * WRITE_UNIT_BYTES / 1e9 * cost.INTER_REGION_PER_GB,
        automation=probe * cells,
    )


def directory_dollars(load: DirectoryLoad) -> float:
    """CloudFront: requests and bytes out (one distribution, in the first cell's account)."""
    requests = load.monthly_requests / 1e4 * cost.CLOUDFRONT_PER_10K_HTTPS_REQUESTS
    gb = load.monthly_requests * load.bytes_per_fetch / 2**30
    return requests + cost.tiered(gb, cost.CLOUDFRONT_OUT_TIERS)


def idle_socket_month(w: Workload, ping: Cost) -> dict[str, float]:
    """What one socket open all month and sending nothing but pings (each costing `ping`,
    every `w.ping_seconds`) costs, at the marginal prices of a deployment this size (the
    top API Gateway tier of the organization, the first tier of each account's Lambda
    logs)."""
    pings = MONTH / w.ping_seconds if ping.frames else 0
    api_price = cost.API_GATEWAY_MESSAGE_TIERS[-1][1]
    if w.bills == "account":
        api_price = cost.API_GATEWAY_MESSAGE_TIERS[0][1]
    gb_seconds = ping.invocations * w.lambda_ms / 1000 * cost.LAMBDA_MEMORY_GB
    per_ping = {
        "API Gateway messages": ping.api_messages * api_price,
        "Lambda": ping.invocations * cost.LAMBDA_PER_MILLION_REQUESTS / 1e6
        + gb_seconds * cost.LAMBDA_PER_GB_SECOND_ARM64,
        "DynamoDB writes (and the standby's)": ping.total_wru
        * (cost.DYNAMODB_PER_MILLION_WRU + (cost.DYNAMODB_PER_MILLION_WRU if w.standby else 0))
        / 1e6,
        "logs and traces": (
            ping.invocations * w.lambda_log_bytes + ping.frames * w.access_log_bytes
        )
        / 1e9
        * cost.CLOUDWATCH_LOGS_PER_GB
        + ping.invocations * w.trace_sample * cost.XRAY_PER_MILLION_TRACES / 1e6,
    }
    month = {f"pings: {line}": dollars * pings for line, dollars in per_ping.items()}
    month["connection minutes"] = MONTH / 60 * cost.API_GATEWAY_PER_MILLION_CONNECTION_MINUTES / 1e6
    return month


def keepalive_dollars(w: Workload, measured: Measured, cells: int) -> float:
    """What the keepalive adds to the month: the bill with it, less the bill without."""
    with_it = sum(monthly_bill(w, measured, cells).values())
    without = sum(monthly_bill(replace(w, keepalive="none"), measured, cells).values())
    return with_it - without


@dataclass(frozen=True)
class Unit:
    """The month's bill per unit of what it buys."""

    per_million_messages: float
    per_device_month: float
    per_connected_device_month: float  # per socket open all month (the mean's)
    per_user_month: float


def unit_costs(w: Workload, measured: Measured, cells: int, total: float) -> Unit:
    rates = peak_rates(w, measured, cross_share(cells))
    messages = rates.messages / w.peak * MONTH
    return Unit(
        per_million_messages=total / messages * 1e6,
        per_device_month=total / (w.users * w.devices),
        per_connected_device_month=total / (rates.sockets / w.peak),
        per_user_month=total / w.users,
    )


# --- which assumption matters -------------------------------------------------------------


@dataclass(frozen=True)
class Moved:
    """One assumption moved: the cells and the month's bill it gives."""

    name: str
    value: Any
    cells: int | None
    dollars: float | None


def moved_value(name: str, value: float, factor: float) -> float:
    meta = next(f.metadata for f in fields(Workload) if f.name == name)
    moved = value * factor
    if name == "peak":
        moved = max(1.0, moved)  # the peak hour is never below the day's mean
    if meta.get("share"):
        moved = min(1.0, moved)
    if "least" in meta:
        moved = max(meta["least"], moved)
    return moved


SENSITIVE = (
    "connected",
    "idle",
    "messages",
    "peak",
    "connects",
    "seen",
    "devices",
    "ping_every",
    "large",
    "watchers",
    "lambda_ms",
    "trace_sample",
    "lambda_log_bytes",
)
SWITCHES = (
    ("keepalive", "lambda"),
    ("directory", "poll"),
    ("shards", 4_096),
    ("standby", False),
    ("bills", "account"),
)


def evaluate(w: Workload, measured: Measured, raised: bool) -> tuple[int | None, float | None]:
    planned = plan(w, measured, raised)
    if planned.cells is None:
        return None, None
    return planned.cells, sum(monthly_bill(w, measured, planned.cells).values())


def sensitivity(
    w: Workload, measured: Measured, raised: bool = False, factors: tuple[float, ...] = (0.5, 2)
) -> list[tuple[str, list[Moved]]]:
    """Each assumption times each factor (shares capped at 1, devices at least 1, the
    peak at least the mean), and each switch flipped; sorted by how far the cells or the
    bill move, the largest first."""
    base_cells, base_dollars = evaluate(w, measured, raised)
    assert base_cells is not None and base_dollars is not None
    rows: list[tuple[str, list[Moved]]] = []
    for name in SENSITIVE:
        value = getattr(w, name) or (w.ping_seconds if name == "ping_every" else 0)
        moves = []
        for factor in factors:
            moved = moved_value(name, value, factor)
            changed = with_value(w, name, moved)
            if name == "peak":
                # A peakier day, not a busier one: the day's socket-hours stay, so the share
                # connected at the peak moves with it (at most every device).
                changed = replace(changed, connected=min(1.0, w.connected * moved / w.peak))
            cells, dollars = evaluate(changed, measured, raised)
            moves.append(Moved(name, moved, cells, dollars))
        rows.append((name, moves))
    for name, flipped in SWITCHES:
        if getattr(w, name) == flipped:
            continue
        cells, dollars = evaluate(with_value(w, name, flipped), measured, raised)
        rows.append((name, [Moved(name, flipped, cells, dollars)]))

    def impact(row: tuple[str, list[Moved]]) -> float:
        return max(
            max(
                abs((m.cells or math.inf) / base_cells - 1),
                abs((m.dollars or math.inf) / base_dollars - 1),
            )
            for m in row[1]
        )

    return sorted(rows, key=impact, reverse=True)
