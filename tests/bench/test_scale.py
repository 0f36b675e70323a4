"""`bench scale`: the cell and cost model's arithmetic, on small numbers checked by hand."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from bench import cost
from bench.quotas import CELL_QUOTAS, DEPLOYMENT_QUOTAS
from bench.scale import print_directory_publish
from bench.scale_model import (
    AS_BEFORE,
    DAY,
    DIRECTORY_POLL_SECONDS,
    MONTH,
    NOTHING,
    RENEWAL_SECONDS,
    TARGET_UTILIZATION,
    Cost,
    Measured,
    MessageCosts,
    Moved,
    Relays,
    Sizing,
    Workload,
    cells_for,
    cross_share,
    demand,
    deployment_use,
    directory_dollars,
    directory_load,
    heaviest_share,
    lambda_environments,
    message_cost,
    monthly_bill,
    moved_value,
    peak_rates,
    pings_per_second,
    plan,
    renewal_cost,
    renewals_per_session,
    sensitivity,
    session_cost,
    standby_bill,
    with_value,
)
from messenger_protocol.cells import ShardMap

pytestmark = pytest.mark.unit

# 13,824,000 users x 100 messages a day = 16,000 messages a second.
USERS = 13_824_000
API_RATE = 10_000 * TARGET_UTILIZATION  # the default API Gateway quota a cell may use
QUOTA = {q.key: q for q in CELL_QUOTAS}


def pieces(send: Cost, **others: Cost) -> MessageCosts:
    parts = {
        name: others.get(name, NOTHING)
        for name in ("copy", "copy_ack", "receipts", "receipt", "receipt_ack", "mark_seen")
    }
    return MessageCosts(send=send, item_bytes=400, **parts)


def by_hand(
    *,
    wru: float = 0,
    relay: int = 0,
    api_messages: float = 0,
    message: MessageCosts | None = None,
    ping: Cost = NOTHING,
    **connection: Cost,
) -> Measured:
    """A message life of 3 frames and 2 posts (5 API Gateway requests, 3 invocations);
    nothing else unless given."""
    life = pieces(
        Cost(frames=3, posts=2, invocations=3, wru={"Queue": wru}, api_messages=api_messages)
    )
    steps = {
        name: connection.get(name, NOTHING)
        for name in (
            "handshake",
            "visibility",
            "sync",
            "subscribe",
            "disconnect",
            "presence_change",
            "watcher_post",
            "legacy_reconnect",
        )
    }
    return Measured(
        short=message or life,
        large=message or life,
        ping=ping,
        relays=Relays(send=relay, ack=relay, mark_seen=relay, subscribe=relay, presence_change=0),
        profile_bytes=200,
        **steps,
    )


def old_model(users: float = USERS) -> Workload:
    """The old model's assumptions and reckoning (`--as-before`)."""
    workload = Workload(users=users)
    for name, value in AS_BEFORE.items():
        workload = with_value(workload, name, value)
    return workload


def test_the_heaviest_cell_owns_the_rounded_up_share_of_the_shards() -> None:
    # Given 65,536 shards and 4,096 split as the shard map splits them (ShardMap.even)
    for shards, cells in ((65_536, 801), (65_536, 3_641), (4_096, 801), (4_096, 4_096), (10, 3)):
        # When the model takes the heaviest cell's share
        share = heaviest_share(cells, shards)
        # Then it is the largest range the map gives any cell, ⌈S/N⌉ shards
        largest = max(r.last - r.first + 1 for r in ShardMap.even(ids(cells), shards).ranges)
        assert share == largest / shards == math.ceil(shards / cells) / shards
    # And 4,096 shards over 801 cells: 6 shards for the heaviest, 17% over an even split
    assert heaviest_share(801, 4_096) * 801 == pytest.approx(6 * 801 / 4_096)
    # And without shards users split evenly; and no cell can own less than one shard
    assert heaviest_share(801, 0) == 1 / 801
    with pytest.raises(ValueError):
        heaviest_share(4_097, 4_096)


def ids(cells: int) -> list[str]:
    return [f"c{n}" for n in range(cells)]


def test_a_lambda_environment_serves_at_most_ten_requests_a_second() -> None:
    # Given 1,000 invocations a second of 25 ms each (25 environments busy by duration)
    w = Workload(lambda_ms=25)
    load = Cost(invocations=1_000)
    # When the model counts the environments
    # Then it needs 100: each serves at most 10 requests a second
    assert lambda_environments(w, load) == 100
    # And at 250 ms a request the duration binds: 250 environments
    assert lambda_environments(replace(w, lambda_ms=250), load) == pytest.approx(250)
    # And the old model counted the duration only: 25
    assert lambda_environments(old_model(), load) == pytest.approx(25)
    # And a Relay is an invocation too, and its synchronous caller waits for it:
    # 100 Relays a second of 25 ms, each waited on for 25 + 10 ms
    relayed = Cost(invocations=1_000, relays=100)
    assert lambda_environments(w, relayed) == 110  # (1,000 + 100) / 10
    # And at 250 ms: the invocations, the Relays, and the callers waiting 250 + 10 ms
    assert lambda_environments(replace(w, lambda_ms=250), relayed) == pytest.approx(
        1_000 * 0.25 + 100 * 0.25 + 100 * 0.26
    )


def test_cells_follow_the_api_requests_by_hand_and_double_with_the_users() -> None:
    # Given 0.95 x USERS: 15,200 messages/s x 5 requests = 76,000 requests/s = 9.5 cells
    users = 0.95 * USERS
    # When the old model sizes the deployment, for those users and twice as many
    one, two = (plan(old_model(n), by_hand()).cells for n in (users, 2 * users))
    # Then it needs what the hand computation says: 10 cells, then 19
    assert one == math.ceil(users * 100 / 86_400 * 5 / API_RATE) == 10
    assert two == math.ceil(2 * users * 100 / 86_400 * 5 / API_RATE) == 19
    # And at the same number of cells, twice the users make twice each cell's demand
    at_ten = demand(old_model(users), by_hand(wru=3), 10)
    doubled = demand(old_model(2 * users), by_hand(wru=3), 10)
    assert doubled.api_requests == pytest.approx(2 * at_ten.api_requests)
    assert doubled.dynamodb_wru == pytest.approx(2 * at_ten.dynamodb_wru)


def test_shard_rounding_sizes_the_deployment_by_its_heaviest_cell() -> None:
    # Given 16,000 messages/s x 5 requests = 80,000 requests/s: 10 cells if split evenly
    even = old_model()
    # When the shards are 16: 10 cells give some cells 2 shards (1/8 of the load each)
    sixteen = replace(even, shards=16)
    # Then the heaviest cell carries 10,000 requests/s and the model needs 16 cells, one
    # shard each (8 to 15 cells still leave a cell with 2 shards)
    assert demand(sixteen, by_hand(), 10).api_requests == pytest.approx(80_000 * 2 / 16)
    assert plan(even, by_hand()).cells == 10
    assert plan(sixteen, by_hand()).cells == 16
    # And with 64 shards, 10 cells own at most 7 (87.5% of the quota): 11 cells, 6 each
    assert plan(replace(even, shards=64), by_hand()).cells == 11
    # And the count is the smallest that fits, found by trying every count
    for shards in (16, 64, 100):
        w = replace(even, shards=shards)
        quota = QUOTA["api_requests"]
        first = next(
            n for n in range(1, shards + 1) if demand(w, by_hand(), n).api_requests <= API_RATE
        )
        assert cells_for(quota, w, Sizing.of(w, by_hand()), raised=False) == first


def test_raising_the_binding_quota_hands_the_binding_to_the_next() -> None:
    # Given a message that takes 5 requests and 15 WRU: at default quotas 5/10,000 of
    # the API quota and 15/40,000 of DynamoDB's; raised, 5/50,000 and 15/80,000
    costly = by_hand(wru=15)
    # When the model looks for the quota that binds first
    default = plan(old_model(), costly, raised=False)
    raised = plan(old_model(), costly, raised=True)
    # Then API Gateway binds at default quotas, and DynamoDB once API Gateway's is raised
    assert default.binding.key == "api_requests"
    assert raised.binding.key == "dynamodb_wru"
    # And the cells needed fall accordingly: 16,000 x 15 / (80,000 x 0.8) = 3.75 -> 4
    assert raised.cells == 4
    # And each quota's own need is printed: 10 cells for the requests, 8 for the writes
    assert default.needs["api_requests"] == 10
    assert default.needs["dynamodb_wru"] == math.ceil(16_000 * 15 / (40_000 * 0.8))


def test_a_share_of_sends_cross_cells_and_adds_one_relay_invocation() -> None:
    # Given 4 cells and a cross-cell send that adds 1 Relay invocation
    cells = 4
    # When the old model counts a cell's Lambda invocations
    need = demand(old_model(), by_hand(relay=1), cells)
    # Then each cell runs its quarter of the messages' 3 invocations, and the Relay for the
    # 3/4 of them that cross cells
    assert need.invocations == pytest.approx(16_000 / cells * (3 + (cells - 1) / cells))
    # And one cell alone has no cross-cell sends at all
    assert demand(old_model(), by_hand(relay=1), 1).invocations == pytest.approx(16_000 * 3)
    # And today's model also relays the receipt of the ack and a third of a `seen`
    today = replace(old_model(), legacy=False, seen=1 / 3)
    relayed = message_cost(by_hand().short, today, cross_share(cells), by_hand(relay=1).relays)
    assert relayed.relays == pytest.approx(3 / 4 * (1 + 1 + 1 / 3))


def test_devices_and_seen_receipts_multiply_the_pieces_of_a_message() -> None:
    # Given pieces whose costs tell them apart (frames 1, 10, 100, ...)
    message = pieces(
        Cost(frames=1),
        copy=Cost(frames=10),
        copy_ack=Cost(frames=100),
        receipts=Cost(frames=1_000),
        receipt=Cost(frames=10_000),
        receipt_ack=Cost(frames=100_000),
        mark_seen=Cost(frames=1_000_000),
    )
    no_relays = Relays(0, 0, 0, 0, 0)
    # When a message goes between users of 2 devices each, and a third is marked seen
    w = Workload(devices=2, seen=1 / 3)
    counted = message_cost(message, w, 0, no_relays).frames
    # Then: 1 send, 2 further copies (the recipient's 2nd device, the sender's other one),
    # 3 copy acks, 1 sender lookup, 2 receipts and their acks (one per sender device),
    # and for a third of messages a markSeen with 2 more receipts and acks
    assert counted == pytest.approx(
        1 + 2 * 10 + 3 * 100 + 1_000 + 2 * 10_000 + 2 * 100_000 + (1_000_000 + 2 * 110_000) / 3
    )
    # And one device each, no `seen`: the measured life once, piece by piece
    single = message_cost(message, Workload(devices=1, seen=0), 0, no_relays).frames
    assert single == 1 + 100 + 1_000 + 10_000 + 100_000


def test_renewals_come_from_sockets_that_outlive_two_hours() -> None:
    # Given no sessions (the old model): every socket renews every RENEWAL_SECONDS
    w = Workload(users=1e6, devices=1, connected=0.5, connects=0, peak=1)
    rates = peak_rates(w, by_hand(), 0)
    assert rates.renewals == pytest.approx(0.5e6 / RENEWAL_SECONDS)
    # When users open 30 sessions a day: sockets live 500,000 / 347.2 s = 1,440 s on
    # average, and an exponential lifetime outlives k renewal periods with e^(-k 6600/1440)
    busy = replace(w, connects=30)
    sessions = 1e6 * 30 / DAY
    lifetime = 0.5e6 / sessions
    expected = math.exp(-RENEWAL_SECONDS / lifetime) / (1 - math.exp(-RENEWAL_SECONDS / lifetime))
    # Then the renewals a session makes are that sum
    assert renewals_per_session(busy, sessions) == pytest.approx(expected)
    assert peak_rates(busy, by_hand(), 0).renewals == pytest.approx(sessions * expected)
    # And new connections are the sessions and renewals together
    assert peak_rates(busy, by_hand(), 0).new_connections == pytest.approx(
        sessions * (1 + expected)
    )


def test_idle_sockets_ping_every_interval_and_busy_ones_rarely() -> None:
    # Given 1,000 sockets, 80% idle, and the others sending 1,000 frames a second
    w = Workload(idle=0.8, keepalive="lambda", ping_every=240)
    # When the model counts their pings
    pings = pings_per_second(w, 1_000, 1_000)
    # Then the idle ones ping every 240 s; each busy one sends 5 frames a second, so a
    # 240 s interval without a frame has probability e^-1200
    assert pings == pytest.approx(1_000 / 240 * (0.8 + 0.2 * math.exp(-1_000 * 240 / 200)))
    # And v1.2's cadence of 540 s makes fewer pings
    assert pings_per_second(replace(w, ping_every=540), 1_000, 1_000) < pings
    # And with every socket busy at one frame a minute, exp(-4) of the intervals ping
    spread = pings_per_second(replace(w, idle=0), 1_000, 1_000 / 60)
    assert spread == pytest.approx(1_000 / 240 * math.exp(-4))


def test_the_gateway_keepalive_costs_no_function_and_no_write() -> None:
    # Given a measured ping of one frame, one invocation, one WRU and 2 billed messages
    measured = by_hand(ping=Cost(frames=1, invocations=1, wru={"Limits": 1}, api_messages=2))
    lambda_pings = Workload(users=1e6, idle=1, keepalive="lambda")
    gateway_pings = replace(lambda_pings, keepalive="gateway")
    # When the same sockets ping, today's way and v1.2's
    today = peak_rates(lambda_pings, measured, 0)
    target = peak_rates(gateway_pings, measured, 0)
    # Then v1.2's pings (every 540 s, not 240 s) invoke nothing and write nothing
    assert target.pings == pytest.approx(today.pings * 240 / 540)
    assert today.load.invocations - target.load.invocations == pytest.approx(today.pings)
    assert today.load.wru["Limits"] == pytest.approx(today.pings)
    assert target.load.wru.get("Limits", 0) == 0
    # And both bill the ping and its pong
    assert target.load.api_messages == pytest.approx(
        2 * target.pings + today.load.api_messages - 2 * today.pings
    )


def test_connection_minutes_and_the_message_tiers_are_priced_by_hand() -> None:
    # Given 4 cells, each billed per account: 16,000 / 4 messages/s x 6 billed messages
    w = replace(old_model(), connected=0.5)
    model = by_hand(api_messages=6)
    # When the month is priced
    bill = monthly_bill(w, model, 4)
    # Then connection minutes are every connection's minutes of the month
    minutes = USERS * 0.5 * MONTH / 60
    assert bill["API Gateway connection minutes"] == pytest.approx(
        minutes * cost.API_GATEWAY_PER_MILLION_CONNECTION_MINUTES / 1e6
    )
    # And each cell pays its first billion messages at the first tier, the rest at the next
    per_cell = 16_000 / 4 * 6 * MONTH
    dollars = (
        1e9 * cost.API_GATEWAY_PER_MILLION_MESSAGES
        + (per_cell - 1e9) * cost.API_GATEWAY_PER_MILLION_MESSAGES_OVER_BILLION
    ) / 1e6
    assert bill["API Gateway messages"] == pytest.approx(4 * dollars)
    # And billed as one organization, only the first billion of all is at the first tier
    org = monthly_bill(replace(w, bills="org"), model, 4)["API Gateway messages"]
    assert org == pytest.approx((1e9 * 1.00 + (4 * per_cell - 1e9) * 0.80) / 1e6)


def test_tiers_bill_each_tier_in_turn() -> None:
    # Given tiers of 10 units at $2, 20 at $1, then $0.50
    tiers = ((10, 2.0), (20, 1.0), (math.inf, 0.5))
    # Then 5 units cost 10, 25 cost 20 + 15, 100 cost 20 + 20 + 35
    assert cost.tiered(5, tiers) == 10
    assert cost.tiered(25, tiers) == 35
    assert cost.tiered(100, tiers) == 75


def test_the_peak_makes_cells_and_the_month_follows_the_mean() -> None:
    # Given today's model with the peak at 1, 2 and 4 times the mean, the day's
    # socket-hours held (the share connected at the peak moves with it)
    measured = by_hand(wru=9, api_messages=6)
    cells, bills = [], []
    for peak in (1.0, 2.0, 4.0):
        w = replace(
            old_model(), legacy=False, peak=peak, connected=min(1.0, 0.25 * peak), shards=65_536
        )
        planned = plan(w, measured)
        assert planned.cells is not None
        cells.append(planned.cells)
        bills.append(monthly_bill(w, measured, planned.cells)["DynamoDB writes (on-demand WRU)"])
    # Then more peak needs more cells, about in proportion
    assert cells[0] < cells[1] < cells[2]
    assert cells[2] / cells[0] == pytest.approx(4, rel=0.1)
    # And the month's writes are the same: the day's messages did not change
    assert bills[0] == pytest.approx(bills[1]) == pytest.approx(bills[2])


def test_more_of_any_load_never_needs_fewer_cells() -> None:
    # Given today's model on the pieces of a measured-looking message
    message = pieces(
        Cost(frames=1, posts=1, invocations=1, wru={"Queue": 2, "Limits": 1}, api_messages=3),
        copy=Cost(posts=1, wru={"Queue": 2}, api_messages=1),
        copy_ack=Cost(frames=1, invocations=1, wru={"Queue": 2, "Limits": 1}, api_messages=1),
        receipt=Cost(posts=1, wru={"Queue": 1}, api_messages=1),
        receipt_ack=Cost(frames=1, invocations=1, wru={"Queue": 1, "Limits": 1}, api_messages=1),
        mark_seen=Cost(frames=1, invocations=1, wru={"Limits": 2}, api_messages=1),
    )
    measured = by_hand(
        message=message,
        handshake=Cost(frames=1, invocations=2, wru={"Users": 2}),
        sync=Cost(frames=1, posts=1, invocations=1, wru={"Limits": 1}),
        presence_change=Cost(invocations=1),
        watcher_post=Cost(posts=1),
        ping=Cost(frames=1, invocations=1, wru={"Limits": 1}, api_messages=2),
    )
    base = Workload(users=1e8)
    base_cells = plan(base, measured).cells
    assert base_cells is not None
    # When any one load doubles
    for name in ("messages", "connects", "seen", "devices", "watchers", "users"):
        more = with_value(base, name, getattr(base, name) * 2)
        # Then the cells do not fall, and the month costs more
        more_cells = plan(more, measured).cells
        assert more_cells is not None and more_cells >= base_cells, name
        assert sum(monthly_bill(more, measured, more_cells).values()) > sum(
            monthly_bill(base, measured, base_cells).values()
        ), name


def test_the_directory_is_read_by_every_socket_each_minute_until_v12() -> None:
    # Given 1,000,000 users of 1 device, half connected at the peak, 10 sessions a day
    w = Workload(users=1e6, devices=1, connected=0.5, connects=10, peak=2)
    measured = by_hand()
    rates = peak_rates(w, measured, cross_share(10))
    # When v1.1's SDKs poll
    poll = directory_load(w, measured, 10, "poll")
    # Then every socket reads it every 60 s, and every new connection once
    assert poll.steady == pytest.approx(
        500_000 / DIRECTORY_POLL_SECONDS + rates.sessions + rates.renewals
    )
    # And with v1.2 a device reads it once per new version (and on a fresh start)
    v12 = directory_load(w, measured, 10, "v12")
    assert v12.monthly_requests == pytest.approx(1e6 * 30 * (1 + 0.002))
    # Between publishes only the fresh starts: 0.2% of devices a day, at the peak's rate
    assert v12.steady == pytest.approx(1e6 * 0.002 / DAY * 2)
    assert v12.steady < poll.steady / 100
    # And at a publish a quiet socket learns `dv` at its next pong (spread over the ping
    # interval), a busy one within the 60 s jitter, each new connection after its syncDone
    quiet = rates.pings * w.ping_seconds
    assert 0 < quiet < 500_000
    assert v12.burst == pytest.approx(
        rates.pings + (500_000 - quiet) / 60 + rates.sessions + rates.renewals
    )
    # Which is less than every socket at once
    assert v12.burst < v12.all_at_once == pytest.approx(500_000 / 60 + rates.new_connections)


def test_at_a_billion_users_the_directory_is_quiet_between_publishes_and_over_at_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a billion users on the default workload, and one distribution's request quota
    w = Workload(users=1e9)
    measured = by_hand()
    quota = next(q for q in DEPLOYMENT_QUOTAS if q.key == "directory_requests")
    assert quota.default == 250_000 and quota.adjustable
    load = directory_load(w, measured, 2000, "v12")
    # Then between publishes it is under 1% of the quota
    assert load.steady < quota.default / 100
    # And a publish, spread as §6 spreads it, is still over it: the bench says so and why
    assert load.burst > quota.default
    print_directory_publish(w, measured, 2000, quota.default)
    said = capsys.readouterr().out
    assert "OVER one distribution's quota" in said
    assert "raise the distribution's request and transfer quotas" in said
    assert f"{load.burst / TARGET_UTILIZATION:,.0f}/s" in said


def test_by_default_the_bill_prices_the_directory_reads_our_clients_make() -> None:
    # Given the default workload, as `bench scale` parses it with no flags, and a plan
    from bench.scale import parse

    w = replace(parse([])[0], users=1e8)
    measured = by_hand(ping=Cost(frames=1, api_messages=2))
    planned = plan(w, measured)
    assert planned.cells is not None
    cells = planned.cells
    # When the month is billed
    bill = monthly_bill(w, measured, cells)
    # Then its directory line is §6's reads (no polling), as our SDKs and web app make them
    lines = [line for line in bill if line.startswith("Directory")]
    assert lines == ["Directory (v12: CloudFront requests and bytes)"]
    v12 = directory_load(w, measured, cells, "v12")
    assert bill[lines[0]] == pytest.approx(directory_dollars(v12))
    # And the deployment's quotas are checked against the same reads
    assert deployment_use(w, measured, cells).directory == v12
    # And v1.1's polling is priced only when asked for, far dearer
    polled, _ = parse(["--directory", "poll", "--users", "1e8"])
    dearer = monthly_bill(polled, measured, cells)[
        "Directory (poll: CloudFront requests and bytes)"
    ]
    assert dearer > 100 * bill[lines[0]]


def test_a_standby_bills_every_write_again() -> None:
    # Given a month of 1e12 write units and 10 GB kept, in 10 cells
    bill = standby_bill(1e12, 10, 10)
    # Then the replicas bill each unit once more, move at most 1 KB of it across regions,
    # and keep the data twice
    assert bill.replicated_writes == pytest.approx(1e12 / 1e6 * cost.DYNAMODB_PER_MILLION_WRU)
    assert bill.transfer == pytest.approx(1e12 * 1024 / 1e9 * cost.INTER_REGION_PER_GB)
    assert bill.storage == pytest.approx(10 * cost.DYNAMODB_PER_GB_MONTH)


def test_moved_assumptions_stay_possible() -> None:
    # Shares stay at most 1, devices at least 1, the peak at least the mean
    assert moved_value("connected", 0.6, 2) == 1.0
    assert moved_value("devices", 1.5, 0.5) == 1.0
    assert moved_value("peak", 1.5, 0.5) == 1.0
    assert moved_value("messages", 100, 0.5) == 50


def test_the_sensitivity_table_puts_the_largest_move_first() -> None:
    # Given today's model on a small workload
    measured = by_hand(
        message=pieces(
            Cost(frames=3, posts=2, invocations=3, wru={"Queue": 9}, api_messages=6),
            mark_seen=Cost(frames=1, invocations=1, wru={"Limits": 1}, api_messages=1),
        ),
        ping=Cost(frames=1, invocations=1, wru={"Limits": 1}, api_messages=2),
    )
    w = Workload(users=1e8)
    # When each assumption is moved
    rows = sensitivity(w, measured)
    planned = plan(w, measured)
    assert planned.cells is not None
    base = sum(monthly_bill(w, measured, planned.cells).values())

    cells = planned.cells

    def impact(moves: list[Moved]) -> float:
        return max(
            max(abs((m.cells or 0) / cells - 1), abs((m.dollars or 0) / base - 1)) for m in moves
        )

    # Then the rows come largest move first, and messages move the answer more than lambda_ms
    impacts = [impact(moves) for _, moves in rows]
    assert impacts == sorted(impacts, reverse=True)
    names = [name for name, _ in rows]
    assert names.index("messages") < names.index("lambda_ms")
    # And each switch is there once, flipped
    flipped = {name: moves[0].value for name, moves in rows if len(moves) == 1}
    assert flipped["keepalive"] == "lambda" and flipped["shards"] == 4_096
    assert flipped["directory"] == "poll"


def test_every_assumption_is_a_flag_and_as_before_is_the_old_model() -> None:
    # Given the command line of `bench scale`
    from bench.scale import parse

    # When nothing is said, the workload is the defaults
    assert parse([])[0] == Workload()
    # And each field is its flag, floats and switches alike
    moved, _ = parse(["--peak", "2.5", "--ping-every", "540.5", "--no-standby", "--shards", "4096"])
    assert (moved.peak, moved.ping_every, moved.standby, moved.shards) == (2.5, 540.5, False, 4096)
    # And --as-before is the old model's assumptions, which a flag may still move
    before, _ = parse(["--as-before", "--users", "2e9"])
    assert before == replace(old_model(), users=2e9)


def test_a_renewal_does_not_send_the_visibility_again_and_a_session_does() -> None:
    # Given each step of a new connection costing a distinct number of frames
    measured = by_hand(
        handshake=Cost(frames=1),
        visibility=Cost(frames=10),
        sync=Cost(frames=100),
        subscribe=Cost(frames=1_000),
        disconnect=Cost(frames=10_000),
        presence_change=Cost(frames=100_000),
    )
    w = Workload(watchers=0)
    # When a connection is renewed (make-before-break), then it handshakes, syncs,
    # subscribes and closes the old one, but does not send its visibility (the SDKs keep
    # what the server took)
    assert renewal_cost(measured, w, 0).frames == 1 + 100 + 1_000 + 10_000
    # And a session (maybe a fresh start of the app) sends it, and changes presence twice
    assert session_cost(measured, w, 0).frames == 11_111 + 2 * 100_000
