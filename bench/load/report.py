"""What a load run prints: its rate, latencies, counts, invocations, and the checks."""

from __future__ import annotations

import resource
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench.figures import percentile
from bench.load.checks import Check
from messenger_local import LocalStack

if TYPE_CHECKING:
    from bench.load.run import LoadConfig, LoadRun


def latency_line(label: str, samples: list[float]) -> str:
    if not samples:
        return f"  {label:<46} (no samples)"
    ms = [s * 1000 for s in samples]
    return (
        f"  {label:<46} p50 {percentile(ms, 0.50):7.1f}  p95 {percentile(ms, 0.95):7.1f}  "
        f"p99 {percentile(ms, 0.99):7.1f}  max {max(ms):7.1f} ms  (n={len(ms)})"
    )


@dataclass
class LoadResult:
    """What one run measured, and whether every check passed."""

    config: LoadConfig
    checks: list[Check]
    lines: list[str]
    messages_per_second: float
    wall_seconds: float
    peak_connections: int
    counts: Counter[str]
    cross_cell: int = 0  # messages whose recipient lived in another cell than their sender
    relays: int = 0  # Relay invocations (storeMessage, receipts...) the stack ran

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)


def cells_line(run: LoadRun) -> list[str]:
    """With cells: how the users are spread, and how many messages crossed cells."""
    if run.config.cells is None:
        return []
    crossing = len(run.cross_cell())
    return [
        f"{run.config.cells} cells, the users spread evenly over them; "
        f"{crossing:,} of the {len(run.plan):,} messages ({crossing / len(run.plan):.0%}) "
        "crossed cells (each through the recipient's cell's Relay)"
    ]


def report(
    run: LoadRun, checks: list[Check], stack: LocalStack | None, rounds: int, wall: float
) -> LoadResult:
    plan = run.plan
    exchange = run.timings["exchange"]
    rate = len(plan) / exchange
    received = [s for s in plan if s.received_at is not None and s.acked_at is not None]
    live = [s for s in received if s.received_live]
    lines = [
        f"{run.config.users:,} users, one connection each, {run.peak_connections:,} open at once "
        f"(connected in {run.timings['connect']:.1f} s)",
        f"{len(plan):,} messages between random pairs, seed {run.config.seed}; "
        f"churn {run.config.churn:.0%}: {run.tally.counts['disconnects']} users dropped and "
        f"came back mid-run",
        *cells_line(run),
        (
            f"rate limit in force: {run.config.rate_per_minute:,}/min per sender, burst "
            f"{run.config.rate_burst:,}"
            if stack is not None
            else "rate limit: whatever the server was started with"
        )
        + f"; at most {run.config.in_flight} sends awaiting their ack",
        "",
        f"  messages/s (all sent and acked)              {rate:8.1f}   "
        f"({len(plan):,} in {exchange:.1f} s)",
        latency_line(
            "send -> receive, recipient online throughout",
            [s.received_at - s.attempt_at for s in live if s.received_at is not None],
        ),
        latency_line(
            "send -> receive, all (incl. after reconnect)",
            [s.received_at - s.attempt_at for s in received if s.received_at is not None],
        ),
        latency_line(
            "send -> ack", [s.acked_at - s.attempt_at for s in plan if s.acked_at is not None]
        ),
        "",
        "  counts: "
        + ", ".join(
            f"{name} {n}" for name, n in sorted(run.tally.counts.items()) if name != "problems"
        )
        or "none",
        f"  drain: {rounds} sync round(s), {run.timings.get('drain', 0):.1f} s; "
        f"wall time {wall:.1f} s; peak memory of this process "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024:,} MB",
    ]
    if stack is not None:
        lines += ["", "  invocations (route: count, p50 / p99 ms in the function, not ok):"]
        by_route: dict[str, list[float]] = {}
        not_ok: Counter[str] = Counter()
        for invocation in stack.invocations:
            # With cells, each cell's apart: "c1 Relay".
            route = f"{invocation.cell} {invocation.route}" if stack.cell_ids else invocation.route
            by_route.setdefault(route, []).append(invocation.duration_ms)
            if invocation.status >= 300 or not invocation.outcome.startswith(("ok", "allow")):
                not_ok[f"{route} {invocation.outcome}"] += 1
        for route, durations in sorted(by_route.items()):
            lines.append(
                f"    {route:<18} {len(durations):7,}   {percentile(durations, 0.5):7.1f} "
                f"/ {percentile(durations, 0.99):7.1f}"
            )
        lines.append("    not ok: " + (", ".join(f"{k} x{n}" for k, n in not_ok.items()) or "none"))
    lines += ["", "checks:"]
    lines += [
        f"  [{'pass' if c.passed else 'FAIL'}] {c.name}"
        + ("" if c.passed else f": {c.failures} {c.detail}")
        for c in checks
    ]
    relays = len(stack.invocations_of("Relay")) if stack is not None else 0
    return LoadResult(
        run.config,
        checks,
        lines,
        rate,
        wall,
        run.peak_connections,
        run.tally.counts,
        len(run.cross_cell()),
        relays,
    )
