"""What a cell's standby (PROTOCOL.md §7) costs a month, at list prices: `./dev bench standby`.

An idle standby's API, functions and tables cost nothing by the request: nothing calls
them until a failover. What it costs is what global tables bill for keeping the replica:
- every write of the primary's tables, replicated: one replicated write request unit
  (rWRU) per write unit, metered here on a real message's life (bench/cost.py's
  `run_life`: send, deliver, ack, receipt, ack; the rate-limit buckets included), times
  the messages a cell carries in a month;
- the replica's storage: every user's profile item (measured on the harness), kept twice;
- the bytes replicated across regions (inter-region data transfer);
- the automated path if it is on: the probe's invocations and reads (one a minute).

    ./dev bench standby [--users N] [--messages-per-user-per-day N]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from bench.capacity import item_size
from bench.catchup import metered_harness
from bench.cost import (
    DYNAMODB_PER_MILLION_RRU,
    DYNAMODB_PER_MILLION_WRU,
    LAMBDA_PER_GB_SECOND_ARM64,
    LAMBDA_PER_MILLION_REQUESTS,
    PRICES_DATE,
    SHORT_TEXT_BYTES,
    run_life,
)
from messenger_local.harness import TABLE_NAMES

# Global tables (on-demand): a replicated write unit costs what a write unit does since
# the Nov 2024 cut (both $0.625 per million in us-east-1).
DYNAMODB_PER_MILLION_REPLICATED_WRU = DYNAMODB_PER_MILLION_WRU
DYNAMODB_PER_GB_MONTH = 0.25
INTER_REGION_PER_GB = 0.02
WRITE_UNIT_BYTES = 1024  # at most this many bytes replicated per write unit
DAYS_PER_MONTH = 30
# The automated path: a 128 MB probe once a minute, ~100 ms billed, one GetItem each.
PROBES_PER_MONTH = 60 * 24 * DAYS_PER_MONTH
PROBE_GB_SECONDS = 0.125 * 0.1
# A cell's size unless told: a million users, each sending 40 short texts a day.
DEFAULT_USERS = 1_000_000
DEFAULT_MESSAGES_PER_USER_PER_DAY = 40


@dataclass(frozen=True)
class StandbyBill:
    """$ per month of one cell's standby."""

    replicated_writes: float
    storage: float
    transfer: float
    automation: float

    @property
    def total(self) -> float:
        return self.replicated_writes + self.storage + self.transfer + self.automation


def standby_bill(
    wru_per_message: float, profile_bytes: int, users: int, messages_per_month: float
) -> StandbyBill:
    """The month's bill from what was metered and the cell's size."""
    replicated_wru = wru_per_message * messages_per_month
    probe = (
        PROBES_PER_MONTH / 1e6 * LAMBDA_PER_MILLION_REQUESTS
        + PROBES_PER_MONTH * PROBE_GB_SECONDS * LAMBDA_PER_GB_SECOND_ARM64
        + PROBES_PER_MONTH * 0.5 / 1e6 * DYNAMODB_PER_MILLION_RRU
    )
    return StandbyBill(
        replicated_writes=replicated_wru / 1e6 * DYNAMODB_PER_MILLION_REPLICATED_WRU,
        storage=users * profile_bytes / 1e9 * DYNAMODB_PER_GB_MONTH,
        transfer=replicated_wru * WRITE_UNIT_BYTES / 1e9 * INTER_REGION_PER_GB,
        automation=probe,
    )


def measure() -> tuple[float, int]:
    """(write units of one short text's whole life, bytes of one user's profile item)."""
    with metered_harness(rate_limit_per_minute=6000, rate_limit_burst=1000) as (h, c, meter):
        life = run_life(h, c, meter, SHORT_TEXT_BYTES)
        profiles = [
            item
            for page in h.dynamodb.get_paginator("scan").paginate(TableName=TABLE_NAMES["Users"])
            for item in page["Items"]
            if item["sk"]["S"] == "PROFILE"
        ]
    return life.units.total_wru, max(item_size(item) for item in profiles)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev bench standby", description=__doc__)
    parser.add_argument("--users", type=int, default=DEFAULT_USERS)
    parser.add_argument(
        "--messages-per-user-per-day", type=float, default=DEFAULT_MESSAGES_PER_USER_PER_DAY
    )
    arguments = parser.parse_args(argv)
    wru, profile_bytes = measure()
    messages = arguments.users * arguments.messages_per_user_per_day * DAYS_PER_MONTH
    bill = standby_bill(wru, profile_bytes, arguments.users, messages)
    print(f"Prices: {PRICES_DATE}; replicated writes as write units (global tables, on demand).")
    print(
        f"Measured: a short text's life writes {wru:g} WRU (each replicated); a user's profile "
        f"item is {profile_bytes} bytes."
    )
    print(
        f"A cell of {arguments.users:,} users sending {arguments.messages_per_user_per_day:g} "
        f"messages a day each ({messages:,.0f} a month): its standby costs a month"
    )
    for label, dollars in (
        ("replicated writes (rWRU)", bill.replicated_writes),
        ("replica storage (profiles; queues drain)", bill.storage),
        ("inter-region transfer (at most 1 KB a unit)", bill.transfer),
        ("automated path (probe each minute)", bill.automation),
        ("idle API, functions, Relay (billed per request)", 0.0),
    ):
        print(f"  {label:<50} ${dollars:>10,.2f}")
    print(f"  {'total':<50} ${bill.total:>10,.2f}")
    print("  (plus $0.10 a month per CloudWatch alarm of the standby's stack)")
    return 0
