"""Load: many concurrent WebSocket clients exchange messages through the local stack.

`python -m bench load --help` lists the options; the run and its checks are described
in the package's docstring (bench/load/__init__.py) and in docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os

from bench.load.run import (
    DEFAULT_CHURN,
    DEFAULT_IN_FLIGHT,
    DEFAULT_SEED,
    DEFAULT_TIMEOUT_SECONDS,
    DEFAULT_WORKERS,
    FULL_MESSAGES,
    FULL_USERS,
    LoadConfig,
    raise_open_files_limit,
    run_local,
    run_remote,
)
from bench.local_stack import RATE_BURST, RATE_PER_MINUTE, functions_output_to_file


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench load",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--users", type=int, default=FULL_USERS, help=f"users, one connection each ({FULL_USERS})"
    )
    parser.add_argument(
        "--messages",
        type=int,
        default=FULL_MESSAGES,
        help=f"messages between random pairs ({FULL_MESSAGES})",
    )
    parser.add_argument(
        "--churn",
        type=float,
        default=DEFAULT_CHURN,
        help=f"share of users who drop and reconnect mid-run ({DEFAULT_CHURN})",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="plan seed")
    parser.add_argument(
        "--rate-per-minute",
        type=int,
        default=RATE_PER_MINUTE,
        help="RATE_LIMIT_PER_MINUTE given to the local stack's functions",
    )
    parser.add_argument(
        "--rate-burst",
        type=int,
        default=RATE_BURST,
        help="RATE_LIMIT_BURST given to the local stack's functions",
    )
    parser.add_argument(
        "--in-flight",
        type=int,
        default=DEFAULT_IN_FLIGHT,
        help=f"sends waiting for their ack at once, all clients together ({DEFAULT_IN_FLIGHT})",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=DEFAULT_WORKERS,
        help=f"the local stack's concurrent invocations ({DEFAULT_WORKERS})",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        help="give up after this many seconds",
    )
    parser.add_argument("--url", help="drive a running `messenger local` at this ws:// URL")
    parser.add_argument("--aws-endpoint", help="with --url: its moto endpoint")
    parser.add_argument("--queue-table", help="with --url: its queue table")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv or [])
    if args.users < 2 or args.messages < 1 or not 0 <= args.churn <= 1:
        print("need at least 2 users, 1 message, and a churn between 0 and 1")
        return 2
    # Each option of the run's shape is named as the LoadConfig field it sets.
    config = LoadConfig(
        **{option.name: getattr(args, option.name) for option in dataclasses.fields(LoadConfig)}
    )
    soft, _ = raise_open_files_limit(4 * config.users + 1024)
    with functions_output_to_file("load") as (console, log_path):

        def say(line: str) -> None:
            print(line, file=console, flush=True)

        say(
            f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start; "
            f"open files limit (RLIMIT_NOFILE) raised to {soft} for the sockets of both sides"
        )
        if args.url:
            say(f"driving {args.url}")
            result = asyncio.run(
                run_remote(config, args.url, args.aws_endpoint, args.queue_table, say)
            )
        else:
            say(f"local stack in this process, loopback ports; function output: {log_path}")
            result = asyncio.run(run_local(config, progress=say))
        say("\n".join(result.lines))
        say(f"load average {os.getloadavg()[0]:.1f} at the end")
    print("all checks passed" if result.passed else "SOME CHECKS FAILED")
    return 0 if result.passed else 1
