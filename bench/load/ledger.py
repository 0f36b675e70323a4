"""What a load run plans to send, and everything it learns about each message."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from bench.protocol_client import BenchUser

# Plaintext length range: short chat messages.
TEXT_CHARS = (16, 200)


@dataclass
class Sent:
    """One planned message and everything the run learns about it."""

    sender: str
    recipient: str
    message_id: str
    pair_index: int  # this is the sender's pair_index-th message to this recipient
    text: str
    attempt_at: float = 0.0  # perf_counter() when the attempt that got acked went out
    first_attempt_at: float | None = None  # perf_counter() of its first attempt
    recipient_epoch: int | None = None  # the recipient's connection then (None: offline)
    acked_at: float | None = None
    ack_server_ts: int | None = None
    received_at: float | None = None  # the first copy, at the recipient
    received_live: bool = False  # pushed to the connection that was open when it was sent
    server_ts: int | None = None  # of the first copy the recipient got
    # serverTs of every distinct stored copy the recipient got. More than one only when
    # the sender had to send the frame again after losing an ack, and the recipient had
    # acknowledged the first copy meanwhile (docs/protocol.md §2 allows that redelivery).
    copies: list[int] = field(default_factory=list)
    lost_acks: int = 0  # attempts whose answer never came, or said INTERNAL
    recipient_acked: bool = False
    # Every copy the recipient got and acked (a live push and the same item in a sync
    # page are two): each ack may make a `delivered` receipt (docs/data-model.md).
    copies_acked: int = 0
    delivered_receipts: int = 0
    receipted_at: float | None = None  # perf_counter() of the last `delivered` receipt
    # With `seen` marks (LoadConfig.seen): the `seen` receipts its sender got (a repeated
    # one is the same news, docs/protocol.md §2 "Seen").
    seen_receipts: int = 0
    # After a failover (docs/protocol.md §7): how often it went again, and the serverTs of
    # each ack those resends got.
    resends: int = 0
    resend_acks: list[int] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str]:
        return (self.sender, self.message_id)


@dataclass
class Tally:
    """What happened during the run: counters, problems, timings."""

    counts: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        # A few examples are enough to debug from; the count says how many there were.
        self.counts["problems"] += 1
        if len(self.problems) < 20:
            self.problems.append(text)


def plan_messages(users: list[BenchUser], count: int, rng: random.Random) -> list[Sent]:
    """`count` messages between random pairs of distinct users."""
    pair_counts: Counter[tuple[int, int]] = Counter()
    plan = []
    for number in range(count):
        sender = rng.randrange(len(users))
        recipient = rng.randrange(len(users) - 1)
        recipient += recipient >= sender
        pair_index = pair_counts[(sender, recipient)]
        pair_counts[(sender, recipient)] += 1
        length = rng.randint(*TEXT_CHARS)
        text = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(length))
        plan.append(
            Sent(
                sender=users[sender].user_id,
                recipient=users[recipient].user_id,
                message_id=f"load{number:08d}",
                pair_index=pair_index,
                text=text,
            )
        )
    return plan
