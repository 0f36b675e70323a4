"""How many cells a billion users need, which AWS quota binds first, and what it costs.

From three things, each printed:
- AWS's quotas per account and region (`QUOTAS`: default, adjustable or not, and the
  documentation page that says so); a cell is one account and region (docs/scale.md);
- what each operation costs, measured in this run on the real handlers (moto, as `bench
  calls` and `bench cost` measure them): a message's whole life, a reconnect (connect,
  sync, disconnect), a keep-alive ping, and a send across cells next to the same send
  within one cell;
- the seed's load (`Load`): 1 billion daily users, half of them connected, 100 messages a
  day each, connections renewed as the SDK does (before API Gateway's 2 hours) and kept
  alive with its pings.

Users are spread evenly over the cells by the shard map, so with C cells a cell carries
1/C of the load and a share (C-1)/C of the sends cross cells (one Relay Invoke each).
The baseline, in the same run: what one cell carries at most before its first quota binds,
and the same-cell send next to the cross-cell one.
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace

from bench import cost
from bench.calls import CallCounter, counting, cross_cell_send, send_message, summary
from bench.capacity import CapacityMeter, Metered
from bench.catchup import metered_harness
from bench.protocol_client import BenchUser
from messenger_client.connection import ConnectionPolicy
from messenger_local.harness import Harness
from messenger_protocol.frames import Ping, Sync

DAY_SECONDS = 86_400
MONTH_SECONDS = 30 * DAY_SECONDS

# Assumptions the measurements cannot give; each printed with the result.
# Sized so a cell runs at most at this share of each quota: the rest absorbs bursts.
TARGET_UTILIZATION = 0.8
# A message to a user with no live connection pushes once to one device (an upper
# bound: the push function sends at most one per device a minute, see logic/push.py).
PUSHES_PER_OFFLINE_MESSAGE = 1


@dataclass(frozen=True)
class Quota:
    """One AWS quota per account and region, as documented."""

    key: str  # the demand it limits (Demand's field)
    name: str
    default: float
    adjustable: bool
    # What we plan on after a quota increase: an ASSUMPTION (AWS grants increases case by
    # case), None when the quota cannot be raised.
    raised: float | None
    source: str  # the documentation page's title
    path: str  # its path on docs.aws.amazon.com

    def limit(self, raised: bool) -> float:
        return self.raised if raised and self.raised is not None else self.default


APIGW_QUOTAS = "/apigateway/latest/developerguide/limits.html"
WEBSOCKET_QUOTAS = (
    "/apigateway/latest/developerguide/apigateway-execution-service-websocket-limits-table.html"
)
LAMBDA_QUOTAS = "/lambda/latest/dg/gettingstarted-limits.html"
DYNAMODB_QUOTAS = "/amazondynamodb/latest/developerguide/ServiceQuotas.html"

# The values as read on the pages named (checked for this bench in 2026-12); API
# Gateway's request quota is infra/regions.py's, which the stage throttle is sized from.
QUOTAS = (
    Quota(
        "api_requests",
        "API Gateway requests/s (frames in + @connections posts)",
        10_000,
        True,
        50_000,
        "Amazon API Gateway quotas (2,500/s in 13 newer regions; burst 5,000, not adjustable)",
        APIGW_QUOTAS,
    ),
    Quota(
        "new_connections",
        "API Gateway new WebSocket connections/s",
        500,
        True,
        5_000,
        "Quotas for configuring and running a WebSocket in API Gateway",
        WEBSOCKET_QUOTAS,
    ),
    Quota(
        "lambda_concurrency",
        "Lambda concurrent executions",
        1_000,
        True,
        20_000,
        "Lambda quotas (can be increased to tens of thousands)",
        LAMBDA_QUOTAS,
    ),
    Quota(
        "dynamodb_wru",
        "DynamoDB on-demand WRU/s per table (all tables' units)",
        40_000,
        True,
        80_000,
        "Quotas in Amazon DynamoDB (Read/write throughput)",
        DYNAMODB_QUOTAS,
    ),
    Quota(
        "dynamodb_rru",
        "DynamoDB on-demand RRU/s per table (all tables' units)",
        40_000,
        True,
        80_000,
        "Quotas in Amazon DynamoDB (Read/write throughput)",
        DYNAMODB_QUOTAS,
    ),
)

# Quotas that bound something other than a cell's steady load: printed, not sized for.
OTHER_LIMITS = (
    (
        "API Gateway connection duration 2 h, idle timeout 10 min, frame 32 KB, message "
        "128 KB (none adjustable): why clients reconnect and ping",
        WEBSOCKET_QUOTAS,
    ),
    (
        "Lambda scaling: 1,000 more execution environments per function every 10 s "
        "(not adjustable): how fast a cold cell ramps, not what it carries "
        "(Lambda scaling behavior)",
        "/lambda/latest/dg/scaling-behavior.html",
    ),
    (
        "DynamoDB partition: 3,000 RCU and 1,000 WCU per second (not adjustable): per key, "
        "so per user here, never per cell (Best practices for designing and using "
        "partition keys effectively in DynamoDB)",
        "/amazondynamodb/latest/developerguide/bp-partition-key-design.html",
    ),
    (
        "SNS mobile push Publish rate per account and region (adjustable): not confirmed "
        "for this bench, so not sized for; see the pushes per cell below (Amazon Simple "
        "Notification Service endpoints and quotas)",
        "/general/latest/gr/sns.html",
    ),
)


@dataclass(frozen=True)
class Load:
    """The seed's load on the whole deployment."""

    daily_users: float = 1e9
    connected_share: float = 0.5
    messages_per_user_per_day: float = 100
    # The SDK moves to a new connection this often (before API Gateway's 2 hours) ...
    connection_seconds: float = ConnectionPolicy().max_age
    # ... and pings when it sent nothing for this long (the idle timeout is 10 minutes).
    ping_interval: float = ConnectionPolicy().ping_interval
    # The busiest second over the average one (1.0: the seed's ~1.2 million messages a
    # second is the day's average, 1e11 messages / 86,400 s).
    peak_factor: float = 1.0

    @property
    def messages_per_second(self) -> float:
        return self.daily_users * self.messages_per_user_per_day / DAY_SECONDS * self.peak_factor

    @property
    def connections(self) -> float:
        return self.daily_users * self.connected_share


@dataclass(frozen=True)
class Operation:
    """What one occurrence of an operation costs, as measured."""

    frames: int  # client frames: API Gateway requests in
    posts: int  # @connections posts: API Gateway requests out
    invocations: int  # Lambda invocations
    wru: float = 0
    rru: float = 0
    api_messages: int = 0  # billed messages (per 32 KB): frames, replies and posts

    @property
    def requests(self) -> int:
        return self.frames + self.posts


@dataclass(frozen=True)
class Measured:
    life: Operation  # a short text's life in one cell: send, ack, receipt ack
    cross_cell_extra: Operation  # what the same send costs more across two cells
    reconnect: Operation  # connect (authorizer + $connect), sync of nothing, disconnect
    ping: Operation


@dataclass(frozen=True)
class Demand:
    """Per-second demand on one cell, one field per quota key."""

    api_requests: float
    new_connections: float
    lambda_concurrency: float
    dynamodb_wru: float
    dynamodb_rru: float
    invocations: float
    pushes: float
    pings: float


def pings_per_second(load: Load, life: Operation) -> float:
    """Keep-alive pings: a connection pings after `ping_interval` without sending. Frames
    of message lives arrive at random (Poisson), so a share exp(-frames per interval) of
    the intervals is idle."""
    frames_per_interval = (
        load.messages_per_second * life.frames * load.ping_interval / load.connections
    )
    return load.connections / load.ping_interval * math.exp(-frames_per_interval)


def demand(load: Load, measured: Measured, cells: int) -> Demand:
    """What one of `cells` cells must carry, users spread evenly."""
    share = 1 / cells
    cross = (cells - 1) / cells
    messages = load.messages_per_second * share
    reconnects = load.connections / load.connection_seconds * share
    pings = pings_per_second(load, measured.life) * share
    extra = measured.cross_cell_extra

    def per_second(of: Callable[[Operation], float]) -> float:
        life = of(measured.life) + cross * of(extra)
        return messages * life + reconnects * of(measured.reconnect) + pings * of(measured.ping)

    invocations = per_second(lambda op: op.invocations)
    return Demand(
        api_requests=per_second(lambda op: op.requests),
        new_connections=reconnects,
        lambda_concurrency=invocations * cost.LAMBDA_BILLED_MS_PER_INVOCATION / 1000,
        # Every table's units against one table's quota: an upper bound (the Queue table
        # takes most of them).
        dynamodb_wru=per_second(lambda op: op.wru),
        dynamodb_rru=per_second(lambda op: op.rru),
        invocations=invocations,
        pushes=messages * (1 - load.connected_share) * PUSHES_PER_OFFLINE_MESSAGE,
        pings=pings,
    )


def fits(load: Load, measured: Measured, cells: int, raised: bool) -> bool:
    need = demand(load, measured, cells)
    return all(getattr(need, q.key) <= q.limit(raised) * TARGET_UTILIZATION for q in QUOTAS)


def cells_needed(load: Load, measured: Measured, raised: bool) -> int:
    """The fewest cells whose every quota holds (the cross-cell share grows with the cells,
    so the per-cell demand is recomputed for each count)."""
    low, high = 1, 1
    while not fits(load, measured, high, raised):
        low, high = high, high * 2
    while low < high:
        middle = (low + high) // 2
        if fits(load, measured, middle, raised):
            high = middle
        else:
            low = middle + 1
    return high


def binding(load: Load, measured: Measured, cells: int, raised: bool) -> Quota:
    """The quota closest to its limit at this many cells."""
    need = demand(load, measured, cells)
    return max(QUOTAS, key=lambda q: getattr(need, q.key) / q.limit(raised))


def single_cell_ceiling(load: Load, measured: Measured, raised: bool) -> float:
    """The daily users one cell carries at most, the seed's habits unchanged (baseline)."""
    need = demand(load, measured, 1)
    usage = max(getattr(need, q.key) / (q.limit(raised) * TARGET_UTILIZATION) for q in QUOTAS)
    return load.daily_users / usage


# --- cost at list prices (bench/cost.py's prices) -------------------------------------------


def monthly_cost(load: Load, measured: Measured, cells: int) -> dict[str, float]:
    """$ a month for the whole deployment; API Gateway's message tiers apply per account,
    so per cell."""
    need = demand(load, measured, cells)
    share = 1 / cells
    cross = (cells - 1) / cells
    messages = load.messages_per_second * share * MONTH_SECONDS
    reconnects = load.connections / load.connection_seconds * share * MONTH_SECONDS
    pings = need.pings * MONTH_SECONDS

    def monthly(of: Callable[[Operation], float]) -> float:
        life = of(measured.life) + cross * of(measured.cross_cell_extra)
        return messages * life + reconnects * of(measured.reconnect) + pings * of(measured.ping)

    api_messages = monthly(lambda op: op.api_messages)
    first = min(api_messages, 1e9)
    invocations = need.invocations * MONTH_SECONDS
    gb_seconds = invocations * cost.LAMBDA_BILLED_MS_PER_INVOCATION / 1000 * cost.LAMBDA_MEMORY_GB
    connection_minutes = load.connections * share * MONTH_SECONDS / 60
    per_cell = {
        "API Gateway messages": (
            first * cost.API_GATEWAY_PER_MILLION_MESSAGES
            + (api_messages - first) * cost.API_GATEWAY_PER_MILLION_MESSAGES_OVER_BILLION
        )
        / 1e6,
        "API Gateway connection minutes": connection_minutes
        * cost.API_GATEWAY_PER_MILLION_CONNECTION_MINUTES
        / 1e6,
        "Lambda requests": invocations * cost.LAMBDA_PER_MILLION_REQUESTS / 1e6,
        "Lambda GB-s (arm64)": gb_seconds * cost.LAMBDA_PER_GB_SECOND_ARM64,
        "DynamoDB writes": monthly(lambda op: op.wru) * cost.DYNAMODB_PER_MILLION_WRU / 1e6,
        "DynamoDB reads": monthly(lambda op: op.rru) * cost.DYNAMODB_PER_MILLION_RRU / 1e6,
        "SNS push": need.pushes * MONTH_SECONDS * cost.SNS_PER_MILLION_MOBILE_PUSH / 1e6,
    }
    return {line: dollars * cells for line, dollars in per_cell.items()}


# --- measuring, in this run -----------------------------------------------------------------


def _operation(calls: Counter[str], units: Metered, frames: int, invocations: int) -> Operation:
    return Operation(
        frames=frames,
        posts=calls["apigatewaymanagementapi.PostToConnection"],
        invocations=invocations + calls["lambda.Invoke"],
        wru=units.total_wru,
        rru=units.total_rru,
    )


def _measure_one(
    h: Harness, counter: CallCounter, meter: CapacityMeter, run: Callable[[], object]
) -> tuple[Counter[str], Metered]:
    with counting(h, counter) as calls, meter.measuring() as units:
        run()
    return calls, units


def measure() -> tuple[Measured, Counter[str], Counter[str], Counter[str]]:
    """Every operation's cost on the real handlers; also the same-cell send's calls and
    the cross-cell send's in each cell (printed as the baseline)."""
    with metered_harness(rate_limit_per_minute=6000, rate_limit_burst=1000) as (h, c, meter):
        life = cost.run_life(h, c, meter, cost.SHORT_TEXT_BYTES)
        same_cell = send_message(h, c, recipient_connections=1)
        user = BenchUser.generate("scale-reconnect")
        h.disconnect(h.connect(user))  # registered once
        connection = h.connect(user, with_keys=False)  # a fresh container's first calls

        reconnect = Operation(0, 0, 0)
        # (frames, Lambda invocations, billed messages besides the posts, what runs): a
        # connect is not a billed message (its minutes are); the sync frame is.
        for frames, invocations, billed, run in (
            (1, 2, 0, lambda: h.disconnect(h.connect(user, with_keys=False))),
            (1, 1, 1, lambda: h.send(connection, Sync(batch=True).to_wire())),
        ):
            calls, units = _measure_one(h, c, meter, run)
            step = _operation(calls, units, frames, invocations)
            reconnect = Operation(
                reconnect.frames + step.frames,
                reconnect.posts + step.posts,
                reconnect.invocations + step.invocations,
                reconnect.wru + step.wru,
                reconnect.rru + step.rru,
                reconnect.api_messages + billed + step.posts,
            )
        calls, units = _measure_one(h, c, meter, lambda: h.send(connection, Ping().to_wire()))
        ping = replace(_operation(calls, units, 1, 1), api_messages=2)  # the ping, its pong
    across = cross_cell_send()
    extra = across.total - same_cell
    # What crossing adds: the Relay Invoke and the Relay's own invocation, nothing else.
    assert {op for op, n in extra.items() if n} == {"lambda.Invoke"}, extra
    measured = Measured(
        life=Operation(
            frames=sum(1 for _ in life.steps),
            posts=sum(
                calls["apigatewaymanagementapi.PostToConnection"] for _, calls, _ in life.steps
            ),
            invocations=life.invocations,
            wru=life.units.total_wru,
            rru=life.units.total_rru,
            api_messages=life.api_messages,
        ),
        cross_cell_extra=Operation(0, 0, extra["lambda.Invoke"]),
        reconnect=reconnect,
        ping=ping,
    )
    return measured, same_cell, across.sender_cell, across.home_cell


# --- printing -------------------------------------------------------------------------------


def _n(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.2f}"


def print_measured(
    measured: Measured, same: Counter[str], c0: Counter[str], c1: Counter[str]
) -> None:
    print("Measured in this run (moto, the real handlers), per occurrence:")
    print(
        f"  {'':<44}{'frames':>7}{'posts':>7}{'Lambda':>7}{'WRU':>7}{'RRU':>7}{'billed msgs':>12}"
    )
    for label, op in (
        ("message life, one cell (send, ack, receipt ack)", measured.life),
        ("  + across cells (the peer's Relay)", measured.cross_cell_extra),
        ("reconnect (connect, sync, disconnect)", measured.reconnect),
        ("keep-alive ping", measured.ping),
    ):
        print(
            f"  {label:<44}{op.frames:>7}{op.posts:>7}{op.invocations:>7}"
            f"{op.wru:>7g}{op.rru:>7g}{op.api_messages:>12}"
        )
    print("Baseline, the same sendMessage (recipient online, 1 connection):")
    print(f"  {'within one cell':<30} {summary(same)}")
    print(f"  {'across cells: sender (c0)':<30} {summary(c0)}")
    print(f"  {'across cells: home (c1, Relay)':<30} {summary(c1)}")


def print_model(load: Load, measured: Measured) -> None:
    print(
        f"\nLoad: {load.daily_users:,.0f} daily users, {load.connected_share:.0%} connected "
        f"({load.connections:,.0f} connections), {load.messages_per_user_per_day:g} messages "
        f"a day each = {load.messages_per_second:,.0f} messages/s (peak factor "
        f"{load.peak_factor:g}); a new connection every {load.connection_seconds:,.0f} s "
        f"and a ping after {load.ping_interval:,.0f} s without a frame (the SDK's timings)."
    )
    print(
        f"Assumed: cells sized to {TARGET_UTILIZATION:.0%} of each quota; Lambda "
        f"{cost.LAMBDA_BILLED_MS_PER_INVOCATION} ms per invocation (bench cost); "
        f"{PUSHES_PER_OFFLINE_MESSAGE} push per message to an offline user; the raised "
        "quotas are what we would ask a support case for, NOT what AWS promises."
    )
    for raised in (False, True):
        cells = cells_needed(load, measured, raised)
        need = demand(load, measured, cells)
        first = binding(load, measured, cells, raised)
        title = "raised (assumed) quotas" if raised else "default quotas"
        print(f"\n-- {title}: {cells:,} cells; binds first: {first.name}")
        print(f"  {'quota':<58}{'limit':>10}{'adj.':>6}{'per cell':>12}{'used':>7}{'headroom':>10}")
        for quota in QUOTAS:
            limit = quota.limit(raised)
            used = getattr(need, quota.key)
            print(
                f"  {quota.name:<58}{_n(limit):>10}{'yes' if quota.adjustable else 'no':>6}"
                f"{_n(used):>12}{used / limit:>7.0%}{_n(limit - used):>10}"
            )
        print(
            f"  also per cell: {_n(need.invocations)} Lambda invocations/s, "
            f"{_n(need.pings)} pings/s, {_n(need.pushes)} SNS pushes/s"
        )
        ceiling = single_cell_ceiling(load, measured, raised)
        print(
            f"  baseline: ONE cell carries at most {ceiling:,.0f} daily users "
            f"({ceiling / load.daily_users * load.messages_per_second:,.0f} messages/s); "
            f"{cells:,} cells carry {load.daily_users:,.0f}"
        )
        bill = monthly_cost(load, measured, cells)
        print(f"  monthly cost at list prices ({cost.PRICES_DATE}):")
        for line, dollars in bill.items():
            print(f"    {line:<34}${dollars:>16,.0f}")
        total = sum(bill.values())
        messages = load.messages_per_second * MONTH_SECONDS
        print(
            f"    {'TOTAL':<34}${total:>16,.0f}  (${total / messages * 1e6:.2f} per million "
            f"messages, ${total / load.daily_users:.3f} per daily user)"
        )
    print("\nQuotas, as documented (https://docs.aws.amazon.com + path):")
    for quota in QUOTAS:
        print(f"  {quota.name}: {quota.source}, {quota.path}")
    print("Limits that bound something else (not sized for):")
    for text, path in OTHER_LIMITS:
        print(f"  {text}, {path}")


def main(argv: list[str] | None = None) -> int:
    measured, same, c0, c1 = measure()
    print_measured(measured, same, c0, c1)
    print_model(Load(), measured)
    return 0


if __name__ == "__main__":
    sys.exit(main())
