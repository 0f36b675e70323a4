"""`./dev bench scale`: how many cells a workload needs at its peak, which quota binds, and
what a month costs, line by line; then which assumption moves the answer most.

Three things, each printed:
- what every operation costs, measured in this run on the real handlers (moto, counted
  and metered as `bench calls` and `bench cost` do): a message's life in pieces (so that
  linked devices and `seen` receipts can be counted), a `seen` receipt, a connection's
  handshake, visibility, sync, subscription and disconnect, a presence change and each
  watcher told, a ping, and the Relay calls of each cross-cell operation;
- the workload (`scale_model.Workload`, every field a flag: `--peak 2 --connects 30 ...`),
  printed beside the result, each default argued in docs/scale.md;
- the quotas (bench/quotas.py) and prices (bench/cost.py), each with where it was read.

The arithmetic is bench/scale_model.py's (tested in tests/bench/test_scale.py).
`--as-before` gives the old model's assumptions and reckoning (801 cells) for a
before/after; `--directory poll --keepalive lambda`, v1.1's clients.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import fields, replace
from functools import partial
from typing import Any

from bench import cost
from bench.calls import CallCounter, counting, cross_cell_send, measure_cells, send_message
from bench.capacity import CapacityMeter, Metered, item_size
from bench.catchup import metered_harness
from bench.protocol_client import BenchUser
from bench.quotas import CELL_QUOTAS, DEPLOYMENT_QUOTAS, OTHER_LIMITS
from bench.scale_model import (
    AS_BEFORE,
    DIRECTORY_JITTER_SECONDS,
    LAMBDA_PING,
    LAMBDA_SCALING_PER_10S,
    PARTITION_WCU,
    TARGET_UTILIZATION,
    Cost,
    Measured,
    MessageCosts,
    Plan,
    Relays,
    Workload,
    cross_share,
    deployment_use,
    directory_bytes,
    directory_dollars,
    directory_load,
    heaviest_share,
    idle_socket_month,
    keepalive_dollars,
    monthly_bill,
    peak_rates,
    ping_cost,
    plan,
    sensitivity,
    unit_costs,
    with_value,
)
from messenger.contract import PRESENCE_FLAP_WINDOW_MS
from messenger_local.harness import TABLE_NAMES, Connection, Harness
from messenger_protocol.frames import Ack, GetPresence, MarkSeen, SetPresenceVisibility, Sync
from messenger_protocol.names import FrameType, PresenceVisibility

POSTS = "apigatewaymanagementapi.PostToConnection"
# A presence change is told to each watcher cell by one asynchronous Relay call (and one
# per 1,000 watchers: logic/presence.py, _tell_cells); not measured here.
RELAYS_PER_WATCHER_CELL = 1.0
SDK_CONTACTS = 20  # the contacts a client's visibility names (its size hardly matters)


# --- measuring, in this run -----------------------------------------------------------------


def _units(metered: Metered, kind: str) -> dict[str, float]:
    by_table: dict[str, float] = {}
    for (_, table), units in (metered.wru_at if kind == "wru" else metered.rru_at).items():
        by_table[table] = by_table.get(table, 0) + units
    return by_table


def _only(metered: Metered, operation: str, table: str) -> Cost:
    """The units one operation of a step took in one table."""
    return Cost(
        wru={table: metered.wru_at.get((operation, table), 0)},
        rru={table: metered.rru_at.get((operation, table), 0)},
    )


def _sent(frames: Sequence[Any]) -> Cost:
    """What frames sent to clients cost: billed messages and bytes."""
    return Cost(
        api_messages=sum(cost.frame_units(f) for f in frames),
        bytes_out=sum(len(json.dumps(f, separators=(",", ":"))) for f in frames),
    )


def _step(
    calls: Counter[str],
    metered: Metered,
    *,
    frame: Any = None,
    invocations: int = 1,
    sent: Sequence[Any] = (),
    handshakes: int = 0,
) -> Cost:
    """A step's cost: its frame in (if any), its invocations, its posts, its units."""
    return Cost(
        frames=(1 if frame is not None else 0) + handshakes,
        posts=calls[POSTS],
        api_messages=cost.frame_units(frame) if frame is not None else 0,
        invocations=invocations + calls["lambda.Invoke"],
        wru=_units(metered, "wru"),
        rru=_units(metered, "rru"),
    ) + _sent(sent)


def _message_costs(life: cost.Life, mark_seen: Cost) -> MessageCosts:
    steps = {name: (calls, metered) for name, calls, metered in life.steps}

    def whole(name: str) -> Cost:
        calls, metered = steps[name]
        return _step(calls, metered, frame=life.received[name], sent=life.sent[name])

    send, ack, receipt_ack = (
        whole(cost.SEND_STEP),
        whole(cost.ACK_STEP),
        whole(cost.RECEIPT_ACK_STEP),
    )
    _, send_units = steps[cost.SEND_STEP]
    _, ack_units = steps[cost.ACK_STEP]
    message_post, receipt_post = life.sent[cost.SEND_STEP][-1], life.sent[cost.ACK_STEP][-1]
    copy = _only(send_units, "PutItem", "Queue") + Cost(posts=1) + _sent([message_post])
    # The senders' profiles (their devices, docs/data-model.md "Linked devices"), read
    # together by one BatchGetItem for the receipts an ack makes.
    receipts = _only(ack_units, "BatchGetItem", "Users")
    receipt = _only(ack_units, "PutItem", "Queue") + Cost(posts=1) + _sent([receipt_post])
    pieces = MessageCosts(
        send=send,
        copy=copy,
        copy_ack=ack - receipts - receipt,
        receipts=receipts,
        receipt=receipt,
        receipt_ack=receipt_ack,
        mark_seen=mark_seen,
        item_bytes=max(item_size(item) for item in life.queued_items),
    )
    # The pieces of one message to one device, without `seen`, are the life measured.
    assert copy.total_wru and receipts.total_rru and receipt.total_wru, (copy, receipt)
    return pieces


def _seen(h: Harness, c: CallCounter, meter: CapacityMeter) -> tuple[Cost, Cost]:
    """markSeen to a sender online, without the receipt it makes (priced as any
    receipt), and the sender's ack of that receipt."""
    alice, bob = BenchUser.generate("seen-alice"), BenchUser.generate("seen-bob")
    a, b = h.connect(alice), h.connect(bob)
    h.posts.take(a.connection_id)
    frame = MarkSeen(to=alice.user_id, message_ids=["msg-bench-0001"]).to_wire()
    with counting(h, c) as calls, meter.measuring() as units:
        reply = h.send(b, frame)
    [receipt] = h.posts.of_type(a.connection_id, FrameType.RECEIPT)
    made = _only(units, "PutItem", "Queue") + Cost(posts=1) + _sent([receipt])
    mark = _step(calls, units, frame=frame, sent=[reply] if reply else []) + _sent([receipt])
    ack = Ack(ids=[receipt["id"]]).to_wire()
    with counting(h, c) as calls, meter.measuring() as units:
        h.send(a, ack)
    return mark - made, _step(calls, units, frame=ack)


def _measured_step(
    h: Harness,
    c: CallCounter,
    meter: CapacityMeter,
    run: Callable[[], Any],
    **step: Any,
) -> tuple[Cost, Any]:
    with counting(h, c) as calls, meter.measuring() as units:
        result = run()
    return _step(calls, units, **step), result


def _presence_change(
    h: Harness, c: CallCounter, meter: CapacityMeter, user: BenchUser, watcher: Connection | None
) -> Cost:
    """The presence function telling of `user` coming online (to `watcher`, if any),
    after a quiet spell: no flap, told at once (what earlier changes left on the settle
    queue told first, uncounted)."""
    h.clock.advance(PRESENCE_FLAP_WINDOW_MS / 1000 + 1)
    h.run_invocations()
    connection = h.connect(user, with_keys=False)
    with c.measuring() as calls, meter.measuring() as units:
        assert h.run_invocations() == 1
    told = h.posts.take(watcher.connection_id) if watcher else []
    h.disconnect(connection)
    h.run_invocations()
    return _step(calls, units, sent=told)


def _connection_costs(h: Harness, c: CallCounter, meter: CapacityMeter) -> dict[str, Cost]:
    """A new connection's steps, a presence change (told to none and to one watcher)."""
    user, peer = BenchUser.generate("scale-conn"), BenchUser.generate("scale-peer")
    h.disconnect(h.connect(user))  # registered once
    h.disconnect(h.connect(peer))
    h.run_invocations()
    first = h.connect(user, with_keys=False)  # online: the connection kept during renewal
    h.run_invocations()
    visibility = SetPresenceVisibility(
        visibility=PresenceVisibility.CONTACTS,
        contacts=[peer.user_id, *(f"contact{n:04d}" for n in range(SDK_CONTACTS - 1))],
    ).to_wire()
    h.send(first, visibility)  # the setting as the client keeps it
    steps: dict[str, Cost] = {}
    steps["handshake"], second = _measured_step(
        h, c, meter, lambda: h.connect(user, with_keys=False), invocations=2, handshakes=1
    )
    for name, frame in (
        ("visibility", visibility),
        ("sync", Sync(batch=True).to_wire()),
        ("subscribe", GetPresence(user_ids=[peer.user_id], subscribe=True).to_wire()),
    ):
        steps[name], reply = _measured_step(
            h, c, meter, partial(h.send, second, frame), frame=frame
        )
        steps[name] += _sent([*([reply] if reply else []), *h.posts.take(second.connection_id)])
    steps["disconnect"], _ = _measured_step(h, c, meter, lambda: h.disconnect(second))
    h.disconnect(first)
    h.run_invocations()
    alone = _presence_change(h, c, meter, user, None)
    watcher = h.connect(peer, with_keys=False)
    h.send(watcher, GetPresence(user_ids=[user.user_id], subscribe=True).to_wire())
    h.run_invocations()  # the watcher's own coming online
    h.posts.take(watcher.connection_id)
    watched = _presence_change(h, c, meter, user, watcher)
    steps["presence_change"] = alone
    steps["watcher_post"] = watched - alone
    return steps


def _legacy_reconnect(h: Harness, c: CallCounter, meter: CapacityMeter) -> Cost:
    """The old model's reconnect: connect and disconnect a known user, then an empty sync
    (2 frames: the handshake and the sync; the presence functions they started counted as
    invocations only)."""
    user = BenchUser.generate("scale-reconnect")
    h.disconnect(h.connect(user))  # registered once
    connection = h.connect(user, with_keys=False)  # a fresh container's first calls
    total = Cost()
    for frames, invocations, billed, run in (
        (1, 2, 0, lambda: h.disconnect(h.connect(user, with_keys=False))),
        (1, 1, 1, lambda: h.send(connection, Sync(batch=True).to_wire())),
    ):
        with counting(h, c) as calls, meter.measuring() as units:
            run()
        total += Cost(
            frames=frames,
            posts=calls[POSTS],
            api_messages=billed + calls[POSTS],
            invocations=invocations + calls["lambda.Invoke"],
            wru=_units(units, "wru"),
            rru=_units(units, "rru"),
        )
    return total


def _profile_bytes(h: Harness) -> int:
    """A registered user's profile item, as the functions write it."""
    profiles = [
        item
        for page in h.dynamodb.get_paginator("scan").paginate(TableName=TABLE_NAMES["Users"])
        for item in page["Items"]
        if item["sk"]["S"] == "PROFILE"
    ]
    return max(item_size(item) for item in profiles)


def _relays() -> tuple[Relays, Counter[str], Counter[str], Counter[str]]:
    """The Relay calls of each cross-cell operation (bench calls, "Across cells")."""
    across = cross_cell_send()
    cells = measure_cells()

    def invokes(name: str) -> float:
        return float(cells[name].caller["lambda.Invoke"])

    relays = Relays(
        send=float(across.sender_cell["lambda.Invoke"]),
        ack=invokes("ack, 1 id, sender in the other cell"),
        mark_seen=invokes("markSeen, sender in the other cell"),
        subscribe=invokes("getPresence, 1 user of the other cell, subscribe"),
        presence_change=RELAYS_PER_WATCHER_CELL,
    )
    return (
        relays,
        cells["sendMessage, same cell (of 2), online"].caller,
        *(
            across.sender_cell,
            across.home_cell,
        ),
    )


def measure() -> tuple[Measured, Counter[str], Counter[str], Counter[str]]:
    """Every operation's cost on the real handlers; also the same-cell send's calls and
    the cross-cell send's in each cell (printed as the baseline)."""
    with metered_harness(rate_limit_per_minute=6000, rate_limit_burst=1000) as (h, c, meter):
        short = cost.run_life(h, c, meter, cost.SHORT_TEXT_BYTES)
        large = cost.run_life(h, c, meter, cost.MAX_BODY_BYTES)
        mark_seen, seen_ack = _seen(h, c, meter)
        same_cell = send_message(h, c, recipient_connections=1)
        connection = _connection_costs(h, c, meter)
        legacy = _legacy_reconnect(h, c, meter)
        profile = _profile_bytes(h)
    relays, _, in_sender, in_home = _relays()
    extra = (in_sender + in_home) - same_cell
    # What crossing adds to a send: the Relay Invoke and the Relay's own run, in the called
    # cell one unit of the calling cell's budget (a Limits write, docs/scale.md "The mesh";
    # not in the model yet: one small write per Relay call), and the two profiles that one
    # BatchGetItem reads in a single cell read by a GetItem in each (the sender's devices
    # in its cell, docs/data-model.md "Linked devices"), nothing else.
    assert {op for op, n in extra.items() if n} == {
        "lambda.Invoke",
        "dynamodb.UpdateItem",
        "dynamodb.GetItem",
    }, extra
    assert extra["dynamodb.UpdateItem"] == 1 and extra["dynamodb.GetItem"] == 2, extra
    assert (
        same_cell["dynamodb.BatchGetItem"] == 1
        and not (in_sender + in_home)["dynamodb.BatchGetItem"]
    ), (same_cell, in_sender, in_home)
    pieces = {
        size: _message_costs(life, mark_seen) for size, life in (("short", short), ("large", large))
    }
    measured = Measured(
        short=pieces["short"],
        large=pieces["large"],
        handshake=connection["handshake"],
        visibility=connection["visibility"],
        sync=connection["sync"],
        subscribe=connection["subscribe"],
        disconnect=connection["disconnect"],
        presence_change=connection["presence_change"],
        watcher_post=connection["watcher_post"],
        # Nothing runs for a ping any more (API Gateway answers it): v1.1's, as measured.
        ping=LAMBDA_PING,
        relays=relays,
        legacy_reconnect=legacy,
        profile_bytes=profile,
    )
    _check_life(measured.short, short, seen_ack)
    return measured, same_cell, in_sender, in_home


def _check_life(pieces: MessageCosts, life: cost.Life, seen_ack: Cost) -> None:
    """One message to one device is its measured life again; a `seen` receipt's ack
    costs what a `delivered` one's does."""
    again = pieces.send + pieces.copy_ack + pieces.receipts + pieces.receipt + pieces.receipt_ack
    assert again.frames == 3 and again.invocations == life.invocations, again
    assert again.api_messages == life.api_messages, (again.api_messages, life.api_messages)
    assert math.isclose(again.total_wru, life.units.total_wru), again
    assert math.isclose(again.total_rru, life.units.total_rru), again
    assert math.isclose(seen_ack.total_wru, pieces.receipt_ack.total_wru), seen_ack


# --- printing -------------------------------------------------------------------------------


def _n(value: float) -> str:
    if value >= 100 or value == 0:
        return f"{value:,.0f}"
    return f"{value:,.2f}" if value >= 0.01 else f"{value:.2g}"


def _money(value: float) -> str:
    return f"${value / 1e6:,.2f} M" if value >= 1e6 else f"${value:,.0f}"


def print_measured(
    measured: Measured, same: Counter[str], c0: Counter[str], c1: Counter[str]
) -> None:
    print("Measured in this run (moto, the real handlers), per occurrence:")
    header = ("frames", "posts", "Lambda", "WRU", "RRU", "msgs", "bytes out")
    print(f"  {'':<52}" + "".join(f"{h:>8}" for h in header))
    rows: list[tuple[str, Cost]] = []
    for size, m in (("short text", measured.short), ("24,000-byte body", measured.large)):
        rows += [
            (f"sendMessage, one copy stored and posted ({size})", m.send),
            (f"  each further copy (a linked device) ({size})", m.copy),
            (f"  a device's ack of its copy ({size})", m.copy_ack),
        ]
    m = measured.short
    rows += [
        ("  the first ack finds the sender (its profile)", m.receipts),
        ("  a receipt to one device of the sender, stored, posted", m.receipt),
        ("  that device's ack of it", m.receipt_ack),
        ("markSeen (its receipts as above)", m.mark_seen),
        ("handshake: authorizer + $connect (known user)", measured.handshake),
        ("setPresenceVisibility, unchanged", measured.visibility),
        ("sync of an empty queue", measured.sync),
        ("getPresence of 1 user, subscribe", measured.subscribe),
        ("$disconnect", measured.disconnect),
        ("presence function, no watcher", measured.presence_change),
        ("  each watcher told", measured.watcher_post),
        ("ping (v1.1: a function and a rate-limit write)", measured.ping),
        ("old model's reconnect (--as-before)", measured.legacy_reconnect),
    ]
    for label, op in rows:
        values = (
            op.frames,
            op.posts,
            op.invocations,
            op.total_wru,
            op.total_rru,
            op.api_messages,
            op.bytes_out,
        )
        print(f"  {label:<52}" + "".join(f"{v:>8g}" for v in values))
    r = measured.relays
    print(
        f"  Relay calls across cells: sendMessage {r.send:g}, ack {r.ack:g}, markSeen "
        f"{r.mark_seen:g}, getPresence {r.subscribe:g}, a presence change {r.presence_change:g}"
        " per watcher cell (asynchronous)"
    )
    print(
        f"  a profile item {measured.profile_bytes} B; a stored copy {measured.short.item_bytes}"
        f" B (short), {measured.large.item_bytes} B (24,000-byte body)"
    )
    print("Baseline, the same sendMessage (recipient online, 1 connection):")
    print(f"  {'within one cell':<30} {_summary(same)}")
    print(f"  {'across cells: sender (c0)':<30} {_summary(c0)}")
    print(f"  {'across cells: home (c1, Relay)':<30} {_summary(c1)}")


def _summary(calls: Counter[str]) -> str:
    return ", ".join(f"{op.split('.', 1)[1]}x{n}" for op, n in sorted(calls.items()) if n)


def print_workload(w: Workload) -> None:
    print("\nThe workload (every line a flag; docs/scale.md argues each default):")
    for f in fields(Workload):
        value = getattr(w, f.name)
        if f.name == "ping_every":
            value = w.ping_seconds
        shown = f"{value:,.4g}" if isinstance(value, float) else str(value)
        print(f"  {f.metadata['flag']:<20}{shown:>14}  {f.metadata['help']}")


def print_load(w: Workload, measured: Measured, cells: int) -> None:
    rates = peak_rates(w, measured, cross_share(cells))
    load = rates.load
    print(
        f"\nAt the peak hour ({w.peak:g}x the day's mean): {rates.messages:,.0f} messages/s, "
        f"{rates.sockets:,.0f} open sockets, {rates.sessions:,.0f} sessions/s and "
        f"{rates.renewals:,.0f} renewals/s (new connections), {rates.pings:,.0f} pings/s, "
        f"{rates.pushes:,.0f} pushes/s; {load.requests:,.0f} API Gateway requests/s, "
        f"{load.invocations:,.0f} Lambda invocations/s and {load.relays:,.0f} Relays/s, "
        f"{load.total_wru:,.0f} WRU/s, {load.total_rru:,.0f} RRU/s in all cells"
    )
    for kind, units in (("writes", load.wru), ("reads", load.rru)):
        total = sum(units.values())
        shares = ", ".join(
            f"{table} {value / total:.0%}" for table, value in sorted(units.items()) if total
        )
        print(f"  DynamoDB {kind} by table: {shares}")


def print_plan(w: Workload, measured: Measured, planned: Plan, title: str) -> None:
    if planned.cells is None or planned.demand is None:
        print(
            f"\n-- {title}: no split of {w.shards:,} shards is fine enough: "
            f"{planned.binding.name} needs smaller cells than one shard"
        )
        return
    cells, need = planned.cells, planned.demand
    print(f"\n-- {title}: {cells:,} cells; binds: {planned.binding.name}")
    if w.shards:
        most = math.ceil(w.shards / cells)
        print(
            f"  {w.shards:,} shards over {cells:,} cells: the heaviest own {most} shards, "
            f"{most / (w.shards / cells) - 1:+.1%} over an even split (sized by them)"
        )
    print(
        f"  {'quota (per cell)':<62}{'limit':>9}{'adj.':>5}{'cells it needs':>15}"
        f"{'heaviest cell':>15}{'used':>6}"
    )
    for quota in CELL_QUOTAS:
        limit = quota.limit(planned.raised)
        used = need.of(quota)
        needs = planned.needs[quota.key]
        name = quota.name
        if quota.key == "dynamodb_wru":
            name += f" ({need.busiest_write_table})"
        elif quota.key == "dynamodb_rru":
            name += f" ({need.busiest_read_table})"
        print(
            f"  {name:<62}{_n(limit):>9}{'yes' if quota.adjustable else 'no':>5}"
            f"{(f'{needs:,}' if needs else '-'):>15}{_n(used):>15}{used / limit:>6.0%}"
        )
    print(
        f"  also in the heaviest cell: {_n(need.invocations)} Lambda invocations/s, "
        f"{_n(need.pings)} pings/s"
    )


def print_deployment(w: Workload, measured: Measured, cells: int) -> None:
    use = deployment_use(w, measured, cells)
    raw, gzipped = directory_bytes(cells, w.shards)
    print(f"\n-- shared by every cell (one each per deployment), at {cells:,} cells:")
    print(f"  {'quota':<62}{'limit':>11}{'use':>14}{'used':>8}")
    for quota in DEPLOYMENT_QUOTAS:
        value = use.of(quota)
        print(
            f"  {quota.name:<62}{_n(quota.default):>11}{_n(value):>14}{value / quota.default:>8.0%}"
        )
    print(
        f"  the directory of {cells:,} cells: {raw:,} B of JSON, {gzipped:,} B gzipped; "
        f"reads of it at the peak:"
    )
    requests = next(q for q in DEPLOYMENT_QUOTAS if q.key == "directory_requests").default
    for mode in ("poll", "v12"):
        load = directory_load(w, measured, cells, mode)
        dollars = directory_dollars(load)
        when = (
            "v1.1's SDKs, every connection and every 60 s"
            if mode == "poll"
            else "our clients now (§6), at a publish, each socket at its next "
            "ack/syncDone/pong, then 0-60 s"
        )
        print(
            f"    {mode:<5} steady {load.steady:>14,.0f}/s ({load.steady / requests:.2%} of one "
            f"distribution's {requests:,}/s); {when}: {load.burst:,.0f}/s "
            f"({load.burst / requests:,.1f}x, {load.gbps(load.burst):,.1f} Gbps); "
            f"{_money(dollars)} a month"
        )
    print_directory_publish(w, measured, cells, requests)


def print_directory_publish(w: Workload, measured: Measured, cells: int, quota: float) -> None:
    """What a publish brings to the directory's distribution under §6, what spreads it,
    and, past the quota, what fixes it."""
    load = directory_load(w, measured, cells, "v12")
    rates = peak_rates(w, measured, cross_share(cells))
    verdict = "within" if load.burst <= quota else "OVER"
    print(
        f"  v12 at a publish: {verdict} one distribution's quota. Spread by the ping "
        f"interval ({w.ping_seconds:,.0f} s: quiet sockets learn `dv` at their pong, "
        f"{rates.pings:,.0f}/s) and the 0-{DIRECTORY_JITTER_SECONDS} s jitter (busy sockets "
        f"and the {rates.new_connections:,.0f}/s new connections); every socket at once "
        f"would be {load.all_at_once:,.0f}/s ({load.all_at_once / quota:,.1f}x)"
    )
    if load.burst > quota:
        floor = rates.pings + rates.new_connections
        print(
            f"    fixes: within §6, raise the distribution's request and transfer quotas (both "
            f"adjustable; {load.burst / TARGET_UTILIZATION:,.0f}/s and "
            f"{load.gbps(load.burst) / TARGET_UTILIZATION:,.0f} Gbps keep a publish at "
            f"{TARGET_UTILIZATION:.0%}) and publish rarely (moves batched into one version); "
            f"a longer jitter alone cannot: the pongs and new connections bring "
            f"{floor:,.0f}/s ({floor / quota:,.1f}x) whatever it is. Beyond §6: fetch only "
            f"when one's own cell's entry changed (a per-cell `dv`)"
        )


def print_other(w: Workload, measured: Measured, planned: Plan) -> None:
    if planned.demand is None:
        return
    environments = planned.demand.lambda_concurrency
    ramp = math.ceil(environments / LAMBDA_SCALING_PER_10S) * 10
    per_copy = measured.short.copy.total_wru + measured.short.copy_ack.wru.get("Queue", 0)
    print(
        f"  Lambda's scaling rate: a cold cell (a standby taking over) reaches its "
        f"{environments:,.0f} environments in {ramp} s or less (1,000 per function "
        f"every 10 s)"
    )
    print(
        f"  one device's queue is one partition key: {PARTITION_WCU:,} WCU/s take at most "
        f"{PARTITION_WCU / per_copy:,.0f} short copies a second ({per_copy:g} WRU each, "
        "stored and deleted); the hot-recipient issue bounds it"
    )
    new = planned.demand.new_connections
    connected = w.connected_sockets * heaviest_share(planned.cells or 1, w.shards)
    print(
        f"  after a failover the cell's {connected:,.0f} sockets reconnect through its "
        f"new-connections quota: {connected / 500 / 60:,.0f} min at 500/s (its own "
        f"{new:,.0f}/s go on meanwhile)"
    )


def print_bill(w: Workload, measured: Measured, cells: int) -> float:
    bill = monthly_bill(w, measured, cells)
    total = sum(bill.values())
    tiers = "the organization's" if w.bills == "org" else "each cell's account's"
    print(f"\n  The month at list prices ({cost.PRICES_DATE}; volume tiers {tiers}):")
    for line, dollars in sorted(bill.items(), key=lambda item: -item[1]):
        print(f"    {line:<62}{_money(dollars):>16}{dollars / total:>7.1%}")
    print(f"    {'TOTAL':<62}{_money(total):>16}")
    unit = unit_costs(w, measured, cells, total)
    print(
        f"    = ${unit.per_million_messages:,.2f} per million messages, "
        f"${unit.per_device_month:,.4f} per device, ${unit.per_connected_device_month:,.4f} "
        f"per socket open all month, ${unit.per_user_month:,.4f} per daily user, a month"
    )
    return total


def print_keepalive(w: Workload, measured: Measured) -> None:
    print("\n-- the keepalive, v1.1's (lambda) and v1.2's (gateway):")
    idle = {
        mode: idle_socket_month(moved, ping_cost(measured, moved))
        for mode in ("lambda", "gateway")
        for moved in [replace(w, keepalive=mode, ping_every=0)]
    }
    for line in idle["lambda"]:
        print(
            f"  an idle socket a month, {line:<44} lambda ${idle['lambda'][line]:.4f}  "
            f"gateway ${idle['gateway'][line]:.4f}"
        )
    before, now = (sum(idle[mode].values()) for mode in ("lambda", "gateway"))
    print(
        f"  an idle socket a month, {'TOTAL':<44} lambda ${before:.4f}  gateway "
        f"${now:.4f} ({now / before:.0%} of v1.1's)"
    )
    for mode in ("lambda", "gateway"):
        moved = replace(w, keepalive=mode, ping_every=0)
        planned = plan(moved, measured)
        if planned.cells is None:
            print(f"  {mode}: no deployment fits")
            continue
        total = sum(monthly_bill(moved, measured, planned.cells).values())
        share = keepalive_dollars(moved, measured, planned.cells)
        print(
            f"  {mode:<8} a ping after {moved.ping_seconds:g} s idle: {planned.cells:,} cells, "
            f"{_money(total)} a month, of which the keepalive {_money(share)} "
            f"({share / total:.1%})"
        )


def print_sensitivity(w: Workload, measured: Measured) -> None:
    base_plan = plan(w, measured)
    assert base_plan.cells is not None
    base = sum(monthly_bill(w, measured, base_plan.cells).values())
    print(
        f"\n-- sensitivity: each assumption x0.5 and x2 (shares at most 1, devices at least "
        f"1, the peak at least the mean), each switch flipped; from {base_plan.cells:,} "
        f"cells and {_money(base)}, largest move first:"
    )
    for name, moves in sensitivity(w, measured):
        flag = next(f.metadata["flag"] for f in fields(Workload) if f.name == name)
        parts = []
        for moved in moves:
            if moved.cells is None or moved.dollars is None:
                parts.append(f"{moved.value}: no split fits")
                continue
            value = f"{moved.value:,.3g}" if isinstance(moved.value, float) else moved.value
            parts.append(
                f"{value}: {moved.cells:>6,} cells ({moved.cells / base_plan.cells - 1:+.0%}), "
                f"{_money(moved.dollars)} ({moved.dollars / base - 1:+.0%})"
            )
        print(f"  {flag:<18} " + " | ".join(parts))


def print_sources() -> None:
    print("\nQuotas, where read (docs/scale.md, 'The quotas', has the same):")
    for quota in (*CELL_QUOTAS, *DEPLOYMENT_QUOTAS):
        print(f"  {quota.name}: {quota.source}; {quota.url} ({quota.read})")
    print("Limits that bound something else (not sized for):")
    for text, url in OTHER_LIMITS:
        print(f"  {text}; {url}")


# --- the command line -----------------------------------------------------------------------


def parse(argv: Sequence[str]) -> tuple[Workload, argparse.Namespace]:
    parser = argparse.ArgumentParser(
        prog="bench scale",
        description="Cells and monthly cost of a workload at its peak (docs/scale.md).",
    )
    for f in fields(Workload):
        meta, default = f.metadata, f.default
        if isinstance(default, bool):
            parser.add_argument(
                meta["flag"], action=argparse.BooleanOptionalAction, help=meta["help"]
            )
        else:
            parser.add_argument(
                meta["flag"],
                type=type(default),
                choices=meta.get("choices"),
                help=f"{meta['help']} (default {default})",
            )
    parser.add_argument(
        "--as-before",
        action="store_true",
        help="the old model: "
        + " ".join(
            f"{next(f.metadata['flag'] for f in fields(Workload) if f.name == k)} {v}"
            for k, v in AS_BEFORE.items()
        ),
    )
    parser.add_argument("--raised", action="store_true", help="the raised quotas in full too")
    parser.add_argument("--no-sensitivity", action="store_true", help="skip the table")
    args = parser.parse_args(list(argv))
    w = Workload()
    for name, value in (AS_BEFORE if args.as_before else {}).items():
        w = with_value(w, name, value)
    for f in fields(Workload):
        value = getattr(args, f.name)
        if value is not None:
            w = with_value(w, f.name, value)
    return w, args


def main(argv: list[str] | None = None) -> int:
    w, args = parse(argv or [])
    measured, same, c0, c1 = measure()
    print_measured(measured, same, c0, c1)
    print_workload(w)
    planned = plan(w, measured)
    if planned.cells is not None:
        print_load(w, measured, planned.cells)
    print_plan(w, measured, planned, "default quotas")
    if planned.cells is None:
        return 1
    print_other(w, measured, planned)
    print_deployment(w, measured, planned.cells)
    print_bill(w, measured, planned.cells)
    raised = plan(w, measured, raised=True)
    if args.raised:
        print_plan(w, measured, raised, "raised (assumed) quotas")
    if raised.cells is not None:
        total = sum(monthly_bill(w, measured, raised.cells).values())
        print(
            f"\n-- raised (assumed) quotas: {raised.cells:,} cells, binds: "
            f"{raised.binding.name}; {_money(total)} a month"
        )
    if not w.legacy:
        print_keepalive(w, measured)
        if not args.no_sensitivity:
            print_sensitivity(w, measured)
    print_sources()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
