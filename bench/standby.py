"""What a cell's standby (docs/protocol.md §7) costs a month, at list prices: `./dev bench standby`.

The cell is one of `bench scale`'s deployment (its load, its cell count, default and
raised quotas), and its writes are the ones `bench scale` models from the measured
operations (a message's life, reconnects, pings). An idle standby's API, functions and
tables cost nothing by the request: nothing calls them until a failover. What it costs
is what global tables bill for keeping the replica:
- every write of the primary's tables, replicated: one replicated write request unit
  (rWRU) per write unit, so the cell's DynamoDB write bill once more;
- the replica's storage: every user's profile item (measured on the harness), kept twice
  (the queues drain, so they hold little);
- the bytes replicated across regions (inter-region transfer, at most 1 KB a unit);
- the automated path if it is on: the probe's invocations and reads (one a minute).
"""

from __future__ import annotations

from dataclasses import dataclass

from bench import cost
from bench.capacity import item_size
from bench.catchup import metered_harness
from bench.scale import Load, cells_needed, measure, monthly_cost
from messenger_local.harness import TABLE_NAMES

# Global tables (on-demand): a replicated write unit costs what a write unit does since
# the Nov 2024 cut (both $0.625 per million in us-east-1).
DYNAMODB_PER_MILLION_REPLICATED_WRU = cost.DYNAMODB_PER_MILLION_WRU
DYNAMODB_PER_GB_MONTH = 0.25
INTER_REGION_PER_GB = 0.02
WRITE_UNIT_BYTES = 1024
DAYS_PER_MONTH = 30
# The automated path: a 128 MB probe once a minute, ~100 ms billed, one GetItem each.
PROBES_PER_MONTH = 60 * 24 * DAYS_PER_MONTH
PROBE_GB_SECONDS = 0.125 * 0.1


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


def standby_bill(cell_write_dollars: float, profile_bytes: int, users: float) -> StandbyBill:
    """The month's bill of one cell's standby, from that cell's own monthly write bill."""
    replicated_wru = cell_write_dollars / cost.DYNAMODB_PER_MILLION_WRU * 1e6
    probe = (
        PROBES_PER_MONTH / 1e6 * cost.LAMBDA_PER_MILLION_REQUESTS
        + PROBES_PER_MONTH * PROBE_GB_SECONDS * cost.LAMBDA_PER_GB_SECOND_ARM64
        + PROBES_PER_MONTH * 0.5 / 1e6 * cost.DYNAMODB_PER_MILLION_RRU
    )
    return StandbyBill(
        replicated_writes=replicated_wru / 1e6 * DYNAMODB_PER_MILLION_REPLICATED_WRU,
        storage=users * profile_bytes / 1e9 * DYNAMODB_PER_GB_MONTH,
        transfer=replicated_wru * WRITE_UNIT_BYTES / 1e9 * INTER_REGION_PER_GB,
        automation=probe,
    )


def profile_bytes() -> int:
    """The size of a registered user's profile item, as the functions write it."""
    with metered_harness(rate_limit_per_minute=6000, rate_limit_burst=1000) as (h, c, meter):
        cost.run_life(h, c, meter, cost.SHORT_TEXT_BYTES)
        profiles = [
            item
            for page in h.dynamodb.get_paginator("scan").paginate(TableName=TABLE_NAMES["Users"])
            for item in page["Items"]
            if item["sk"]["S"] == "PROFILE"
        ]
    return max(item_size(item) for item in profiles)


def main(argv: list[str] | None = None) -> int:
    measured, *_ = measure()
    profile = profile_bytes()
    load = Load()
    print(f"Prices: {cost.PRICES_DATE}; a replicated write unit as a write unit.")
    print(
        f"bench scale's load: {load.daily_users:,.0f} daily users, "
        f"{load.messages_per_user_per_day:g} messages a day each; a profile item is "
        f"{profile} bytes (measured)."
    )
    for raised in (False, True):
        cells = cells_needed(load, measured, raised)
        users = load.daily_users / cells
        writes = monthly_cost(load, measured, cells)["DynamoDB writes"] / cells
        bill = standby_bill(writes, profile, users)
        title = "raised (assumed) quotas" if raised else "default quotas"
        print(f"\n-- {title}: {cells:,} cells of {users:,.0f} users; one cell's standby a month:")
        for label, dollars in (
            ("replicated writes (rWRU)", bill.replicated_writes),
            ("replica storage (profiles; queues drain)", bill.storage),
            ("inter-region transfer (at most 1 KB a unit)", bill.transfer),
            ("automated path (probe each minute)", bill.automation),
            ("idle API, functions, Relay (billed per request)", 0.0),
        ):
            print(f"  {label:<50} ${dollars:>12,.2f}")
        print(f"  {'total':<50} ${bill.total:>12,.2f}")
        print(f"  (the cell's own DynamoDB writes: ${writes:,.2f}; plus $0.10 a month per alarm)")
    return 0
