"""Catching up a long queue: a device that was offline syncs everything queued for it.

`./dev bench catchup [--items 10000]` queues the items, then catches up as the SDK does
(sync with `batch`, follow `more` with each cursor, ack each page in frames of 100 ids)
on the real handlers (moto harness). It prints each page: its items, frames, DynamoDB
calls and posts, the function's time here (moto, in-process), and an estimate for AWS
from those calls (DYNAMODB_CALL_MS and POST_MS below, which say where it comes from).
The catch-up must end complete and in order, and every page under the 29 s integration
limit.

`catch_up` is also what `./dev bench cost` prices for 1,000 queued short messages.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from bench.calls import CallCounter, instrument
from bench.capacity import CapacityMeter, Metered
from bench.environment import use_bench_environment
from bench.protocol_client import BenchUser
from messenger.contract import TABLES
from messenger.dal.queue import QueuedMessage, new_seq
from messenger_local.harness import TABLE_NAMES, Connection, Harness, harness
from messenger_protocol.encoding import b64url_encode
from messenger_protocol.frames import Ack, Sync

# In-region latencies on AWS (Lambda arm64 to DynamoDB and to the @connections API),
# typical figures, not measured here: a DynamoDB call of a few KB ~10 ms (a 100-key
# BatchGetItem ~15 ms), a post of up to 32 KB ~20 ms; p99 several times that.
DYNAMODB_CALL_MS = 10
POST_MS = 20
P99_FACTOR = 3
INTEGRATION_TIMEOUT_MS = 29_000
SHORT_BODY_BYTES = 120  # a short text's ciphertext
ACK_IDS_PER_FRAME = 100


def queue_messages(
    h: Harness, recipient: str, count: int, senders: int, body_bytes: int = SHORT_BODY_BYTES
) -> list[str]:
    """Store `count` messages for `recipient` from `senders` senders, as sendMessage
    stores them (the queue's own store call); their ids in queue order."""
    ids = []
    ttl = h.settings.message_ttl_seconds
    for i in range(count):
        now_ns = h.clock.now_ns()
        message = QueuedMessage(
            recipient=recipient,
            sender=f"sender{i % senders:03d}",
            message_id=f"m-{i:07d}-{secrets.token_hex(4)}",
            body=b64url_encode(secrets.token_bytes(body_bytes)),
            nonce=b64url_encode(secrets.token_bytes(24)),
            sent_at=now_ns // 1_000_000,
            server_ts=now_ns // 1_000_000,
            seq=new_seq(now_ns // 1_000),
            expires_at=now_ns // 1_000_000_000 + ttl,
        )
        h.services.queue.store_message(message, now_ns // 1_000_000_000)
        ids.append(message.id)
    return ids


@dataclass
class PageRecord:
    items: int
    frames: int
    calls: Counter[str]
    moto_ms: float

    @property
    def dynamodb_calls(self) -> int:
        return sum(n for op, n in self.calls.items() if op.startswith("dynamodb."))

    @property
    def posts(self) -> int:
        return self.calls["apigatewaymanagementapi.PostToConnection"]

    def aws_ms(self, factor: float = 1) -> float:
        return factor * (self.dynamodb_calls * DYNAMODB_CALL_MS + self.posts * POST_MS)


@dataclass
class CatchUp:
    """What one device's catch-up took, from its first sync to its last ack."""

    received: list[str] = field(default_factory=list)
    pages: list[PageRecord] = field(default_factory=list)
    frames_in: int = 0  # sync and ack frames the device sent
    frames_out: int = 0  # frames posted to it (items or one per item, syncDone)
    api_units: int = 0  # API Gateway's billed messages: in and out, per 32 KB
    invocations: int = 0
    calls: Counter[str] = field(default_factory=Counter)
    units: Metered = field(default_factory=Metered)
    ack_ms: list[float] = field(default_factory=list)


def _units(text: str) -> int:
    return max(1, -(-len(text.encode()) // (32 * 1024)))


def catch_up(
    h: Harness,
    device: Connection,
    counter: CallCounter,
    meter: CapacityMeter | None,
    *,
    batch: bool,
) -> CatchUp:
    """Sync page after page (following `more`), acking each page's items as the SDK
    does, until the server says there is no more. Without a meter, no request units
    are taken (the meter's own reads would slow the functions' time down)."""
    result = CatchUp()
    after: str | None = None
    while True:
        request = Sync(after=after, batch=batch).to_wire()
        with counter.measuring() as calls, _measuring(meter) as units:
            started = time.perf_counter()
            reply = h.send(device, request)
            elapsed = (time.perf_counter() - started) * 1000
        assert reply is None, reply
        frames = h.posts.take(device.connection_id)
        result.frames_in += 1
        result.api_units += _units(json.dumps(request))
        result.invocations += 1
        result.calls += calls
        result.units += units
        items: list[dict[str, Any]] = []
        for frame in frames:
            result.api_units += _units(json.dumps(frame, separators=(",", ":")))
            if frame["type"] == "items":
                items += frame["items"]
            elif frame["type"] in ("message", "receipt"):
                items.append(frame)
        result.frames_out += len(frames)
        done = frames[-1]
        assert done["type"] == "syncDone", done
        result.pages.append(PageRecord(len(items), len(frames), calls, elapsed))
        ids = [item["id"] for item in items]
        result.received += ids
        for start in range(0, len(ids), ACK_IDS_PER_FRAME):
            ack = Ack(ids=ids[start : start + ACK_IDS_PER_FRAME]).to_wire()
            with counter.measuring() as calls, _measuring(meter) as units:
                started = time.perf_counter()
                assert h.send(device, ack) is None
                result.ack_ms.append((time.perf_counter() - started) * 1000)
            result.frames_in += 1
            result.api_units += _units(json.dumps(ack))
            result.invocations += 1
            result.calls += calls
            result.units += units
        # A server without pages (v1) sends no `more`: one sync was everything.
        if not done.get("more"):
            return result
        after = done["cursor"]


@contextmanager
def _measuring(meter: CapacityMeter | None) -> Iterator[Metered]:
    if meter is None:
        yield Metered()
        return
    with meter.measuring() as units:
        yield units


@contextmanager
def metered_harness(**settings: Any) -> Iterator[tuple[Harness, CallCounter, CapacityMeter]]:
    """A harness whose functions' AWS calls are counted and their request units metered."""
    with counted_harness(**settings) as (h, counter):
        tables = {TABLE_NAMES[spec.logical_name]: spec for spec in TABLES}
        meter = CapacityMeter(h.dynamodb, tables)
        meter.hook(h.services.dynamodb)
        yield h, counter, meter


@contextmanager
def counted_harness(**settings: Any) -> Iterator[tuple[Harness, CallCounter]]:
    """A harness whose functions' AWS calls are counted."""
    with harness(**settings) as h:
        counter = CallCounter()
        instrument(h, counter)
        yield h, counter


def device_of(h: Harness, name: str) -> Connection:
    user = BenchUser.generate(name)
    h.disconnect(h.connect(user))  # registered, then offline
    return h.connect(user, with_keys=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench catchup", description=__doc__)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--senders", type=int, default=40)
    args = parser.parse_args(argv)
    with counted_harness() as (h, counter):
        bob = BenchUser.generate("bob")
        h.disconnect(h.connect(bob))
        print(f"Queueing {args.items:,} short messages from {args.senders} senders...", flush=True)
        stored = queue_messages(h, bob.user_id, args.items, args.senders)
        device = h.connect(bob, with_keys=False)
        result = catch_up(h, device, counter, None, batch=True)
    complete = result.received == stored
    print(
        f"\nCatch-up of {args.items:,} queued items with `batch` (moto harness; AWS estimate "
        f"= DynamoDB calls x {DYNAMODB_CALL_MS} ms + posts x {POST_MS} ms, p99 x{P99_FACTOR}):"
    )
    print(
        f"{'page':>5} {'items':>6} {'frames':>7} {'DynamoDB':>9} {'posts':>6} "
        f"{'moto ms':>8} {'AWS ms':>7} {'AWS p99':>8}"
    )
    for number, page in enumerate(result.pages, 1):
        print(
            f"{number:>5} {page.items:>6} {page.frames:>7} {page.dynamodb_calls:>9} "
            f"{page.posts:>6} {page.moto_ms:>8.0f} {page.aws_ms():>7.0f} "
            f"{page.aws_ms(P99_FACTOR):>8.0f}"
        )
    worst = max(page.aws_ms(P99_FACTOR) for page in result.pages)
    print(
        f"\n{len(result.pages)} pages, {result.frames_out} frames to the device "
        f"({result.frames_in} from it: syncs and acks of 100 ids), "
        f"{sum(p.moto_ms for p in result.pages) / 1000:.1f} s of sync function time here; "
        f"ack frames {sum(result.ack_ms) / max(1, len(result.ack_ms)):.0f} ms each here."
    )
    limit = INTEGRATION_TIMEOUT_MS // 1000
    print(
        f"complete and in order: {'yes' if complete else 'NO'}; "
        f"worst page on AWS at p99: {worst / 1000:.1f} s of the {limit} s limit"
    )
    return 0 if complete and worst < INTEGRATION_TIMEOUT_MS else 1


if __name__ == "__main__":
    use_bench_environment()
    sys.exit(main())
