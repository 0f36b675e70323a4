"""Hot recipients: what a user with many connections costs its senders' `ack`.

`python -m bench hot` (`./dev bench hot`): alice sends bob MESSAGES short messages, each
after the previous `ack`, through the real handlers on moto; every @connections post is
made to take POST_MS (what a PostToConnection takes on AWS, as bench catchup assumes).
Three runs in the same process, so the figures compare on the same machine and load:
1. the baseline: bob holds one connection;
2. bob holds four (the most one device may, docs/protocol.md §1), posted to one after
   another (a pool of one: how the functions posted before);
3. bob holds four, posted to together (the functions' bounded pool).
It prints send→ack percentiles of each and their ratio to the baseline, how many of 20
connections bob opened the cell kept, and the machine's load average beside them.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from bench.figures import percentile
from bench.protocol_client import BenchUser
from messenger.logic import live_delivery
from messenger.transport.connections import Connections
from messenger_local.harness import Harness, harness
from messenger_protocol.limits import MAX_CONNECTIONS_PER_DEVICE

MESSAGES = 100
WARMUP = 5
POST_MS = 20  # a PostToConnection on AWS (bench/catchup.py assumes the same)
CONNECTIONS_OPENED = 20


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


def send_to_ack_ms(h: Harness, sender: Any, recipient: BenchUser, tag: str) -> list[float]:
    """send→ack of MESSAGES messages, each sent after the previous ack (warm-up left out)."""
    times = []
    for n in range(WARMUP + MESSAGES):
        frame = h.message(sender, recipient, "a short line", f"msg-{tag}{n:05d}")
        started = time.perf_counter()
        reply = h.send(sender, frame)
        took = (time.perf_counter() - started) * 1000
        if reply is None or reply.get("type") != "ack":
            raise RuntimeError(f"not acked: {reply}")
        if n >= WARMUP:
            times.append(took)
    return times


def run(connections: int, workers: int | None, tag: str) -> list[float]:
    # The sender's own rate limit is not what is measured here.
    with harness(rate_limit_burst=10 * MESSAGES, rate_limit_per_minute=100 * MESSAGES) as h:
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench hot", description=__doc__)
    parser.parse_args(argv)
    load_before = os.getloadavg()
    runs = {
        "baseline: 1 connection": run(1, None, "b"),
        f"{MAX_CONNECTIONS_PER_DEVICE} connections, posted one by one": run(
            MAX_CONNECTIONS_PER_DEVICE, 1, "s"
        ),
        f"{MAX_CONNECTIONS_PER_DEVICE} connections, posted together": run(
            MAX_CONNECTIONS_PER_DEVICE, None, "c"
        ),
    }
    load_after = os.getloadavg()
    print(
        f"send→ack of {MESSAGES} short messages, each after the previous ack (moto harness, "
        f"every post {POST_MS} ms as on AWS)"
    )
    print(f"{'run':<40} {'p50 ms':>8} {'p95 ms':>8} {'p50 / baseline':>15}")
    baseline = percentile(runs["baseline: 1 connection"], 0.5)
    for name, times in runs.items():
        p50, p95 = percentile(times, 0.5), percentile(times, 0.95)
        print(f"{name:<40} {p50:>8.1f} {p95:>8.1f} {p50 / baseline:>14.2f}x")
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
    return 0 if kept == MAX_CONNECTIONS_PER_DEVICE else 1
