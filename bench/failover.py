"""`./dev bench failover`: a load run across two cells, each with a standby, with cell c0
failed over mid-run as a region loss would (its unreplicated writes dropped), against a
baseline: the same load on the same kind of stack, without the failover.

The clients are the load benchmark's careful ones (bench/load/client.py), with docs/protocol.md
§7: they keep every sent frame until its `delivered` receipt and send them again after a
new epoch or a moved home cell; they connect home through the directory and ask it again
when a handshake fails. The checks are the load run's, for a failover: every message
reaches its recipient once as the user sees it (duplicates dropped by (from, messageId)),
each sender's order holds, every message gets a `delivered` receipt, the active tables'
queues end empty.

Printed: the writes dropped, the messages resent, the duplicates clients dropped, the time
from the failover to the first message delivered through the standby (RTO) and to the
last resent message's `delivered` receipt: all measured. Then the RTO of a full cell on
AWS, modelled (bench/failover_model.py): the heaviest cell of the deployment `bench scale`
plans, at the standby's default quotas and at quotas raised in advance.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from bench.failover_model import API_REQUESTS, NEW_CONNECTIONS, Assumptions, cell_at_peak, model_rto
from bench.load.checks import Check, check_run
from bench.load.report import LoadResult, report
from bench.load.run import (
    LoadConfig,
    LoadRun,
    drive,
    load_stack,
    queued_left,
    raise_open_files_limit,
)
from bench.local_stack import functions_output_to_file
from bench.quotas import CELL_QUOTAS
from bench.scale import measure
from bench.scale_model import Workload
from messenger_local import EmbeddedAws, LocalStack
from messenger_local.standby import Failover

FULL_USERS = 400
FULL_MESSAGES = 6_000
DEFAULT_LAG_SECONDS = 1.0
FAILED_CELL = "c0"
# Where in the run (share of the messages acked) the cell fails over.
FAILOVER_AT = 0.5
POLL_SECONDS = 0.02


@dataclass
class FailoverFigures:
    """What the failover cost, for the report (seconds from the failover)."""

    failover: Failover
    messages_resent: int
    duplicates_dropped: int
    first_delivery: float | None
    last_resent_delivered: float | None
    last_resend: float | None

    def lines(self) -> list[str]:
        def seconds(value: float | None) -> str:
            return "never" if value is None else f"{value:.2f} s"

        return [
            f"  writes dropped with {self.failover.cell}'s primary   "
            f"{self.failover.dropped_writes}",
            f"  messages resent (§7)                 {self.messages_resent}",
            f"  duplicates dropped by clients        {self.duplicates_dropped}",
            f"  failover -> first delivery via standby (RTO)   {seconds(self.first_delivery)}",
            f"  failover -> last resend sent                   {seconds(self.last_resend)}",
            f"  failover -> last resent message delivered      "
            f"{seconds(self.last_resent_delivered)}",
        ]


async def run_once(
    config: LoadConfig,
    aws: EmbeddedAws,
    lag: float,
    fail_over: bool,
    progress: Callable[[str], None] = print,
) -> tuple[LoadResult, FailoverFigures | None]:
    """One load run on two cells with standbys; with `fail_over`, c0 fails over midway."""
    raise_open_files_limit(4 * config.users + 1024)
    started = time.perf_counter()
    stack = load_stack(config, aws, cells=2, standby=True, replication_lag=lag)
    async with asyncio.timeout(config.timeout), stack:

        async def settle() -> None:
            await stack.settled(timeout=120.0)

        run = LoadRun(
            config,
            stack.cell_url(FAILED_CELL),
            settle,
            progress,
            directory_url=stack.directory_url,
        )
        trigger = asyncio.get_running_loop().create_task(
            _fail_over_midway(stack, run) if fail_over else asyncio.sleep(0)
        )
        try:
            rounds = await drive(run)
        finally:
            trigger.cancel()
        await stack.settled(timeout=60.0)
        left = await asyncio.to_thread(queued_left, stack, sorted(run.clients))
        failover = stack.standby(FAILED_CELL).failover
        checks = check_run(run.plan, run.tally, left, failover=failover is not None)
        if fail_over:
            checks.append(Check("the cell failed over during the run", int(failover is None)))
        wall = time.perf_counter() - started
        result = report(run, checks, stack, rounds, wall)
        return result, (_figures(run, failover) if failover is not None else None)


async def _fail_over_midway(stack: LocalStack, run: LoadRun) -> None:
    while run.acked < FAILOVER_AT * len(run.plan):
        await asyncio.sleep(POLL_SECONDS)
    run.failover.at = time.perf_counter()
    run.failover.url = stack.standby(FAILED_CELL).standby.ws_url
    failover = await stack.fail_over(FAILED_CELL)
    run.progress(
        f"  ... {FAILED_CELL} failed over after {run.acked:,} acks: "
        f"{failover.dropped_writes} writes dropped, epoch {failover.epoch}"
    )


def _figures(run: LoadRun, failover: Failover) -> FailoverFigures:
    at = run.failover.at
    assert at is not None

    def since(moment: float | None) -> float | None:
        return None if moment is None else moment - at

    resent = [s.receipted_at for s in run.plan if s.resends and s.receipted_at is not None]
    return FailoverFigures(
        failover=failover,
        messages_resent=run.tally.counts["messages resent (§7)"],
        duplicates_dropped=run.tally.counts["duplicate messages dropped"],
        first_delivery=since(run.failover.first_delivery),
        last_resent_delivered=since(max(resent)) if resent else None,
        last_resend=since(run.failover.last_resend),
    )


async def compare(
    config: LoadConfig, lag: float, progress: Callable[[str], None] = print
) -> tuple[LoadResult, LoadResult, FailoverFigures | None]:
    """The baseline run, then the same load with the failover, on one moto."""
    aws = EmbeddedAws(port=0)
    await asyncio.to_thread(aws.start)
    try:
        baseline, _ = await run_once(config, aws, lag, fail_over=False, progress=progress)
        failed, figures = await run_once(config, aws, lag, fail_over=True, progress=progress)
    finally:
        await asyncio.to_thread(aws.stop)
    return baseline, failed, figures


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench failover", description=__doc__)
    parser.add_argument("--users", type=int, default=FULL_USERS)
    parser.add_argument("--messages", type=int, default=FULL_MESSAGES)
    parser.add_argument("--replication-lag", type=float, default=DEFAULT_LAG_SECONDS)
    parser.add_argument("--seed", type=int, default=LoadConfig.seed)
    parser.add_argument("--churn", type=float, default=LoadConfig.churn)
    parser.add_argument(
        "--no-model", action="store_true", help="skip the modelled RTO of a full cell"
    )
    parser.add_argument(
        "--model-only", action="store_true", help="only the modelled RTO of a full cell"
    )
    return parser.parse_args(argv)


def modelled_rto_lines(w: Workload | None = None) -> list[str]:
    """The modelled RTO of `bench scale`'s heaviest cell (its costs measured now, on the
    real handlers), at the standby's default quotas and at quotas raised in advance."""
    w = w or Workload()
    cells, cell = cell_at_peak(w, measure()[0])
    assumptions = Assumptions(ping_seconds=w.ping_seconds)
    quotas = {q.key: q for q in CELL_QUOTAS}
    connections, requests = quotas[NEW_CONNECTIONS], quotas[API_REQUESTS]
    lines = [
        "\n--- modelled: a full cell on AWS (bench/failover_model.py; docs/availability.md) ---",
        f"  the heaviest of {cells:,} cells (`bench scale`, {w.users:,.0f} users): "
        f"{cell.sockets:,.0f} open sockets, {cell.new_connections:,.0f} new connections/s "
        f"and {cell.api_requests:,.0f} requests/s of its own, {cell.messages_in:,.0f} "
        "messages/s stored",
        f"  assumed: probe every {assumptions.probe_seconds:g} s, {assumptions.failed_probes} "
        f"failed probes, {assumptions.switch_seconds:g} s to switch and publish; a dead "
        f"socket found at the next ping ({assumptions.ping_seconds:g} s) + pong timeout "
        f"({assumptions.pong_seconds:g} s); each resend {assumptions.requests_per_resend:g} "
        "requests; a recipient offline waits half its time between sessions",
    ]
    for label, raised in (("default quotas", False), ("quotas raised in advance", True)):
        rto = model_rto(cell, connections.limit(raised), requests.limit(raised), assumptions)
        lines.append(
            f"  standby at {label}: {connections.limit(raised):,.0f} new connections/s, "
            f"{requests.limit(raised):,.0f} requests/s"
        )
        lines.extend(rto.lines())
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv or [])
    if args.model_only:
        for line in modelled_rto_lines():
            print(line)
        return 0
    config = replace(
        LoadConfig(), users=args.users, messages=args.messages, seed=args.seed, churn=args.churn
    )
    with functions_output_to_file("failover") as (console, log_path):

        def say(line: str) -> None:
            print(line, file=console, flush=True)

        say(
            f"{config.users:,} users on 2 cells with standbys (replication lag "
            f"{args.replication_lag:g} s), {config.messages:,} messages; {FAILED_CELL} fails "
            f"over after {FAILOVER_AT:.0%} of the acks (functions' output: {log_path})"
        )
        baseline, failed, figures = asyncio.run(compare(config, args.replication_lag, say))
        say("\n--- baseline: the same load, no failover ---")
        for line in baseline.lines:
            say(line)
        say(f"\n--- with {FAILED_CELL} failed over mid-run ---")
        for line in failed.lines:
            say(line)
        if figures is not None:
            say("\nfailover:")
            for line in figures.lines():
                say(line)
        say(
            f"\nmessages/s: baseline {baseline.messages_per_second:.1f}, with the failover "
            f"{failed.messages_per_second:.1f}"
        )
        if not args.no_model:
            for line in modelled_rto_lines():
                say(line)
    return 0 if baseline.passed and failed.passed else 1
