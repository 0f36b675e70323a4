"""The operator's shard-move commands (docs/scale.md "Shard moves", "On AWS"), run as
`python -m infra.cells`:

    python -m infra.cells move --from c0 --to c2 --shards 0-16383 [--env prod] [-c K=V ...]
        starts a move of shards 0..16383 from c0 to c2: c0's Mover records it (or refuses:
        a range c0 does not own, an overlapping move; exit 2, nothing written), then c0's
        state machine runs it (infra/mover.py); prints the move and its execution
    python -m infra.cells move --from c0 --resume MOVE_ID
        a new execution of a move that stopped (failed, timed out, aborted): it resumes at
        the step and page its record names
    python -m infra.cells move --from c0 --abort MOVE_ID
        rolls back a move that has not switched out yet: c0's Mover turns its record to the
        rollback (or refuses, exit 2: past the switch, finish it and move the range back),
        the move's running execution is stopped and one that runs the rollback started
    python -m infra.cells move-status --from c0
        every move out of c0: its record (step, counts, version, last error) and its
        executions' status

The cells are the app's own context (cdk.json, plus `-c` as given to `cdk deploy`); the
Mover's name, the state machine's ARN and the Users table are read from the old home's
stack outputs. Only the old home's account and region are asked anything: the Mover does
the rest with its own role. Credentials: the profile's (`--profile`) for that account.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import boto3

from infra.app import cdk_json_context
from infra.config import Cell, cells_from_context, config_from_context, names_cells
from infra.failover import CLIENT_CONFIG, OutputsOf, cloudformation_outputs
from messenger.dal.moves import MoveRecords

MOVER_OUTPUT = "MoverFunctionName"
STATE_MACHINE_OUTPUT = "MoverStateMachineArn"
USERS_TABLE_OUTPUT = "UsersTableName"


class MoveCommandRefused(ValueError):
    """What the command cannot do (exit 2): a refused range, an unknown cell or move."""


@dataclass(frozen=True)
class OldHome:
    """The cell the move leaves, as deployed: where its Mover, state machine and Users
    table are."""

    cell: Cell
    mover: str
    state_machine: str
    users_table: str


def old_home(context: Mapping[str, Any], cell_id: str, outputs_of: OutputsOf) -> OldHome:
    merged = {**cdk_json_context(), **context}
    if not names_cells(merged.get):
        raise MoveCommandRefused("no cells in the context: pass -c cells=... as to cdk deploy")
    config = config_from_context(merged.get)
    cells = cells_from_context(merged.get, standby_placement=False)
    cell = next((cell for cell in cells.cells if cell.cell_id == cell_id), None)
    if cell is None:
        known = ", ".join(c.cell_id for c in cells.cells)
        raise MoveCommandRefused(f"no cell {cell_id!r} in this deployment (its cells: {known})")
    outputs = outputs_of(config.cell_stack_name(cell_id), cell.region)
    if MOVER_OUTPUT not in outputs:
        raise MoveCommandRefused(f"{cell_id}'s stack has no Mover: deploy it with its peers")
    return OldHome(
        cell, outputs[MOVER_OUTPUT], outputs[STATE_MACHINE_OUTPUT], outputs[USERS_TABLE_OUTPUT]
    )


def parse_shards(text: str) -> tuple[int, int]:
    lo, dash, hi = text.partition("-")
    if not (dash and lo.isdigit() and hi.isdigit()):
        raise argparse.ArgumentTypeError(f"--shards takes LO-HI, not {text!r}")
    return int(lo), int(hi)


def start_move(
    home: OldHome, target: str, lo: int, hi: int, session: boto3.Session
) -> dict[str, Any]:
    """The Mover records the move (or refuses it), then its execution starts (named after
    the move: starting it twice is one execution)."""
    answer = _ask_mover(home, {"start": {"to": target, "lo": lo, "hi": hi}}, session)
    return {**answer, "execution": _execute(home, answer["move"], answer["move"], session)}


def abort_move(home: OldHome, move_id: str, session: boto3.Session) -> dict[str, Any]:
    """The Mover turns the move to its rollback (or refuses); the move's running executions
    are stopped and one that runs the rollback is started (none if it has run already)."""
    answer = _ask_mover(home, {"abort": move_id}, session)
    client = session.client("stepfunctions", region_name=home.cell.region, config=CLIENT_CONFIG)
    running = client.list_executions(
        stateMachineArn=home.state_machine, statusFilter="RUNNING", maxResults=100
    ).get("executions", [])
    stopped = [run["name"] for run in running if _of_move(run["name"], move_id)]
    for run in running:
        if run["name"] in stopped:
            client.stop_execution(
                executionArn=run["executionArn"], cause=f"aborted: {move_id} rolls back"
            )
    execution = None
    if not answer["done"]:
        execution = _execute(home, move_id, f"{move_id}-aborted-{int(time.time())}", session)
    return {**answer, "stopped": stopped, "execution": execution}


def _ask_mover(home: OldHome, request: dict[str, Any], session: boto3.Session) -> dict[str, Any]:
    """The Mover's answer; MoveCommandRefused with its reason if it refuses."""
    invoked = session.client("lambda", region_name=home.cell.region, config=CLIENT_CONFIG).invoke(
        FunctionName=home.mover,
        InvocationType="RequestResponse",
        Payload=json.dumps(request).encode(),
    )
    answer: dict[str, Any] = json.loads(invoked["Payload"].read())
    if invoked.get("FunctionError"):
        raise RuntimeError(f"the Mover failed: {answer}")
    if "refused" in answer:
        raise MoveCommandRefused(f"refused ({answer.get('status')}): {answer['refused']}")
    return answer


def _of_move(execution_name: str, move_id: str) -> bool:
    """An execution of this move: named after it, or after it and what started it."""
    return execution_name == move_id or execution_name.startswith(f"{move_id}-")


def resume_move(home: OldHome, move_id: str, session: boto3.Session) -> dict[str, Any]:
    """A new execution of a move already recorded: it goes on where the record says."""
    record = MoveRecords(_dynamodb(home, session), home.users_table).get(move_id)
    if record is None:
        raise MoveCommandRefused(f"no move {move_id} out of {home.cell.cell_id}")
    name = f"{move_id}-resumed-{int(time.time())}"
    return {**record.to_wire(), "execution": _execute(home, move_id, name, session)}


def move_status(home: OldHome, session: boto3.Session) -> list[dict[str, Any]]:
    """Every move out of the cell (its record), with the status of its executions."""
    client = session.client("stepfunctions", region_name=home.cell.region, config=CLIENT_CONFIG)
    executions = client.list_executions(stateMachineArn=home.state_machine, maxResults=100)
    records = MoveRecords(_dynamodb(home, session), home.users_table).all()
    return [
        {
            **record.to_wire(),
            "executions": [
                {"name": run["name"], "status": run["status"]}
                for run in executions.get("executions", [])
                if _of_move(run["name"], record.move_id)
            ],
        }
        for record in records
    ]


def _execute(home: OldHome, move_id: str, name: str, session: boto3.Session) -> str:
    client = session.client("stepfunctions", region_name=home.cell.region, config=CLIENT_CONFIG)
    started = client.start_execution(
        stateMachineArn=home.state_machine, name=name, input=json.dumps({"move": move_id})
    )
    return str(started["executionArn"])


def _dynamodb(home: OldHome, session: boto3.Session) -> Any:
    return session.client("dynamodb", region_name=home.cell.region, config=CLIENT_CONFIG)


def _context_entry(text: str) -> tuple[str, str]:
    key, equals, value = text.partition("=")
    if not (key and equals):
        raise argparse.ArgumentTypeError(f"-c takes KEY=VALUE, not {text!r}")
    return key, value


def main(
    argv: list[str] | None = None,
    session: boto3.Session | None = None,
    outputs_of: OutputsOf | None = None,
) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.cells",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    move = commands.add_parser("move", help="start (or resume) a shard move")
    status = commands.add_parser("move-status", help="the moves out of a cell")
    for command in (move, status):
        command.add_argument("--from", dest="source", required=True, help="the old home")
        command.add_argument("--env", default=None, help="the deployment's env (default: dev)")
        command.add_argument(
            "-c", "--context", action="append", type=_context_entry, default=[], metavar="K=V"
        )
        command.add_argument("--profile", default=None, help="AWS profile of the old home")
    move.add_argument("--to", dest="target", help="the new home")
    move.add_argument("--shards", type=parse_shards, help="LO-HI, inclusive")
    move.add_argument("--resume", metavar="MOVE_ID", help="resume this move instead")
    move.add_argument(
        "--abort", metavar="MOVE_ID", help="roll back this move (before its switch only)"
    )
    arguments = parser.parse_args(argv)
    context: dict[str, Any] = dict(arguments.context)
    if arguments.env:
        context["env"] = arguments.env
    session = session or boto3.Session(profile_name=arguments.profile)
    try:
        home = old_home(context, arguments.source, outputs_of or cloudformation_outputs(session))
        if arguments.command == "move-status":
            print(json.dumps(move_status(home, session)))
            return 0
        if arguments.abort:
            print(json.dumps(abort_move(home, arguments.abort, session)))
            return 0
        if arguments.resume:
            print(json.dumps(resume_move(home, arguments.resume, session)))
            return 0
        if not (arguments.target and arguments.shards):
            raise MoveCommandRefused("move takes --to CELL --shards LO-HI (or --resume MOVE_ID)")
        lo, hi = arguments.shards
        print(json.dumps(start_move(home, arguments.target, lo, hi, session)))
    except MoveCommandRefused as refused:
        print(f"move: {refused}", file=sys.stderr)
        return 2
    return 0
