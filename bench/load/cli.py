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
    DEFAULT_WORKERS,
    FULL_MESSAGES,
    FULL_USERS,
    LoadConfig,
    raise_open_files_limit,
    run_local,
    run_remote,
)
from bench.local_stack import functions_output_to_file

# The options that shape a run, in --help's order, each named as the LoadConfig field it
# sets (its default is the field's): type and help.
RUN_OPTIONS: dict[str, tuple[type, str]] = {
    "users": (int, f"users, one connection each ({FULL_USERS})"),
    "messages": (int, f"messages between random pairs ({FULL_MESSAGES})"),
    "churn": (float, f"share of users who drop and reconnect mid-run ({DEFAULT_CHURN})"),
    "seed": (int, "plan seed"),
    "rate_per_minute": (int, "RATE_LIMIT_PER_MINUTE given to the local stack's functions"),
    "rate_burst": (int, "RATE_LIMIT_BURST given to the local stack's functions"),
    "in_flight": (
        int,
        f"sends waiting for their ack at once, all clients together ({DEFAULT_IN_FLIGHT})",
    ),
    "workers": (int, f"the local stack's concurrent invocations ({DEFAULT_WORKERS})"),
    "timeout": (float, "give up after this many seconds"),
    "cells": (int, "run that many cells, users spread evenly over them (default: no cells)"),
    "seen": (bool, "every recipient marks what it reads seen; check every seen receipt"),
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench load",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    defaults = {option.name: option.default for option in dataclasses.fields(LoadConfig)}
    for name, (kind, help_text) in RUN_OPTIONS.items():
        flag = "--" + name.replace("_", "-")
        if kind is bool:
            parser.add_argument(flag, action="store_true", default=defaults[name], help=help_text)
        else:
            parser.add_argument(flag, type=kind, default=defaults[name], help=help_text)
    parser.add_argument("--url", help="drive a running `messenger local` at this ws:// URL")
    parser.add_argument("--aws-endpoint", help="with --url: its moto endpoint")
    parser.add_argument("--queue-table", help="with --url: its queue table")
    return parser.parse_args(argv)


def config_from(args: argparse.Namespace) -> LoadConfig:
    """The run's shape, from the options that set it."""
    return LoadConfig(**{name: getattr(args, name) for name in RUN_OPTIONS})


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv or [])
    if args.users < 2 or args.messages < 1 or not 0 <= args.churn <= 1:
        print("need at least 2 users, 1 message, and a churn between 0 and 1")
        return 2
    if args.cells is not None and (args.cells < 1 or args.url):
        print("--cells takes a number of cells (at least 1), for the stack started here")
        return 2
    config = config_from(args)
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
