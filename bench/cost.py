"""Cost per million messages at AWS list prices: a message's whole life, its floor, and
catching up a queue.

Life of one message: alice sends it (sendMessage, ack as route response), bob's device
gets it live, bob acks it, alice gets the `delivered` receipt live and acks that.

Every AWS call is counted on the real handlers (moto, botocore hooks, as in bench.calls)
and every DynamoDB call's request units are metered from the items it touches
(bench/capacity.py); API Gateway messages are counted from the frames' sizes. Printed in
the same run:
- the floor of the same life: its API Gateway frames, and one write and one delete per
  queued item (the message, its receipt) at those items' sizes; then every unit above
  the floor, and what it buys;
- the design of AWS's simple-websockets-chat-app sample, which finds a recipient's
  connections by scanning a connections table, at 1,000 and 1,000,000 connected users;
- catching up 1,000 queued short messages from 10 senders: a device syncing one frame
  per item (a v1 client) and with `batch`, each following `more` and acking every page.
"""

from __future__ import annotations

import json
import math
import secrets
import sys
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from bench.calls import CallCounter, link_devices
from bench.capacity import CapacityMeter, Metered, item_size, read_units, write_units
from bench.catchup import (
    DYNAMODB_CALL_MS,
    POST_MS,
    CatchUp,
    catch_up,
    device_of,
    metered_harness,
    queue_messages,
)
from bench.environment import use_bench_environment
from bench.protocol_client import BenchUser
from messenger_local.harness import Harness
from messenger_protocol.devices import seal_for_devices
from messenger_protocol.encoding import b64url_encode
from messenger_protocol.frames import Ack, SendMessage
from messenger_protocol.limits import MAX_BODY_BYTES

PRICES_DATE = "2024-11 list prices, us-east-1 (DynamoDB on-demand after the Nov 2024 cut)"
API_GATEWAY_PER_MILLION_MESSAGES = 1.00  # per 32 KB message unit, first billion
# Each further message of the month, per account and region (API Gateway pricing page,
# WebSocket APIs: "First 1 Billion $1.00, Over 1 Billion $0.80" per million).
API_GATEWAY_PER_MILLION_MESSAGES_OVER_BILLION = 0.80
API_GATEWAY_PER_MILLION_CONNECTION_MINUTES = 0.25
LAMBDA_PER_MILLION_REQUESTS = 0.20
LAMBDA_PER_GB_SECOND_ARM64 = 0.0000133334
DYNAMODB_PER_MILLION_WRU = 0.625
DYNAMODB_PER_MILLION_RRU = 0.125
SNS_PER_MILLION_MOBILE_PUSH = 0.50
FRAME_UNIT_BYTES = 32 * 1024

# What `bench scale` prices beyond a message's life (us-east-1 list prices; docs/scale.md,
# "Prices", says where each was read and when, and which are assumptions).
# A tier is (units in it, $ per unit); the last tier's size is infinite.
Tiers = tuple[tuple[float, float], ...]
API_GATEWAY_MESSAGE_TIERS: Tiers = (
    (1e9, API_GATEWAY_PER_MILLION_MESSAGES / 1e6),
    (math.inf, API_GATEWAY_PER_MILLION_MESSAGES_OVER_BILLION / 1e6),
)
# Global tables since the Nov 2024 cut: a replicated write unit costs what a write unit does.
DYNAMODB_PER_MILLION_REPLICATED_WRU = DYNAMODB_PER_MILLION_WRU
DYNAMODB_PER_GB_MONTH = 0.25
INTER_REGION_PER_GB = 0.02
# CloudFront, United States and Europe: requests per 10,000 (HTTPS), bytes per GB.
CLOUDFRONT_PER_10K_HTTPS_REQUESTS = 0.0100
TB = 1024.0  # GB
CLOUDFRONT_OUT_TIERS: Tiers = (
    (10 * TB, 0.085),
    (40 * TB, 0.080),
    (100 * TB, 0.060),
    (350 * TB, 0.040),
    (524 * TB, 0.030),
    (4096 * TB, 0.025),
    (math.inf, 0.020),
)
# CloudWatch Logs: Lambda's logs (vended, tiered per account since May 2025); other
# logs (API Gateway's access logs) at the standard rate; storage per GB-month.
LAMBDA_LOG_TIERS: Tiers = ((10 * TB, 0.50), (20 * TB, 0.25), (20 * TB, 0.10), (math.inf, 0.05))
CLOUDWATCH_LOGS_PER_GB = 0.50
CLOUDWATCH_LOGS_STORED_PER_GB_MONTH = 0.03
XRAY_PER_MILLION_TRACES = 5.00
# Data transfer out to the internet (EC2's table, which API Gateway's pricing page
# points to): an ASSUMPTION that WebSocket frames out pay it, at these tiers.
INTERNET_OUT_TIERS: Tiers = ((10 * TB, 0.09), (40 * TB, 0.085), (100 * TB, 0.07), (math.inf, 0.05))


def tiered(quantity: float, tiers: Tiers) -> float:
    """$ for `quantity` units billed through `tiers` in order (each tier's first units
    first)."""
    dollars, left = 0.0, quantity
    for size, price in tiers:
        used = min(left, size)
        dollars += used * price
        left -= used
        if left <= 0:
            break
    return dollars


# Assumptions that calls and item sizes cannot give: say them, and keep them modest.
LAMBDA_MEMORY_GB = 0.5
LAMBDA_BILLED_MS_PER_INVOCATION = 25  # a message's life: 3 short invocations
LAMBDA_BASE_MS = 5  # catching up: 5 ms + DYNAMODB_CALL_MS per call + POST_MS per post
SCAN_PAGE_MS = 60  # Lambda time to fetch and filter one 1 MB Scan page
CONNECTION_ITEM_BYTES = 100  # connectionId + userId in the sample's connections table
TARGET_SHORT_TEXT = 10.00  # $ per million lives of a short text (issue 16)
SHORT_TEXT_BYTES = 120  # a short text's ciphertext
CATCH_UP_MESSAGES = 1_000
CATCH_UP_SENDERS = 10


@dataclass
class Bill:
    api_messages: float = 0
    lambda_invocations: float = 0
    wru: float = 0
    rru: float = 0
    sns: int = 0
    extra_lambda_ms: float = 0

    def dollars_per_million(self) -> dict[str, float]:
        gb_s = (
            (self.lambda_invocations * LAMBDA_BILLED_MS_PER_INVOCATION + self.extra_lambda_ms)
            / 1000
            * LAMBDA_MEMORY_GB
        )
        return {
            "API Gateway messages": self.api_messages * API_GATEWAY_PER_MILLION_MESSAGES,
            "Lambda requests": self.lambda_invocations * LAMBDA_PER_MILLION_REQUESTS,
            "Lambda GB-s (arm64)": gb_s * LAMBDA_PER_GB_SECOND_ARM64 * 1_000_000,
            "DynamoDB writes": self.wru * DYNAMODB_PER_MILLION_WRU,
            "DynamoDB reads": self.rru * DYNAMODB_PER_MILLION_RRU,
            "SNS push": self.sns * SNS_PER_MILLION_MOBILE_PUSH,
        }

    def total(self) -> float:
        return sum(self.dollars_per_million().values())


def frame_units(frame: Any) -> int:
    """API Gateway's billed messages for one frame: one per started 32 KB."""
    text = frame if isinstance(frame, str) else json.dumps(frame, separators=(",", ":"))
    return max(1, math.ceil(len(text.encode()) / FRAME_UNIT_BYTES))


@dataclass
class Life:
    """One message's life as it ran: its steps' units, frames and queued items."""

    steps: list[tuple[str, Counter[str], Metered]] = field(default_factory=list)
    api_messages: int = 0
    invocations: int = 0
    queued_items: list[dict[str, Any]] = field(default_factory=list)
    # Each step's frame in, and what the server sent because of it: its reply, its posts.
    received: dict[str, Any] = field(default_factory=dict)
    sent: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def units(self) -> Metered:
        total = Metered()
        for _, _, metered in self.steps:
            total += metered
        return total

    def bill(self) -> Bill:
        units = self.units
        return Bill(
            api_messages=self.api_messages,
            lambda_invocations=self.invocations,
            wru=units.total_wru,
            rru=units.total_rru,
        )

    def floor(self) -> Bill:
        """The frames of the life, and one write and one delete of each queued item."""
        writes = sum(2 * write_units(item_size(item)) for item in self.queued_items)
        return Bill(api_messages=self.api_messages, wru=writes)

    def least_with_limits(self) -> float:
        """What any design that keeps the contract's limits bills at the least for this
        life (per million): its floor, and for each frame in, a function's request (each
        frame in writes: a store, a delete) and one write unit counting it
        (docs/protocol.md §3: every frame counts, and every action is rate limited per
        user; no Lambda container sees another's frames, so the count is a shared
        write), with no compute time, no index, no read."""
        per_frame = LAMBDA_PER_MILLION_REQUESTS + DYNAMODB_PER_MILLION_WRU
        return self.floor().total() + self.invocations * per_frame


# The steps of a life, as `Life.steps` and `Life.sent` name them.
SEND_STEP = "sendMessage"
ACK_STEP = "ack (bob)"
RECEIPT_ACK_STEP = "ack of the receipt (alice)"


def run_life(
    h: Harness,
    counter: CallCounter,
    meter: CapacityMeter,
    body_bytes: int,
    pair: tuple[BenchUser, BenchUser] | None = None,
) -> Life:
    """One life from alice to bob: two new users, or `pair` (who may have talked before)."""
    life = Life()
    suffix = secrets.token_hex(3)
    alice, bob = pair or (BenchUser.generate(f"alice{suffix}"), BenchUser.generate(f"bob{suffix}"))
    a, b = h.connect(alice), h.connect(bob)
    h.posts.take(a.connection_id)
    h.posts.take(b.connection_id)

    def step(name: str, connection: Any, frame: dict[str, Any]) -> Any:
        with counter.measuring() as calls, meter.measuring() as units:
            reply = h.send(connection, frame)
        life.steps.append((name, calls, units))
        life.invocations += 1
        life.api_messages += frame_units(frame) + (frame_units(reply) if reply else 0)
        life.received[name] = frame
        life.sent[name] = [reply] if reply else []
        return reply

    send = h.message(a, bob, "x", f"msg-life-{suffix}")
    send["body"] = b64url_encode(secrets.token_bytes(body_bytes))  # never opened by the server
    reply = step(SEND_STEP, a, send)
    assert reply is not None and reply["type"] == "ack", reply
    [message] = h.posts.take(b.connection_id)
    life.sent[SEND_STEP].append(message)
    life.queued_items += h.queue_of(bob)
    step(ACK_STEP, b, Ack(ids=[message["id"]]).to_wire())
    [receipt] = h.posts.take(a.connection_id)
    life.sent[ACK_STEP].append(receipt)
    life.queued_items += [i for i in h.queue_of(alice) if i["sk"]["S"] == receipt["id"]]
    step(RECEIPT_ACK_STEP, a, Ack(ids=[receipt["id"]]).to_wire())
    life.api_messages += frame_units(message) + frame_units(receipt)
    assert h.queue_of(alice) == [] and h.queue_of(bob) == []
    assert len(life.queued_items) == 2, life.queued_items
    h.disconnect(a)
    h.disconnect(b)
    return life


# Devices of the recipient in `device_life` (docs/protocol.md §8: up to 5; 1-3 is the
# common case: a phone, a laptop, a browser).
DEVICE_COUNTS = (1, 2, 3)


def device_life(h: Harness, counter: CallCounter, meter: CapacityMeter, devices: int) -> Life:
    """A short message's life to a recipient with `devices` devices, each online once: the
    send (one item per device), each device's ack of its copy (the first makes the
    `delivered` receipt), and the sender's ack of that receipt."""
    life = Life()
    suffix = secrets.token_hex(3)
    alice, bob = BenchUser.generate(f"alice{suffix}"), BenchUser.generate(f"bob{suffix}")
    a, b = h.connect(alice), h.connect(bob)
    listing, connections = link_devices(h, b, bob, devices)
    for connection in (a, *connections):
        h.posts.take(connection.connection_id)

    def step(name: str, connection: Any, frame: dict[str, Any]) -> Any:
        with counter.measuring() as calls, meter.measuring() as units:
            reply = h.send(connection, frame)
        life.steps.append((name, calls, units))
        life.invocations += 1
        life.api_messages += frame_units(frame) + (frame_units(reply) if reply else 0)
        return reply

    if devices == 1:
        frame = h.message(a, bob, "x", f"msg-life-{suffix}")
    else:
        sealed = seal_for_devices(b"x", alice.identity.box_private_key, list(listing.devices))
        frame = SendMessage(
            body=sealed.body,
            message_id=f"msg-life-{suffix}",
            to=bob.user_id,
            nonce=sealed.nonce,
            sent_at=1,
            devices=listing.version,
            copies=sealed.copies,
        ).to_wire()
    frame["body"] = b64url_encode(secrets.token_bytes(SHORT_TEXT_BYTES))
    assert step(SEND_STEP, a, frame)["type"] == "ack"
    for device in connections:
        [message] = h.posts.take(device.connection_id)
        life.api_messages += frame_units(message)
        step(f"ack (bob's device {device.device_id})", device, Ack(ids=[message["id"]]).to_wire())
    [receipt] = h.posts.take(a.connection_id)
    life.api_messages += frame_units(receipt)
    step(RECEIPT_ACK_STEP, a, Ack(ids=[receipt["id"]]).to_wire())
    return life


def print_device_lives(lives: dict[int, Life]) -> None:
    """What a short message costs with 1, 2 and 3 recipient devices (docs/data-model.md)."""
    print("-- a short text to a recipient with 1, 2, 3 devices (all online)")
    print(
        f"{'devices':>8} {'send WRU':>9} {'send RRU':>9} {'send calls':>11} "
        f"{'life WRU':>9} {'life RRU':>9} {'life calls':>11} {'$ / million lives':>18}"
    )
    for devices, life in lives.items():
        _, send_calls, send_units = life.steps[0]
        units = life.units
        dynamodb = sum(n for op, n in send_calls.items() if op.startswith("dynamodb."))
        life_calls = sum(
            n for _, calls, _ in life.steps for op, n in calls.items() if op.startswith("dynamodb.")
        )
        print(
            f"{devices:>8} {send_units.total_wru:>9g} {send_units.total_rru:>9g} {dynamodb:>11} "
            f"{units.total_wru:>9g} {units.total_rru:>9g} {life_calls:>11} "
            f"{life.bill().total():>18.2f}"
        )
    print()


def run_second_life(
    h: Harness, counter: CallCounter, meter: CapacityMeter, body_bytes: int
) -> Life:
    """A life between users who talked a minute before (the usual message): the first life
    between them runs unmeasured, so what a first message alone pays (a queue-cap counter
    started afresh) is not in it; their rate-limit buckets have drained meanwhile."""
    suffix = secrets.token_hex(3)
    pair = (BenchUser.generate(f"alice{suffix}"), BenchUser.generate(f"bob{suffix}"))
    run_life(h, counter, meter, body_bytes, pair)  # its figures are not kept
    h.clock.advance(60)
    return run_life(h, counter, meter, body_bytes, pair)


def scan_design_bill(base: Bill, connected_users: int) -> Bill:
    """The same life, plus the sample's Scan of the connections table on every send."""
    table_bytes = connected_users * CONNECTION_ITEM_BYTES
    pages = max(1, math.ceil(table_bytes / (1024 * 1024)))
    bill = Bill(**base.__dict__)
    bill.rru += read_units(table_bytes)  # a Scan reads (and bills) every item it passes
    bill.extra_lambda_ms += pages * SCAN_PAGE_MS
    return bill


def print_bills(columns: dict[str, Bill], what: str = "$ per million messages") -> None:
    priced = {name: bill.dollars_per_million() for name, bill in columns.items()}
    lines = list(next(iter(priced.values())))
    width = max(len(line) for line in lines)
    print(f"{what:<{width}}" + "".join(f"{n:>24}" for n in columns))
    for line in lines:
        print(f"{line:<{width}}" + "".join(f"{priced[n][line]:>24.2f}" for n in columns))
    print(f"{'TOTAL':<{width}}" + "".join(f"{sum(priced[n].values()):>24.2f}" for n in columns))


def describe_steps(life: Life) -> None:
    for name, calls, units in life.steps:
        parts = []
        for operation in sorted(units.calls):
            wru, rru = units.wru.get(operation, 0), units.rru.get(operation, 0)
            index = units.index_wru.get(operation, 0)
            cost = []
            if wru:
                cost.append(f"{wru:g} WRU" + (f" ({index:g} index)" if index else ""))
            if rru:
                cost.append(f"{rru:g} RRU")
            parts.append(f"{operation}x{units.calls[operation]} {' '.join(cost) or '-'}")
        posts = calls["apigatewaymanagementapi.PostToConnection"]
        print(f"  {name:<27} {'; '.join(parts)}; posts {posts}")


def explain_above_floor(life: Life) -> None:
    """Each unit of the life above its floor, priced (per million lives)."""
    units, floor = life.units, life.floor()
    index = units.total_index_wru
    bucket = units.wru.get("UpdateItem", 0)
    other = units.total_wru - floor.wru - index - bucket
    lines = [
        (
            f"Lambda: {life.invocations} invocations (one per frame in), "
            f"{LAMBDA_BILLED_MS_PER_INVOCATION} ms each at {LAMBDA_MEMORY_GB:g} GB",
            Bill(lambda_invocations=life.invocations).total(),
        ),
        (
            f"byOrder index entries: {index:g} WRU (the message's store order, which "
            "keeps resends idempotent and sync ordered)",
            Bill(wru=index).total(),
        ),
        (
            f"Limits table: {bucket:g} WRU (every frame's rate-limit bucket; a message's "
            "queue-cap counts, in on send and out on ack)",
            Bill(wru=bucket).total(),
        ),
    ]
    if other:
        lines.append(
            (f"other writes (transactions bill twice): {other:g} WRU", Bill(wru=other).total())
        )
    for operation, rru in sorted(units.rru.items()):
        if rru:
            why = {
                "GetItem": "profiles: the recipient's connections on send, the sender's on ack",
                "BatchGetItem": "the ack's consistent read of which acked ids are queued",
            }.get(operation, "")
            lines.append((f"{operation}: {rru:g} RRU ({why})", Bill(rru=rru).total()))
    print(f"Above the floor (${floor.total():.2f}), per million lives:")
    for text, dollars in lines:
        print(f"  ${dollars:>5.2f}  {text}")


def catch_up_bill(result: CatchUp) -> Bill:
    posts = result.calls["apigatewaymanagementapi.PostToConnection"]
    dynamodb = sum(n for op, n in result.calls.items() if op.startswith("dynamodb."))
    # Billed time from the work done: the flat per-invocation figure would hide a page of
    # hundreds of posts.
    busy_ms = result.invocations * LAMBDA_BASE_MS + dynamodb * DYNAMODB_CALL_MS + posts * POST_MS
    return Bill(
        api_messages=result.api_units,
        lambda_invocations=result.invocations,
        wru=result.units.total_wru,
        rru=result.units.total_rru,
        extra_lambda_ms=busy_ms - result.invocations * LAMBDA_BILLED_MS_PER_INVOCATION,
    )


def print_catch_up(results: dict[str, CatchUp]) -> None:
    width = 34
    print(
        f"-- catching up {CATCH_UP_MESSAGES:,} queued short messages from {CATCH_UP_SENDERS} "
        "senders (sync page after page, acks of 100 ids)"
    )
    print(f"{'':<{width}}" + "".join(f"{name:>26}" for name in results))

    def row(label: str, value: Any) -> None:
        print(f"{label:<{width}}" + "".join(f"{value(r):>26}" for r in results.values()))

    row("sync requests (pages)", lambda r: len(r.pages))
    row("frames to the device", lambda r: r.frames_out)
    row("frames from it (syncs + acks)", lambda r: r.frames_in)
    row("API Gateway messages (32 KB)", lambda r: r.api_units)
    row("Lambda invocations", lambda r: r.invocations)
    row("posts", lambda r: r.calls["apigatewaymanagementapi.PostToConnection"])
    for operation in sorted({op for r in results.values() for op in r.calls}):
        if operation.startswith("dynamodb."):
            row(f"  {operation}", lambda r, op=operation: r.calls[op])
    row("WRU (deletes, receipts)", lambda r: f"{r.units.total_wru:g}")
    row("RRU", lambda r: f"{r.units.total_rru:g}")
    row("longest sync invocation (est.)", lambda r: f"{_longest_page_ms(r) / 1000:.1f} s")
    row("complete, in order", lambda r: "yes" if r.received else "NO")
    bills = {name: catch_up_bill(r) for name, r in results.items()}
    row("$ per catch-up", lambda r: f"{catch_up_bill(r).total() / 1_000_000:.6f}")
    print()
    print_bills(
        {name: _per_message(bill) for name, bill in bills.items()},
        "$ per million messages caught up",
    )


def _longest_page_ms(result: CatchUp) -> float:
    return max(LAMBDA_BASE_MS + page.aws_ms() for page in result.pages)


def _per_message(bill: Bill) -> Bill:
    """A catch-up's bill per message (dollars_per_million then prices a million)."""
    share = 1 / CATCH_UP_MESSAGES
    return Bill(
        api_messages=bill.api_messages * share,
        lambda_invocations=bill.lambda_invocations * share,
        wru=bill.wru * share,
        rru=bill.rru * share,
        extra_lambda_ms=bill.extra_lambda_ms * share,
    )


def main(argv: list[str] | None = None) -> int:
    with metered_harness(rate_limit_per_minute=6000, rate_limit_burst=1000) as (h, c, meter):
        lives = {
            "a short text (120-byte ciphertext)": run_life(h, c, meter, SHORT_TEXT_BYTES),
            "a short text between users who talked before": run_second_life(
                h, c, meter, SHORT_TEXT_BYTES
            ),
            "a maximum-size body (24,000 bytes)": run_life(h, c, meter, MAX_BODY_BYTES),
        }
        device_lives = {n: device_life(h, c, meter, n) for n in DEVICE_COUNTS}
    catch_ups: dict[str, CatchUp] = {}
    for label, batch in (("one frame per item (v1)", False), ("batch", True)):
        with metered_harness() as (h, c, meter):
            device = device_of(h, "bob")
            stored = queue_messages(h, "bob", CATCH_UP_MESSAGES, CATCH_UP_SENDERS)
            h.posts.take(device.connection_id)
            result = catch_up(h, device, c, meter, batch=batch)
            if result.received != stored:
                result.received = []  # reported as incomplete
            catch_ups[label] = result
    print(f"Prices: {PRICES_DATE}.")
    print(
        f"Assumed: Lambda {LAMBDA_MEMORY_GB} GB, {LAMBDA_BILLED_MS_PER_INVOCATION} ms billed "
        f"per invocation of a message's life; catching up, {LAMBDA_BASE_MS} ms + "
        f"{DYNAMODB_CALL_MS} ms per DynamoDB call + {POST_MS} ms per post; the scan design "
        f"spends {SCAN_PAGE_MS} ms per 1 MB Scan page on {CONNECTION_ITEM_BYTES}-byte "
        "connection items.\n"
    )
    status = 0
    for label, life in lives.items():
        print(f"-- the life of {label}")
        describe_steps(life)
        ours = life.bill()
        print_bills(
            {
                "floor": life.floor(),
                "this design": ours,
                "scan, 1,000 users": scan_design_bill(ours, 1_000),
                "scan, 1,000,000 users": scan_design_bill(ours, 1_000_000),
            }
        )
        explain_above_floor(life)
        if label.startswith("a short text"):
            met = ours.total() <= TARGET_SHORT_TEXT
            print(
                f"Target for a short text: <= ${TARGET_SHORT_TEXT:.2f} per million lives: "
                f"{'met' if met else 'NOT met'} (${ours.total():.2f}; floor "
                f"${life.floor().total():.2f})"
            )
            least = life.least_with_limits()
            print(
                "Least any design keeping the contract's limits can bill (the floor; for "
                f"each of the {life.invocations} frames in, a function's request and one write "
                f"unit counting it): ${least:.2f}"
                + (" (above the target)" if least > TARGET_SHORT_TEXT else "")
            )
        print()
    print_device_lives(device_lives)
    print_catch_up(catch_ups)
    print(
        "\nConnection minutes are per connected device, not per message: "
        f"${API_GATEWAY_PER_MILLION_CONNECTION_MINUTES} per million minutes "
        f"(a phone connected 24 h a day: ${1440 * 30 * 0.25 / 1e6:.4f} a month)."
    )
    print_keepalive()
    # bench.flap_cost prices with this module's prices: imported here, not above.
    from bench.flap_cost import print_flaps

    print_flaps()
    return status


def print_keepalive() -> None:
    """A connected idle device a month: v1.1's ping (a function and a rate-limit write,
    every 240 s) and v1.2's (answered by API Gateway from a stage variable, every 540 s)."""
    # bench.scale_model prices with this module's prices: imported here, not above.
    from bench.scale_model import LAMBDA_PING, Workload, gateway_ping, idle_socket_month

    w = Workload()
    rows = {
        "before (v1.1: route function)": idle_socket_month(
            replace(w, keepalive="lambda"), LAMBDA_PING
        ),
        "after (v1.2: API Gateway MOCK)": idle_socket_month(
            replace(w, keepalive="gateway"), gateway_ping()
        ),
    }
    print(
        "\n-- the keepalive: a connected idle device, a month (30 days, open all the time)\n"
        f"Assumed: v1.1 pings after {replace(w, keepalive='lambda').ping_seconds:g} s "
        f"without sending, each a frame and its pong (2 billed messages), one invocation "
        f"({w.lambda_ms:g} ms billed, {LAMBDA_MEMORY_GB} GB) and one rate-limit write "
        f"(replicated to the standby: {w.standby}); v1.2 pings after "
        f"{replace(w, keepalive='gateway').ping_seconds:g} s (± jitter, the same mean), "
        "each 2 billed messages and nothing else; API Gateway at the organization's top "
        f"tier; logs {w.lambda_log_bytes:g} B per invocation, {w.access_log_bytes:g} B per "
        f"frame; X-Ray samples {w.trace_sample:.0%}."
    )
    width = max(len(line) for row in rows.values() for line in row) + 2
    print(f"{'$ per device a month':<{width}}" + "".join(f"{name:>32}" for name in rows))
    for line in next(iter(rows.values())):
        print(f"{line:<{width}}" + "".join(f"{row[line]:>32.4f}" for row in rows.values()))
    before, after = (sum(row.values()) for row in rows.values())
    print(f"{'TOTAL':<{width}}" + "".join(f"{total:>32.4f}" for total in (before, after)))
    print(
        f"After is {after / before:.0%} of before (target: at most half): "
        f"{'met' if after <= before / 2 else 'NOT met'}."
    )


if __name__ == "__main__":
    use_bench_environment()
    sys.exit(main())
