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
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from bench.figures import percentile
from bench.local_stack import functions_output_to_file, loopback_stack
from bench.protocol_client import BenchUser, Received, open_socket, read_frame
from messenger.contract import Env
from messenger.dal.users import PROFILE, user_key
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
# Plaintext sizes cycled through: a short chat line up to a paragraph.
TEXT_SIZES = (20, 80, 200, 600)
ANSWER_TIMEOUT_SECONDS = 30.0
MOTO_CALLS = 200


@dataclass
class Samples:
    """Seconds from sending a message to its arrival, and to the sender's ack."""

    receive: list[float] = field(default_factory=list)
    ack: list[float] = field(default_factory=list)


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
            if number >= WARMUP:
                samples.ack.append(ack_at - started)
                samples.receive.append(arrived_at - started)
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


async def through_relay(frames: list[tuple[str, str]], alice: BenchUser, bob: BenchUser) -> Samples:
    async with bare_relay() as url:
        sender = await open_socket(f"{url}?user={alice.user_id}")
        receiver = await open_socket(f"{url}?user={bob.user_id}")
        try:
            return await exchange(sender, receiver, frames, acknowledge=False)
        finally:
            await sender.close()
            await receiver.close()


# --- the local stack ---------------------------------------------------------------------------


@dataclass
class StackFigures:
    samples: Samples
    send_function_ms: list[float]
    moto_call_seconds: list[float]


async def through_stack(
    frames: list[tuple[str, str]], alice: BenchUser, bob: BenchUser
) -> StackFigures:
    # 500 messages from one sender in well under a minute would meet the default rate
    # limit: the benchmarks' stack raises it.
    async with loopback_stack() as stack:
        sender = await open_socket(alice.signed_url(stack.ws_url))
        receiver = await open_socket(bob.signed_url(stack.ws_url))
        try:
            samples = await exchange(sender, receiver, frames, acknowledge=True)
        finally:
            await sender.close()
            await receiver.close()
        await stack.settled()
        send_ms = [i.duration_ms for i in stack.invocations_of("sendMessage")][WARMUP:]
        moto = await asyncio.to_thread(
            time_moto_calls,
            stack.aws.client("dynamodb"),
            stack.table_names[Env.USERS_TABLE.value],
            alice.user_id,
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


def main(argv: list[str] | None = None) -> int:
    alice, bob = BenchUser.generate("alice"), BenchUser.generate("bob")
    frames = message_frames(alice, bob, MESSAGES + WARMUP)
    with functions_output_to_file("latency") as (console, _):

        def say(line: str) -> None:
            print(line, file=console, flush=True)

        started = time.perf_counter()
        relay = asyncio.run(through_relay(frames, alice, bob))
        stack = asyncio.run(through_stack(frames, alice, bob))
        say(
            f"{MESSAGES} messages ({', '.join(map(str, TEXT_SIZES))}-character texts, sealed), "
            f"each sent after the previous ack, between two clients on loopback; "
            f"{WARMUP} warm-up messages not counted"
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
