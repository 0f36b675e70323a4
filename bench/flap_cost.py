"""What a presence flap costs (docs/performance.md "Presence flaps"), printed by
`./dev bench cost`: the held invocation it replaced and the settle queue, side by side.

A flap is a change within PRESENCE_FLAP_WINDOW_MS of the user's previous one, told only
once it has held PRESENCE_SETTLE_MS. Both designs pay the Invoke that hands the change to
the presence function, and the same telling once the flap has settled (a consistent read
of the profile, and the posts when it is not overtaken): that is left out. What differs:

- held: the presence function's invocation waits out the settle time, one execution
  environment per flap for that long;
- settle queue: the invocation sends the flap to SQS (SendMessage, DelaySeconds) and
  returns; the event source mapping receives it in a batch (ReceiveMessage), invokes the
  presence function once per batch and deletes what it took (DeleteMessageBatch).
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.catchup import DYNAMODB_CALL_MS
from bench.cost import (
    LAMBDA_BASE_MS,
    LAMBDA_MEMORY_GB,
    LAMBDA_PER_GB_SECOND_ARM64,
    LAMBDA_PER_MILLION_REQUESTS,
    PRICES_DATE,
)
from messenger.contract import PRESENCE_SETTLE_BATCH_SIZE, PRESENCE_SETTLE_MS

# SQS standard queue, per million requests (each up to 64 KB), past the free million.
SQS_PER_MILLION_REQUESTS = 0.40
# The invocation that sends a flap to the queue: its start and one AWS call.
SEND_MS = LAMBDA_BASE_MS + DYNAMODB_CALL_MS
# A batch invocation's own time, besides telling its records.
BATCH_MS = LAMBDA_BASE_MS
# A reconnect storm: 1% of a million sockets dropping and coming back within 2 s.
STORM_FLAPS_PER_SECOND = 10_000


def _gb_seconds_dollars(ms: float) -> float:
    return ms / 1000 * LAMBDA_MEMORY_GB * LAMBDA_PER_GB_SECOND_ARM64


@dataclass(frozen=True)
class FlapDesign:
    """One way of holding a flap: $ per million flaps by line, and the concurrent
    execution environments a storm asks for (besides the telling, the same in both)."""

    name: str
    lines: dict[str, float]
    environments: float

    @property
    def total(self) -> float:
        return sum(self.lines.values())


def held(flaps_per_second: float = STORM_FLAPS_PER_SECOND) -> FlapDesign:
    """The presence function's invocation sleeps out the settle time."""
    wait_ms = PRESENCE_SETTLE_MS
    return FlapDesign(
        "held invocation (before)",
        {
            "Lambda requests (the Invoke that hands it on)": LAMBDA_PER_MILLION_REQUESTS,
            "Lambda GB-s (waiting, or sending it to the queue)": _gb_seconds_dollars(wait_ms) * 1e6,
            "SQS requests (send; receive and delete per batch)": 0.0,
            "Lambda requests (one per batch)": 0.0,
            "Lambda GB-s (a batch's own time)": 0.0,
        },
        flaps_per_second * wait_ms / 1000,
    )


def settle_queue(
    batch: int = PRESENCE_SETTLE_BATCH_SIZE, flaps_per_second: float = STORM_FLAPS_PER_SECOND
) -> FlapDesign:
    """The flap waits on SQS; the presence function reads it back `batch` at a time."""
    return FlapDesign(
        f"settle queue, batches of {batch}",
        {
            "Lambda requests (the Invoke that hands it on)": LAMBDA_PER_MILLION_REQUESTS,
            "Lambda GB-s (waiting, or sending it to the queue)": _gb_seconds_dollars(SEND_MS) * 1e6,
            "SQS requests (send; receive and delete per batch)": SQS_PER_MILLION_REQUESTS
            * (1 + 2 / batch),
            "Lambda requests (one per batch)": LAMBDA_PER_MILLION_REQUESTS / batch,
            "Lambda GB-s (a batch's own time)": _gb_seconds_dollars(BATCH_MS) * 1e6 / batch,
        },
        flaps_per_second * SEND_MS / 1000 + flaps_per_second / batch * BATCH_MS / 1000,
    )


def print_flaps() -> None:
    designs = [held(), settle_queue(), settle_queue(batch=1)]
    print(
        f"\n-- presence flaps: a change within 2 s of the previous one, told once it held "
        f"{PRESENCE_SETTLE_MS} ms\nPrices: {PRICES_DATE}; SQS ${SQS_PER_MILLION_REQUESTS:.2f} "
        f"per million requests. Assumed: Lambda {LAMBDA_MEMORY_GB} GB arm64; sending a flap "
        f"to the queue {SEND_MS} ms billed, a batch's own time {BATCH_MS} ms; the telling "
        "(a consistent read, and the posts when not overtaken) is the same in every design "
        "and left out; a storm is "
        f"{STORM_FLAPS_PER_SECOND:,} flaps/s (a full batch under a storm, one at a trickle)."
    )
    width = max(len(line) for line in designs[0].lines) + 2
    print(f"{'$ per million flaps':<{width}}" + "".join(f"{d.name:>34}" for d in designs))
    for line in designs[0].lines:
        print(f"{line:<{width}}" + "".join(f"{d.lines[line]:>34.4f}" for d in designs))
    print(f"{'TOTAL':<{width}}" + "".join(f"{d.total:>34.4f}" for d in designs))
    print(
        f"{'environments at ' + format(STORM_FLAPS_PER_SECOND, ',') + ' flaps/s':<{width}}"
        + "".join(f"{d.environments:>34,.0f}" for d in designs)
    )
