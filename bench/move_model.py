"""The time to move one full cell's share of users on AWS, at DynamoDB's write quotas.

A move (functions/messenger/logic/shard_move.py) writes every item of the range once at
the new home (a conditional put, keys kept) and deletes it once at the old home; reads are
the old home's Scan pages. Writes are what binds: the new home's tables take the copies
on top of their own live load. The cell is `bench scale`'s heaviest at default quotas
(bench/scale_model.py, the same numbers `bench scale` and `bench failover` print): its
users, the copies waiting for its offline devices (Little's law, `waiting_copies`), the
stored sizes measured on the real handlers.

The quotas (bench/quotas.py, "dynamodb_wru", read there with its source):

- 40,000 write request units a second per on-demand table by default (80,000 planned
  after an increase); for on-demand tables this per-table quota is the only throughput
  quota, the account-level ones apply to provisioned tables (DynamoDB Service Quotas,
  "Read/write throughput").
- On-demand scaling: a table takes at once up to double its previous peak; more than
  that within 30 minutes may be throttled (AWS, "Troubleshooting throttling issues in
  on-demand mode"). A copy that stays under the cell's own peak hour's load (which the
  table has reached before) is never throttled for growth.

The steps run one after another (users, then queue, then the deletes), each on one table,
so the time is all write units over one table's rate: what the busiest table leaves,
min(quota, 2 x its peak) minus the live load, at the peak hour and at an average hour
(the peak over `Workload.peak`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.quotas import CELL_QUOTAS, DYNAMODB_QUOTAS, Quota
from bench.scale_model import (
    Measured,
    Workload,
    cross_share,
    heaviest_share,
    mean_item_bytes,
    peak_rates,
    plan,
    waiting_copies,
)

WRITE_UNIT_BYTES = 1024  # a write request unit writes up to 1 KB
ON_DEMAND_GROWTH = 2.0  # a table takes up to double its previous peak at once
ON_DEMAND_THROTTLING = (
    "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/"
    "TroubleshootingThrottlingOnDemand.html"
)


def write_units(item_bytes: float) -> int:
    return max(1, math.ceil(item_bytes / WRITE_UNIT_BYTES))


@dataclass(frozen=True)
class CellShare:
    """One full cell's share of the deployment `bench scale` plans, as a move sees it."""

    cells: int
    users: float
    queued: float  # copies waiting for the cell's offline devices
    user_item_bytes: float
    queued_item_bytes: float
    peak_wru: float  # the cell's busiest table at the peak hour (its live load)
    busiest_table: str

    def writes(self, items_per_user: float) -> float:
        """Write units of the copy and the delete: each item written at the new home and
        deleted at the old one."""
        per_user = items_per_user * write_units(self.user_item_bytes)
        queued = self.queued * write_units(self.queued_item_bytes)
        return 2 * (self.users * per_user + queued)


def cell_share(w: Workload, measured: Measured) -> CellShare:
    planned = plan(w, measured)
    if planned.cells is None or planned.demand is None:
        raise ValueError("no cell count carries this workload")
    share = heaviest_share(planned.cells, w.shards)
    rates = peak_rates(w, measured, cross_share(planned.cells))
    return CellShare(
        cells=planned.cells,
        users=w.users * share,
        queued=waiting_copies(w, rates) * share,
        user_item_bytes=measured.profile_bytes,
        queued_item_bytes=mean_item_bytes(w, measured),
        peak_wru=planned.demand.dynamodb_wru,
        busiest_table=planned.demand.busiest_write_table,
    )


def write_quota() -> Quota:
    return next(q for q in CELL_QUOTAS if q.key == "dynamodb_wru")


def copy_rate(quota: float, live_wru: float, previous_peak: float) -> float:
    """Write units a second a table has left for the copy."""
    return max(0.0, min(quota, ON_DEMAND_GROWTH * previous_peak) - live_wru)


def model_lines(w: Workload, measured: Measured, items_per_user: float) -> list[str]:
    """The modelled move of one full cell's share; `items_per_user`: the Users-table items
    a user has (profile, keys, devices, contacts...), as counted after the bench's move;
    each written at the profile's measured size (the others are smaller)."""
    cell = cell_share(w, measured)
    quota = write_quota()
    writes = cell.writes(items_per_user)
    lines = [
        "\n--- modelled: one full cell's share on AWS (bench/move_model.py) ---",
        f"  the heaviest of {cell.cells:,} cells (`bench scale`, {w.users:,.0f} users): "
        f"{cell.users:,.0f} users x {items_per_user:.1f} items "
        f"({cell.user_item_bytes:,.0f} B each), {cell.queued:,.0f} queued copies "
        f"({cell.queued_item_bytes:,.0f} B mean)",
        f"  {writes:,.0f} write units: each item put at the new home and deleted at the old",
        f"  quota: {quota.name} {quota.default:,.0f} ({quota.limit(True):,.0f} raised); "
        f"{quota.source} ({DYNAMODB_QUOTAS}); on-demand takes up to "
        f"{ON_DEMAND_GROWTH:g}x a table's previous peak at once ({ON_DEMAND_THROTTLING})",
        f"  live load on the busiest table ({cell.busiest_table}): {cell.peak_wru:,.0f} WRU/s "
        f"at the peak hour, {cell.peak_wru / w.peak:,.0f} on average",
    ]
    for label, live in (("peak hour", cell.peak_wru), ("average hour", cell.peak_wru / w.peak)):
        for raised in (False, True):
            rate = copy_rate(quota.limit(raised), live, cell.peak_wru)
            took = "never (no headroom)" if rate <= 0 else f"{writes / rate / 60:,.0f} min"
            lines.append(
                f"  at the {label}, {'raised' if raised else 'default'} quota: "
                f"{rate:,.0f} WRU/s left for the copy -> {took}"
            )
    return lines
