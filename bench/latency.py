"""Local latency: send→receive through the local stack, next to a bare WebSocket relay.

`python -m bench latency`: two connected clients; one sends MESSAGES messages, each after
the previous `ack`, and the other receives them (and acknowledges each, as a client does,
so the sender's receipts flow too). The same clients, the same frames (real NaCl bodies
of the same sizes) and the same count go first through a bare relay on loopback, in this
process, on the same server library as the emulator's gateway (aiohttp): it reads a
frame, forwards it unchanged to the addressee and answers the sender with an `ack`.
That is the floor any WebSocket server in Python on this machine pays; the stack adds
the authorizer-established connection's routing, a Lambda invocation per frame, the
DynamoDB calls to the embedded moto and the @connections post.

To show where the stack's time goes, the run also times one DynamoDB call to the embedded
moto, and reports how long the sendMessage function itself ran.

`python -m bench latency --senders 24` is the throughput mode: 24 senders, each with
its own recipient, each sending its next message after the previous `ack` (24 messages
in flight at any moment), through the same relay and then the stack. It reports the
messages delivered per second (every counted message, from the first send to the last
arrival) and the send→receive percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from bench.figures import percentile
from bench.local_stack import functions_output_to_file, loopback_stack
from bench.protocol_client import BenchUser, Received, open_socket, read_frame
from messenger.contract import Env
from messenger.dal.profiles import PROFILE, user_key
from messenger_protocol.frames import (
    Ack,
    AckFrame,
    MessageFrame,
    ReceiptFrame,
    SendMessage,
)
from messenger_protocol.limits import MAX_MESSAGE_BYTES
from messenger_protocol.names import SENT_STATUS

MESSAGES = 500
WARMUP = 20  # first messages of each run, not counted: imports, first connections
# The throughput mode: messages per sender, and warm-up messages per sender.
MESSAGES_PER_SENDER = 50
SENDER_WARMUP = 2
# Plaintext sizes cycled through: a short chat line up to a paragraph.
TEXT_SIZES = (20, 80, 200, 600)
ANSWER_TIMEOUT_SECONDS = 30.0
MOTO_CALLS = 200


@dataclass
class Samples:
    """Seconds from sending a message to its arrival, and to the sender's ack."""

    receive: list[float] = field(default_factory=list)
    ack: list[float] = field(default_factory=list)
    # perf_counter() of the first counted send and of the last counted arrival.
    first_send: float = float("inf")
    last_arrival: float = 0.0
    # This process's CPU time and wall time over the whole exchange: on a shared
    # machine, how much of a core it had.
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0

    def merge(self, other: Samples) -> None:
        self.receive += other.receive
        self.ack += other.ack
        self.first_send = min(self.first_send, other.first_send)
        self.last_arrival = max(self.last_arrival, other.last_arrival)

    @property
    def delivered_per_second(self) -> float:
        return len(self.receive) / (self.last_arrival - self.first_send)

    @property
    def core_share(self) -> float:
        return self.cpu_seconds / self.wall_seconds


@dataclass(frozen=True)
class Pair:
    """A sender, its recipient, and the frames the sender sends."""

    sender: BenchUser
    recipient: BenchUser
    frames: list[tuple[str, str]]


def make_pairs(senders: int, messages: int) -> list[Pair]:
    """One pair of users per sender, with `messages` sealed frames each."""
    if senders == 1:
        alice, bob = BenchUser.generate("alice"), BenchUser.generate("bob")
        return [Pair(alice, bob, message_frames(alice, bob, messages))]
    pairs = []
    for number in range(senders):
        sender, recipient = (
            BenchUser.generate(f"sender{number}"),
            BenchUser.generate(f"recipient{number}"),
        )
        pairs.append(Pair(sender, recipient, message_frames(sender, recipient, messages)))
    return pairs


class Receiver:
    """Reads one connection: resolves the sender's acks, notes arrivals, acks items."""

    def __init__(self, socket: ClientConnection, acknowledge: bool) -> None:
        self.socket = socket
        self.acknowledge = acknowledge
        self.arrivals: dict[str, asyncio.Future[float]] = {}
        self.acks: dict[str, asyncio.Future[float]] = {}

    def expect(self, message_id: str) -> tuple[asyncio.Future[float], asyncio.Future[float]]:
        loop = asyncio.get_running_loop()
        self.arrivals[message_id] = loop.create_future()
        self.acks[message_id] = loop.create_future()
        return self.arrivals[message_id], self.acks[message_id]

    async def run(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in self.socket:
                now = time.perf_counter()
                frame = arrival(json.loads(raw))
                if isinstance(frame, MessageFrame | SendMessage):
                    self._resolve(self.arrivals, frame.message_id, now)
                elif isinstance(frame, AckFrame):
                    self._resolve(self.acks, frame.message_id, now)
                if self.acknowledge and isinstance(frame, MessageFrame | ReceiptFrame):
                    await self.socket.send(Ack(ids=[frame.id]).to_json())

    @staticmethod
    def _resolve(waiting: dict[str, asyncio.Future[float]], message_id: str, now: float) -> None:
        future = waiting.get(message_id)
        if future is not None and not future.done():
            future.set_result(now)


def arrival(document: Any) -> Received | SendMessage:
    """What a client got: a frame from the stack, or the sender's own frame, which the
    bare relay hands over unchanged."""
    if isinstance(document, dict) and document.get(SendMessage.DISCRIMINATOR) == SendMessage.KIND:
        return SendMessage.read(document)
    return read_frame(document)


def message_frames(sender: BenchUser, recipient: BenchUser, count: int) -> list[tuple[str, str]]:
    """(messageId, frame) pairs, sealed like any client's."""
    frames = []
    for number in range(count):
        text = "x" * TEXT_SIZES[number % len(TEXT_SIZES)]
        message_id = f"lat{number:08d}"
        sent_at = int(time.time() * 1000)
        frames.append((message_id, sender.message_frame(recipient, message_id, text, sent_at)))
    return frames


async def exchange(
    sender: ClientConnection,
    receiver: ClientConnection,
    frames: list[tuple[str, str]],
    acknowledge: bool,
    warmup: int,
) -> Samples:
    """Send the frames one at a time, each after the previous ack; time each."""
    sender_side = Receiver(sender, acknowledge)
    receiver_side = Receiver(receiver, acknowledge)
    readers = [asyncio.create_task(side.run()) for side in (sender_side, receiver_side)]
    samples = Samples()
    try:
        for number, (message_id, frame) in enumerate(frames):
            arrived, _ = receiver_side.expect(message_id)
            _, acked = sender_side.expect(message_id)
            started = time.perf_counter()
            await sender.send(frame)
            async with asyncio.timeout(ANSWER_TIMEOUT_SECONDS):
                ack_at, arrived_at = await acked, await arrived
            if number >= warmup:
                samples.ack.append(ack_at - started)
                samples.receive.append(arrived_at - started)
                samples.first_send = min(samples.first_send, started)
                samples.last_arrival = max(samples.last_arrival, arrived_at)
    finally:
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    return samples


# --- the bare relay ---------------------------------------------------------------------------


async def relay_handler(request: web.Request) -> web.WebSocketResponse:
    """Forward each frame unchanged to its `to`, then ack the sender: nothing else."""
    peers: dict[str, web.WebSocketResponse] = request.app["peers"]
    # The same settings as the emulator's gateway: no compression, 128 KB messages.
    socket = web.WebSocketResponse(compress=False, max_msg_size=MAX_MESSAGE_BYTES + 1)
    await socket.prepare(request)
    peers[request.query["user"]] = socket
    async for message in socket:
        if message.type is not WSMsgType.TEXT:
            break
        frame = SendMessage.read(json.loads(message.data))
        await peers[frame.to].send_str(message.data)
        ack = AckFrame(
            message_id=frame.message_id, server_ts=int(time.time() * 1000), status=SENT_STATUS
        )
        await socket.send_str(ack.to_json())
    return socket


@contextlib.asynccontextmanager
async def bare_relay() -> AsyncIterator[str]:
    """A relay on a free loopback port; yields its ws:// URL."""
    app = web.Application()
    app["peers"] = {}
    app.router.add_get("/relay", relay_handler)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"ws://127.0.0.1:{port}/relay"
    finally:
        await runner.cleanup()


async def exchange_all(
    url_of: Callable[[BenchUser], str], pairs: list[Pair], acknowledge: bool, warmup: int
) -> Samples:
    """Connect every pair, then run all their exchanges at once."""
    sockets: list[ClientConnection] = []
    try:
        for pair in pairs:
            for user in (pair.sender, pair.recipient):
                sockets.append(await open_socket(url_of(user)))
        runs = [
            exchange(sockets[2 * n], sockets[2 * n + 1], pair.frames, acknowledge, warmup)
            for n, pair in enumerate(pairs)
        ]
        samples = Samples()
        cpu_started, wall_started = time.process_time(), time.perf_counter()
        for result in await asyncio.gather(*runs):
            samples.merge(result)
        samples.cpu_seconds = time.process_time() - cpu_started
        samples.wall_seconds = time.perf_counter() - wall_started
        return samples
    finally:
        for socket in sockets:
            await socket.close()


async def through_relay(pairs: list[Pair], warmup: int) -> Samples:
    async with bare_relay() as url:
        return await exchange_all(
            lambda user: f"{url}?user={user.user_id}", pairs, acknowledge=False, warmup=warmup
        )


# --- the local stack ---------------------------------------------------------------------------


@dataclass
class StackFigures:
    samples: Samples
    send_function_ms: list[float]
    moto_call_seconds: list[float]


async def through_stack(pairs: list[Pair], warmup: int) -> StackFigures:
    # 500 messages from one sender in well under a minute would meet the default rate
    # limit: the benchmarks' stack raises it.
    async with loopback_stack() as stack:
        samples = await exchange_all(
            lambda user: user.signed_url(stack.ws_url), pairs, acknowledge=True, warmup=warmup
        )
        await stack.settled()
        # Warm-up sends are the first `warmup` of each sender: drop as many overall.
        send_ms = [i.duration_ms for i in stack.invocations_of("sendMessage")]
        send_ms = send_ms[warmup * len(pairs) :]
        moto = await asyncio.to_thread(
            time_moto_calls,
            stack.aws.client("dynamodb"),
            stack.table_names[Env.USERS_TABLE.value],
            pairs[0].sender.user_id,
        )
    return StackFigures(samples, send_ms, moto)


def time_moto_calls(dynamodb: Any, table: str, user_id: str) -> list[float]:
    """Seconds per GetItem of a profile, the call every sendMessage starts with."""
    timings = []
    for _ in range(MOTO_CALLS):
        started = time.perf_counter()
        dynamodb.get_item(
            TableName=table, Key={"pk": {"S": user_key(user_id)}, "sk": {"S": PROFILE}}
        )
        timings.append(time.perf_counter() - started)
    return timings


# --- report ------------------------------------------------------------------------------------


def row(label: str, seconds: list[float], baseline: list[float] | None = None) -> str:
    ms = [s * 1000 for s in seconds]
    p50, p99 = percentile(ms, 0.50), percentile(ms, 0.99)
    text = f"{label:<44} {p50:8.2f} {p99:8.2f}"
    if baseline:
        base = [s * 1000 for s in baseline]
        text += (
            f"   {p50 / percentile(base, 0.50):6.0f}x {p99 / percentile(base, 0.99):6.0f}x"
            "  the relay"
        )
    return text


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench latency",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument(
        "--senders",
        type=int,
        default=1,
        help="senders in flight at once, each with its own recipient (1: the latency run; "
        "more: the throughput mode)",
    )
    parser.add_argument(
        "--messages",
        type=int,
        help=f"messages per sender, warm-up included ({MESSAGES + WARMUP} for one sender, "
        f"{MESSAGES_PER_SENDER} each for more)",
    )
    args = parser.parse_args(argv)
    if args.senders < 1:
        parser.error("--senders must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv or [])
    single = args.senders == 1
    warmup = WARMUP if single else SENDER_WARMUP
    per_sender = args.messages or (MESSAGES + WARMUP if single else MESSAGES_PER_SENDER)
    if per_sender <= warmup:
        print(f"--messages must be more than the {warmup} warm-up messages")
        return 2
    pairs = make_pairs(args.senders, per_sender)
    with functions_output_to_file("latency") as (console, _):

        def say(line: str) -> None:
            print(line, file=console, flush=True)

        started = time.perf_counter()
        relay = asyncio.run(through_relay(pairs, warmup))
        stack = asyncio.run(through_stack(pairs, warmup))
        counted = per_sender - warmup
        sizes = ", ".join(map(str, TEXT_SIZES))
        if single:
            say(
                f"{counted} messages ({sizes}-character texts, sealed), each sent after the "
                f"previous ack, between two clients on loopback; {warmup} warm-up messages "
                "not counted"
            )
        else:
            say(
                f"{args.senders} senders in flight, each sending {counted} messages ({sizes}-"
                f"character texts, sealed) to its own recipient, each after the previous ack; "
                f"{warmup} warm-up messages per sender not counted"
            )
            say(f"{'messages delivered per second':<44} {'msg/s':>8}   this process's CPU")
            for label, samples in (("bare relay (aiohttp)", relay), ("local stack", stack.samples)):
                say(
                    f"  {label:<42} {samples.delivered_per_second:8.1f}   "
                    f"{samples.core_share:.0%} of a core"
                )
        say(f"{'':<44} {'p50 ms':>8} {'p99 ms':>8}")
        say(row("send -> receive, bare relay (aiohttp)", relay.receive))
        say(row("send -> receive, local stack", stack.samples.receive, relay.receive))
        say(row("send -> ack, bare relay (aiohttp)", relay.ack))
        say(row("send -> ack, local stack", stack.samples.ack, relay.ack))
        say("where the stack's time goes:")
        say(
            row(
                "  sendMessage function (in the worker)",
                [ms / 1000 for ms in stack.send_function_ms],
            )
        )
        say(row("  one DynamoDB GetItem on the embedded moto", stack.moto_call_seconds))
        say(f"total {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
