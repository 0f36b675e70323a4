"""`./dev bench move`: a load run on three cells during which a shard range holding about a
quarter of the users moves from one cell to another (docs/protocol.md §6 "Shard moves").

It is the load benchmark's run (bench/load: its clients, checks and report), with every
recipient marking what it reads `seen`, and one event mid-run: once a share of the
messages is acked, `POST /_local/move` moves the range [first shard of the source cell,
H] to the target cell, H chosen from the shard map and the run's user ids so that the
range holds about a quarter of all users. The checks are the load run's (nothing lost,
doubled or out of order; every `delivered` and every `seen` receipt arriving; the queues
empty), and the move's own: answered 200, it moved the users chosen, and the directory
now homes them in the target.

Printed besides the load run's figures:

- (a) how long the moved users could not send, as their clients saw it: the longest time
  from a moved user's first attempt of a send to its `ack` (through `RATE_LIMITED`,
  `MOVED`, the reconnect to the new home), and the longest gap between two accepted sends
  of one moved user, against the same for the users that stayed (the run's own pace);
  likewise for sends to moved users;
- (b) how long the move took: the answer's `seconds`;
- (c) the modelled time to move one full cell's share on AWS, at DynamoDB's write quotas
  (bench/move_model.py).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from typing import Any

from bench.figures import percentile
from bench.load.checks import Check
from bench.load.ledger import Sent
from bench.load.run import FULL_MESSAGES, FULL_USERS, LoadConfig, LoadRun, run_local
from bench.local_stack import functions_output_to_file
from bench.move_model import model_lines
from bench.scale import measure
from bench.scale_model import Workload
from messenger.contract import Env
from messenger.dal.range_items import USER_PREFIX
from messenger_local import LocalStack
from messenger_local.browser_guard import LOCAL_HEADERS
from messenger_local.moves import MOVE_PATH
from messenger_protocol.cells import Directory, shard

CELLS = 3
DEFAULT_SHARE = 0.25
# Where in the run (share of the messages acked) the move starts.
DEFAULT_AT = 0.3
POLL_SECONDS = 0.05
MOVE_TIMEOUT_SECONDS = 1800.0


@dataclass(frozen=True)
class MoveRange:
    source: str
    target: str
    lo: int
    hi: int
    users: frozenset[str]  # the run's users in the range

    def body(self) -> dict[str, Any]:
        return {"from": self.source, "to": self.target, "lo": self.lo, "hi": self.hi}


def choose_range(
    directory: Directory, user_ids: list[str], source: str, target: str, share: float
) -> MoveRange:
    """The range from the source cell's first shard whose users are `share` of all (as
    near as whole users allow, and at least one, never the whole cell's range)."""
    owned = [r for r in directory.shard_map.ranges if r.cell == source]
    if not owned:
        raise ValueError(f"{source} owns no shards")
    first = owned[0]
    shards = directory.shards
    mine = sorted(
        (shard(user_id, shards), user_id)
        for user_id in user_ids
        if first.first <= shard(user_id, shards) <= first.last
    )
    wanted = min(max(1, round(share * len(user_ids))), len(mine))
    if wanted == 0:
        raise ValueError(f"none of the users lives in {source}'s first range")
    # Never the cell's whole range; users sharing the last shard move together.
    hi = min(mine[wanted - 1][0], first.last - 1)
    moved = frozenset(user_id for number, user_id in mine if number <= hi)
    return MoveRange(source, target, first.first, hi, moved)


@dataclass
class MoveOutcome:
    range: MoveRange
    status: int = 0
    answer: dict[str, Any] = dataclasses.field(default_factory=dict)
    started: float = 0.0  # perf_counter()
    ended: float = 0.0
    acked_at_start: int = 0
    # Users-table items under the moved users' keys at the new home, after the move.
    user_items: int = 0

    @property
    def items_per_user(self) -> float:
        return self.user_items / max(1, len(self.range.users))


def user_items(stack: LocalStack, cell: str, user_ids: list[str]) -> int:
    """The Users-table items under these users' keys in a cell (profile, keys, devices,
    contacts, settings...; one Query each, no Scan). Spent nonces, kept for the connect
    window only and keyed apart, are not counted."""
    dynamodb = stack.aws.client("dynamodb")
    table = stack.active(cell).table_names[Env.USERS_TABLE.value]
    total = 0
    for user_id in user_ids:
        response = dynamodb.query(
            TableName=table,
            Select="COUNT",
            KeyConditionExpression="pk = :user",
            ExpressionAttributeValues={":user": {"S": f"{USER_PREFIX}{user_id}"}},
        )
        total += int(response["Count"])
    return total


def post_move(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST /_local/move; answered once the move is done."""
    request = urllib.request.Request(
        url, method="POST", data=json.dumps(body).encode(), headers=dict(LOCAL_HEADERS)
    )
    try:
        with urllib.request.urlopen(request, timeout=MOVE_TIMEOUT_SECONDS) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


class MoveMidRun:
    """The load run's event: the move, once `at` of the messages are acked."""

    def __init__(self, source: str, target: str, share: float, at: float) -> None:
        self.source, self.target, self.share, self.at = source, target, share, at
        self.outcome: MoveOutcome | None = None
        self.run: LoadRun | None = None

    async def __call__(self, stack: LocalStack, run: LoadRun) -> list[Check]:
        assert run.directory is not None
        self.run = run
        chosen = choose_range(
            run.directory, sorted(run.clients), self.source, self.target, self.share
        )
        while run.acked < self.at * len(run.plan):
            await asyncio.sleep(POLL_SECONDS)
        outcome = self.outcome = MoveOutcome(chosen, acked_at_start=run.acked)
        run.progress(
            f"  ... moving shards {chosen.lo}-{chosen.hi} ({len(chosen.users)} users) from "
            f"{chosen.source} to {chosen.target} after {run.acked:,} acks"
        )
        outcome.started = time.perf_counter()
        outcome.status, outcome.answer = await asyncio.to_thread(
            post_move, f"http://{stack.host}:{stack.port}{MOVE_PATH}", chosen.body()
        )
        outcome.ended = time.perf_counter()
        outcome.user_items = await asyncio.to_thread(
            user_items, stack, chosen.target, sorted(chosen.users)
        )
        run.progress(f"  ... move answered {outcome.status} {outcome.answer}")
        # The clients fetch the directory on their own (watch_directory); once the move is
        # done it is current.
        homes = [stack.home_of(user_id) for user_id in chosen.users]
        return [
            Check("the move answered 200", int(outcome.status != 200), str(outcome.answer)),
            Check(
                "the move moved the users chosen",
                abs(int(outcome.answer.get("users", -1)) - len(chosen.users)),
                f"{outcome.answer.get('users')} moved, {len(chosen.users)} chosen",
            ),
            Check(
                f"every moved user's home is {chosen.target} now",
                sum(home != chosen.target for home in homes),
            ),
        ]


def _waits(
    plan: list[Sent], users: frozenset[str], start: float, end: float, *, sender: bool
) -> list[float]:
    """First attempt -> ack of the sends (by or to `users`) that overlapped [start, end]."""
    return [
        s.acked_at - s.first_attempt_at
        for s in plan
        if ((s.sender if sender else s.recipient) in users)
        and s.first_attempt_at is not None
        and s.acked_at is not None
        and s.first_attempt_at <= end
        and s.acked_at >= start
    ]


def _longest_gap(plan: list[Sent], users: frozenset[str], start: float, end: float) -> float:
    """The longest time between two accepted sends of one of `users`, that overlapped
    [start, end] (0 with none)."""
    acks: dict[str, list[float]] = {}
    for s in plan:
        if s.sender in users and s.acked_at is not None:
            acks.setdefault(s.sender, []).append(s.acked_at)
    gap = 0.0
    for times in acks.values():
        times.sort()
        for before, after in itertools.pairwise(times):
            if before <= end and after >= start:
                gap = max(gap, after - before)
    return gap


def figure_lines(run_plan: list[Sent], all_users: list[str], outcome: MoveOutcome) -> list[str]:
    moved = outcome.range.users
    stayed = frozenset(all_users) - moved
    start, end = outcome.started, outcome.ended

    def waits(label: str, samples: list[float]) -> str:
        if not samples:
            return f"  {label:<52} (none)"
        return (
            f"  {label:<52} max {max(samples):6.2f} s  p50 {percentile(samples, 0.5):5.2f} s"
            f"  (n={len(samples)})"
        )

    answer = outcome.answer
    return [
        "\nmove:",
        f"  shards {outcome.range.lo}-{outcome.range.hi} of {outcome.range.source} -> "
        f"{outcome.range.target}: {len(moved)} of {len(all_users)} users "
        f"({len(moved) / len(all_users):.0%}), started after {outcome.acked_at_start:,} acks",
        f"  (b) the move took {answer.get('seconds', float('nan'))} s (the answer's `seconds`); "
        f"{answer.get('users')} users, {answer.get('items')} items, directory version "
        f"{answer.get('version')}; {end - start:.2f} s from POST to answer; "
        f"{outcome.items_per_user:.1f} Users-table items per moved user",
        "  (a) sends overlapping the move, first attempt -> ack:",
        waits("by moved users", _waits(run_plan, moved, start, end, sender=True)),
        waits(
            "by users that stayed (the run's pace)",
            _waits(run_plan, stayed, start, end, sender=True),
        ),
        waits("to moved users", _waits(run_plan, moved, start, end, sender=False)),
        f"      longest gap between two accepted sends of one user: moved "
        f"{_longest_gap(run_plan, moved, start, end):.2f} s, stayed "
        f"{_longest_gap(run_plan, stayed, start, end):.2f} s",
    ]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench move",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--users", type=int, default=FULL_USERS, help=f"users ({FULL_USERS})")
    parser.add_argument(
        "--messages", type=int, default=FULL_MESSAGES, help=f"messages ({FULL_MESSAGES})"
    )
    parser.add_argument("--seconds", type=float, default=LoadConfig.timeout, help="give up after")
    parser.add_argument("--churn", type=float, default=LoadConfig.churn)
    parser.add_argument("--seed", type=int, default=LoadConfig.seed)
    parser.add_argument("--from", dest="source", default="c0")
    parser.add_argument("--to", dest="target", default="c1")
    parser.add_argument(
        "--share", type=float, default=DEFAULT_SHARE, help="share of all users to move"
    )
    parser.add_argument("--at", type=float, default=DEFAULT_AT, help="move after this share acked")
    parser.add_argument("--no-model", action="store_true", help="skip the modelled AWS move")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv or [])
    if args.users < 4 or args.messages < 1 or not 0 < args.share < 1 or not 0 <= args.at < 1:
        print("need at least 4 users, 1 message, a share and --at between 0 and 1")
        return 2
    config = replace(
        LoadConfig(),
        users=args.users,
        messages=args.messages,
        churn=args.churn,
        seed=args.seed,
        timeout=args.seconds,
        cells=CELLS,
        seen=True,
    )
    event = MoveMidRun(args.source, args.target, args.share, args.at)
    with functions_output_to_file("move") as (console, log_path):

        def say(line: str) -> None:
            print(line, file=console, flush=True)

        say(
            f"{config.users:,} users on {CELLS} cells, {config.messages:,} messages, every "
            f"one marked seen; about {args.share:.0%} of the users move from {args.source} "
            f"to {args.target} after {args.at:.0%} of the acks (functions' output: {log_path}); "
            f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start"
        )
        result = asyncio.run(run_local(config, progress=say, during=event))
        say("\n".join(result.lines))
        say(f"load average {os.getloadavg()[0]:.1f} at the end")
        outcome = event.outcome
        if outcome is not None and event.run is not None:
            for line in figure_lines(event.run.plan, sorted(event.run.clients), outcome):
                say(line)
            if not args.no_model and outcome.user_items:
                for line in model_lines(Workload(), measure()[0], outcome.items_per_user):
                    say(line)
    print("all checks passed" if result.passed else "SOME CHECKS FAILED")
    return 0 if result.passed else 1
