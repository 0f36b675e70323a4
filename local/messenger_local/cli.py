"""`messenger local`: the whole messenger on this machine, until Ctrl-C.

The console shows the addresses, how to connect, and one line per invocation. What
the functions print themselves (powertools' JSON logs and EMF metrics) goes to a
file, as on Lambda it goes to CloudWatch Logs: `--function-log -` shows it here.

The functions' tunable settings (`SETTINGS_FROM_ENVIRONMENT`: the rate limits, the
message TTL...) are taken from this command's environment, as a deployment takes them
from its configuration; the rest of their environment is the stack's to give.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TextIO

from messenger.contract import SERVICE_NAME, Env
from messenger_directory.observability import SERVICE_NAME as DIRECTORY_SERVICE_NAME
from messenger_local.browser_guard import LOCAL_HEADER, LOCAL_HEADER_VALUE
from messenger_local.gateway import MAX_DURATION_SECONDS
from messenger_local.invocations import Invocation
from messenger_local.push_log import push_lines
from messenger_local.stack import FAILOVER_LOGGER, LocalStack
from messenger_local.standby import DEFAULT_REPLICATION_LAG_SECONDS
from messenger_local.state import SAVE_EVERY_SECONDS, StateError
from messenger_protocol.limits import IDLE_TIMEOUT_SECONDS

# The project's root (where `./dev local` runs): the default state lives under it.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_STATE_ROOT = ".messenger-local"
# What "no limit" on registrations per address is, for the functions (a setting, not code).
UNLIMITED_REGISTRATIONS = 1_000_000
DEFAULT_FUNCTION_LOG = os.path.join(tempfile.gettempdir(), "messenger-local-functions.log")
# The functions' powertools loggers: the messenger's, and the directory's (a failover's).
FUNCTION_LOGGERS = (SERVICE_NAME, DIRECTORY_SERVICE_NAME)
# What the functions get from this command's environment (e.g. the load benchmark's rate
# limits, docs/performance.md); their tables, endpoints and cells are the stack's.
SETTINGS_FROM_ENVIRONMENT = (
    Env.MESSAGE_TTL_SECONDS,
    Env.RATE_LIMIT_PER_MINUTE,
    Env.RATE_LIMIT_BURST,
    Env.PUSH_MIN_INTERVAL_SECONDS,
    Env.REGISTRATIONS_PER_IP_PER_HOUR,
)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="messenger local",
        description="Run the messenger locally: the real Lambda functions behind an "
        "API Gateway WebSocket emulator, on an embedded moto.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=8080, help="WebSocket and @connections port (8080)"
    )
    parser.add_argument(
        "--stage",
        default="local",
        help="API stage name (local); with --cells, the name in function and table names",
    )
    parser.add_argument(
        "--cells",
        type=_cell_count,
        metavar="N",
        help="run N cells (docs/protocol.md §6) on the one port, at /c0 … /c{N-1}, with "
        "the directory at /directory.json (default: one stage, no cells)",
    )
    parser.add_argument(
        "--standby",
        action="store_true",
        help="give each cell a standby at /cN-standby, its tables replicated as global "
        "tables do; POST /_local/failover/CELL fails a cell over (needs --cells), "
        "?keepPrimary=true leaves the old primary reachable and fenced",
    )
    parser.add_argument(
        "--replication-lag",
        type=float,
        default=DEFAULT_REPLICATION_LAG_SECONDS,
        metavar="SECONDS",
        help=f"with --standby: how long a write takes to reach the standby "
        f"({DEFAULT_REPLICATION_LAG_SECONDS:g})",
    )
    parser.add_argument("--aws-port", type=int, default=5005, help="moto's port (5005)")
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=IDLE_TIMEOUT_SECONDS,
        help=f"seconds before an idle connection closes ({IDLE_TIMEOUT_SECONDS})",
    )
    parser.add_argument(
        "--max-duration",
        type=float,
        default=MAX_DURATION_SECONDS,
        help=f"seconds before any connection closes ({MAX_DURATION_SECONDS})",
    )
    parser.add_argument(
        "--function-log",
        default=DEFAULT_FUNCTION_LOG,
        help=f"where the functions' own output goes, '-' for the console ({DEFAULT_FUNCTION_LOG})",
    )
    parser.add_argument(
        "--state",
        type=Path,
        metavar="DIR",
        help="keep the tables (users, queued messages...) and push apps in DIR across "
        f"restarts (default: {DEFAULT_STATE_ROOT}/<stage> under the project, git-ignored)",
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="start empty: forget the kept users and messages (the state directory's "
        "content is removed first); the directory's version still grows, as on every start",
    )
    parser.add_argument(
        "--registrations-per-hour",
        type=int,
        metavar="N",
        help="limit new users per address and hour to N, as a deployment does (default "
        "here: no limit, since every local user comes from 127.0.0.1)",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="the functions' log level (INFO)",
    )
    args = parser.parse_args(argv)
    if args.standby and args.cells is None:
        parser.error("--standby needs --cells N (a standby is a cell's)")
    if args.standby and args.state is not None:
        parser.error("--standby and --state do not go together")
    if args.state is None and not args.standby:
        args.state = default_state_dir(args.stage, args.cells)
    if args.registrations_per_hour is not None and args.registrations_per_hour < 1:
        parser.error("--registrations-per-hour needs at least 1")
    if args.replication_lag < 0:
        parser.error("--replication-lag cannot be negative")
    return args


def default_state_dir(stage: str, cells: int | None) -> Path:
    """Where a stack keeps its state unless told: under the project (git-ignored), one
    folder per stage and number of cells (kept tables are of one shape)."""
    name = stage if cells is None else f"{stage}-{cells}-cells"
    return PROJECT_ROOT / DEFAULT_STATE_ROOT / name


def forget_state(directory: Path) -> None:
    """`--fresh`: empty the state directory (only what a stack writes there)."""
    if directory.is_dir():
        shutil.rmtree(directory)


def first_directory_version() -> int:
    """The version this run first publishes its directory with: the clock, in milliseconds
    since the epoch.

    Clients refuse a directory whose version is lower than one they have accepted
    (docs/protocol.md §6), and remember it (a CLI profile, a browser's IndexedDB). A run
    starts its directory afresh (the directory is not among the kept state, and --fresh
    forgets the rest), so a count from 1 would be refused by every client of an earlier
    run. The clock is above any version an earlier run published, whatever its state
    directory, unless that run published more times than milliseconds have passed since
    it started (each change is +1: a failover, by hand)."""
    return time.time_ns() // 1_000_000


def _cell_count(text: str) -> int:
    count = int(text)
    if count < 1:
        raise argparse.ArgumentTypeError(f"at least one cell, not {count}")
    return count


def banner(stack: LocalStack, function_log: str) -> str:
    if stack.cell_ids:
        return cells_banner(stack, function_log)
    signer = f"{sys.executable} -m messenger_local.signed_url"
    url_option = "" if stack.ws_url == "ws://127.0.0.1:8080/local" else f" --url {stack.ws_url}"
    tables = ", ".join(stack.table_names.values())
    return "\n".join(
        [
            "messenger local: the real functions behind an API Gateway WebSocket emulator",
            f"  web app           http://{stack.host}:{stack.port}/  (open it in a browser)",
            f"  WebSocket URL     {stack.ws_url}",
            f"  @connections API  {stack.connections_url}",
            f"  AWS (moto)        {stack.aws_endpoint}   tables: {tables}",
            f"  function logs     {function_log}",
            f"  state             {state_line(stack)}",
            f"  registrations     {registrations_line(stack)}",
            "  mobile push       SNS platform apps for APNS, APNS_SANDBOX, GCM (fake credentials);"
            " a 'push' line per push",
            "",
            "Use the CLI on this stack (in another terminal):",
            f"  export MESSENGER_SERVER={stack.ws_url}",
            "  .venv/bin/messenger --profile alice init",
            "",
            "Connect a client:",
            "  wscat (a signed URL is good once, for 5 minutes; make one per connection):",
            f'    node_modules/.bin/wscat -c "$({signer} alice{url_option})"',
            '    then send e.g. {"action":"ping"}  (README: \'Run it locally\' shows a chat)',
            "  the project's CLI:",
            "    .venv/bin/messenger --help",
            "",
            "Ctrl-C stops it.",
            "",
        ]
    )


def cells_banner(stack: LocalStack, function_log: str) -> str:
    signer = f"{sys.executable} -m messenger_local.signed_url"
    cells = []
    for cell_id in stack.cell_ids:
        cell = stack.cell(cell_id)
        shards = ", ".join(
            f"{entry.first}-{entry.last}"
            for entry in stack.shard_map.ranges
            if entry.cell == cell_id
        )
        cells.append(
            f"  cell {cell_id:<12} {cell.ws_url}  (shards {shards} of {stack.shard_map.shards})"
        )
        if stack.has_standby:
            cells.append(
                f"    standby         {stack.standby(cell_id).standby.ws_url}  (replication "
                f"lag {stack.replication_lag:g} s; fail over: "
                f"curl -X POST -H '{LOCAL_HEADER}: {LOCAL_HEADER_VALUE}' "
                f"http://{stack.host}:{stack.port}/_local/failover/{cell_id})"
            )
    if len(stack.cell_ids) > 1:
        cells.append(
            f"  move shards     curl -X POST -H '{LOCAL_HEADER}: {LOCAL_HEADER_VALUE}' "
            f"http://{stack.host}:{stack.port}/_local/move "
            """-d '{"from": "c0", "to": "c1", "lo": 0, "hi": 99}'"""
        )
    first = stack.cell(stack.cell_ids[0])
    tables = ", ".join(first.table_names.values())
    return "\n".join(
        [
            f"messenger local: {len(stack.cell_ids)} cells, the real functions behind an API "
            "Gateway WebSocket emulator",
            f"  web app           http://{stack.host}:{stack.port}/  (open it in a browser)",
            f"  directory         {stack.directory_url}  (version {stack.directory.version})",
            *cells,
            f"  @connections API  {first.connections_url} (and so on for each cell)",
            f"  AWS (moto)        {stack.aws_endpoint}   tables of {first.cell_id}: {tables} "
            "(and so on for each cell)",
            f"  function logs     {function_log}",
            f"  state             {state_line(stack)}",
            f"  registrations     {registrations_line(stack)}",
            "  mobile push       SNS platform apps for APNS, APNS_SANDBOX, GCM in each cell (fake "
            "credentials); a 'push' line per push",
            "",
            "Use the CLI on this stack (in another terminal):",
            f"  export MESSENGER_DIRECTORY={stack.directory_url}",
            "  .venv/bin/messenger --profile alice init",
            "",
            "Connect a client to its home cell (the directory says which; another cell answers "
            "403):",
            "  wscat (a signed URL is good once, for 5 minutes; make one per connection):",
            f'    node_modules/.bin/wscat -c "$({signer} alice --url {stack.home_url("alice")})"',
            '    then send e.g. {"action":"ping"}',
            "  the project's CLI (it connects to the home cell the directory names):",
            f"    .venv/bin/messenger --directory {stack.directory_url} --help",
            "",
            "Ctrl-C stops it.",
            "",
        ]
    )


def state_line(stack: LocalStack) -> str:
    if stack.state_dir is None:
        if stack.has_standby:
            return (
                "not kept: a stack with standbys replicates its tables live and cannot restore"
                " them yet, so a restart forgets every user and message"
            )
        return "not kept: a restart forgets every user and message (--state DIR keeps them)"
    origin = "restored from the last run; --fresh starts empty" if stack.restored else "new"
    return (
        f"kept in {stack.state_dir} ({origin}; saved every {SAVE_EVERY_SECONDS:g} s and on "
        f"stop: a crash loses at most the last {SAVE_EVERY_SECONDS:g} s)"
    )


@contextlib.contextmanager
def functions_output(destination: str) -> Iterator[str]:
    """Send what the functions print to `destination` ('-': leave it on the console)."""
    if destination == "-":
        yield "this console"
        return
    with open(destination, "w", buffering=1, encoding="utf-8") as log_file:
        original = sys.stdout
        # What the functions print (EMF metrics)...
        sys.stdout = log_file
        # ... and powertools' loggers, which took sys.stdout as their stream when the
        # functions' modules were imported (with this one's).
        handlers = [
            handler
            for name in FUNCTION_LOGGERS
            for handler in logging.getLogger(name).handlers
            if isinstance(handler, logging.StreamHandler) and handler.stream is original
        ]
        for handler in handlers:
            handler.setStream(log_file)
        try:
            yield destination
        finally:
            for handler in handlers:
                handler.setStream(original)
            sys.stdout = original


@contextlib.contextmanager
def failover_lines(console: TextIO) -> Iterator[None]:
    """While inside, each failover asked for is a console line, next to the invocations:
    `12:00:01.234 failover: c0 -> c0-standby (epoch local-c0-standby#1, 0 writes dropped)`."""
    handler = logging.StreamHandler(console)
    handler.setFormatter(logging.Formatter("%(asctime)s.%(msecs)03d %(message)s", "%H:%M:%S"))
    FAILOVER_LOGGER.addHandler(handler)
    FAILOVER_LOGGER.setLevel(logging.INFO)
    FAILOVER_LOGGER.propagate = False
    try:
        yield
    finally:
        FAILOVER_LOGGER.removeHandler(handler)
        FAILOVER_LOGGER.propagate = True


def function_settings(
    environ: Mapping[str, str], registrations_per_hour: int | None = None
) -> dict[str, str]:
    """The functions' settings this command was started with (SETTINGS_FROM_ENVIRONMENT).
    Registrations per address are not limited unless asked (`--registrations-per-hour`,
    or the environment's): locally every user comes from 127.0.0.1."""
    settings = {
        env.value: environ[env.value] for env in SETTINGS_FROM_ENVIRONMENT if env in environ
    }
    if registrations_per_hour is not None:
        settings[Env.REGISTRATIONS_PER_IP_PER_HOUR] = str(registrations_per_hour)
    settings.setdefault(Env.REGISTRATIONS_PER_IP_PER_HOUR, str(UNLIMITED_REGISTRATIONS))
    return settings


def registrations_line(stack: LocalStack) -> str:
    limit = stack.environment.get(Env.REGISTRATIONS_PER_IP_PER_HOUR)
    if limit is None or int(limit) >= UNLIMITED_REGISTRATIONS:
        return (
            "not limited (every local user comes from 127.0.0.1);"
            " --registrations-per-hour N limits them"
        )
    return f"at most {limit} new users per address and hour (--registrations-per-hour)"


async def serve(args: argparse.Namespace, console: TextIO, function_log: str) -> int:
    def show(invocation: Invocation) -> None:
        # In a stack of cells, each line names its cell.
        print(invocation.line(with_cell=bool(stack.cell_ids)), file=console, flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stop.set)
    stack = LocalStack(
        host=args.host,
        port=args.port,
        stage=args.stage,
        cells=args.cells,
        standby=args.standby,
        replication_lag=args.replication_lag,
        aws_port=args.aws_port,
        idle_timeout=args.idle_timeout,
        max_duration=args.max_duration,
        environment=function_settings(os.environ, args.registrations_per_hour),
        on_invocation=show,
        state_dir=args.state,
        first_directory_version=first_directory_version(),
    )
    # powertools' loggers of the functions (one each in this process).
    for name in FUNCTION_LOGGERS:
        logging.getLogger(name).setLevel(args.log_level)
    if args.fresh and args.state is not None:
        forget_state(args.state)
    try:
        await stack.start()
    except (OSError, StateError) as error:
        print(f"messenger local: {error}", file=sys.stderr)
        return 1
    try:
        print(banner(stack, function_log), file=console, flush=True)
        # Mobile pushes (to moto's SNS) get a console line each, like invocations.
        with (
            push_lines(lambda line: print(line, file=console, flush=True)),
            failover_lines(console),
        ):
            await stop.wait()
        print("stopping: closing connections...", file=console, flush=True)
    finally:
        await stack.stop()
    print("stopped", file=console, flush=True)
    return 0


def main(argv: list[str]) -> int:
    """Entry point of `messenger local` (dispatched by the `messenger` command)."""
    args = parse_args(argv)
    console = sys.stdout
    with functions_output(args.function_log) as function_log:
        return asyncio.run(serve(args, console, function_log))
