"""What a cell's standby (docs/protocol.md §7) costs a month, at list prices: `./dev bench standby`.

The cell is one of `bench scale`'s deployment (its workload at its defaults, its cell
count at default and raised quotas), and its writes are the ones `bench scale` models from
the measured operations. An idle standby's API, functions and tables cost nothing by the
request: nothing calls them until a failover. What it costs is what global tables bill
for keeping the replica (bench/scale_model.py, `standby_bill`):
- every write of the primary's tables, replicated: one replicated write request unit
  (rWRU) per write unit, so the cell's DynamoDB write bill once more;
- the replica's storage: profiles and the copies waiting for offline devices, kept twice;
- the bytes replicated across regions (inter-region transfer, at most 1 KB a unit);
- the automated path if it is on: the probe's invocations and reads (one a minute).
"""

from __future__ import annotations

from bench import cost
from bench.scale import measure
from bench.scale_model import Workload, monthly_volumes, plan, standby_bill, stored_gb


def main(argv: list[str] | None = None) -> int:
    measured, *_ = measure()
    workload = Workload()
    print(f"Prices: {cost.PRICES_DATE}; a replicated write unit as a write unit.")
    print(
        f"bench scale's workload at its defaults: {workload.users:,.0f} daily users, "
        f"{workload.messages:g} messages a day each, peak {workload.peak:g}x; a profile item "
        f"is {measured.profile_bytes} bytes (measured)."
    )
    for raised in (False, True):
        cells = plan(workload, measured, raised).cells
        if cells is None:
            continue
        month, rates = monthly_volumes(workload, measured, cells)
        writes = month.total_wru / cells * cost.DYNAMODB_PER_MILLION_WRU / 1e6
        bill = standby_bill(
            month.total_wru / cells, stored_gb(workload, measured, rates) / cells, 1
        )
        users = workload.users / cells
        title = "raised (assumed) quotas" if raised else "default quotas"
        print(f"\n-- {title}: {cells:,} cells of {users:,.0f} users; one cell's standby a month:")
        for label, dollars in (
            ("replicated writes (rWRU)", bill.replicated_writes),
            ("replica storage (profiles, waiting copies)", bill.storage),
            ("inter-region transfer (at most 1 KB a unit)", bill.transfer),
            ("automated path (probe each minute)", bill.automation),
            ("idle API, functions, Relay (billed per request)", 0.0),
        ):
            print(f"  {label:<50} ${dollars:>12,.2f}")
        print(f"  {'total':<50} ${bill.total:>12,.2f}")
        print(f"  (the cell's own DynamoDB writes: ${writes:,.2f}; plus $0.10 a month per alarm)")
    return 0
